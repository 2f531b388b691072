import { Command } from 'commander';
import { workflowIds } from '../../common/workflow-ids';
import { z } from 'zod';
import { targetOf } from '../../common/config';
import { TASK_QUEUE, type BackupReport } from '../../common/types';
import { action, parseOptions, connectClient, requireWorker, loadCliConfig, print, type GlobalOptions } from '../context';

const options = z.object({ wait: z.boolean().default(false), tag: z.array(z.string().regex(/^[\w.-]{1,64}$/)).default([]) });

export const backupCommand = new Command('backup')
  .description('back up a target now (add --wait to follow it to the end)')
  .argument('<target>', 'a target named in the config')
  .option('--wait', 'wait for the backup and show its progress')
  .option('--tag <tag...>', 'labels stored in the manifest')
  .action(
    action(async (targetName: string, raw: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const opts = parseOptions(options, raw);
      const config = loadCliConfig(global);
      targetOf(config, targetName);
      const client = await connectClient(config);
      if (opts.wait) await requireWorker(client, config);
      const workflowId = workflowIds.manualBackup(targetName);
      const handle = await client.workflow.start('backupRedis', {
        taskQueue: config.temporal.taskQueue ?? TASK_QUEUE,
        workflowId,
        args: [{ target: targetName, tags: opts.tag, requestedBy: `cli:${process.env.USER ?? 'unknown'}` }],
      });
      if (!opts.wait) {
        print(
          global,
          { workflowId, runId: handle.firstExecutionRunId },
          () => `started ${workflowId}\nfollow it with: runbook status ${workflowId}\n`,
        );
        return;
      }
      const { follow } = await import('../progress');
      const report: BackupReport = await follow(handle, global.json ? undefined : process.stderr, { target: targetName });
      print(global, report, () => report.text);
    }),
  );
