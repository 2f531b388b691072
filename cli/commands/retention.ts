import { Command } from 'commander';
import { z } from 'zod';
import { targetOf } from '../../common/config';
import { TASK_QUEUE, type RetentionOutcome } from '../../common/types';
import { workflowIds } from '../../common/workflow-ids';
import { action, parseOptions, connectClient, loadCliConfig, print, type GlobalOptions } from '../context';

const options = z.object({ dryRun: z.boolean().default(false) });

export const retentionCommand = new Command('retention')
  .description("apply a target's retention policy now (every backup also applies it when it ends)")
  .argument('<target>')
  .option('--dry-run', 'show what would be deleted, delete nothing (needs no worker)')
  .action(
    action(async (target: string, raw: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const { dryRun } = parseOptions(options, raw);
      const config = loadCliConfig(global);
      targetOf(config, target);
      let outcome: RetentionOutcome;
      if (dryRun) {
        // Only reads. Temporal tells a running backup's unfinished folder from an abandoned one; without it, both stay.
        const [{ retention }, { storeRegistry }] = await Promise.all([import('../../domain/retention'), import('../../domain/storage')]);
        const temporal = await connectClient(config).catch(() => undefined);
        outcome = await retention({ config, stores: storeRegistry(config), temporal }, target, true);
        await temporal?.connection.close();
      } else {
        // Deleting is a run of its own, on a worker: durable, in the Temporal UI, and in the audit trail.
        const client = await connectClient(config);
        outcome = await client.workflow.execute('pruneBackups', {
          taskQueue: config.temporal.taskQueue ?? TASK_QUEUE,
          workflowId: workflowIds.retention(target),
          args: [{ target, requestedBy: `cli:${process.env.USER ?? 'unknown'}` }],
        });
        await client.connection.close();
      }
      const verb = dryRun ? 'would delete' : 'deleted';
      print(global, outcome, () =>
        [
          ...outcome.kept.map((k) => `keep   ${k.backupId} (${k.reasons.join(', ')})`),
          ...outcome.deleted.map((id) => `${dryRun ? 'delete' : 'deleted'} ${id}`),
          ...outcome.suspicious.map((id) => `leave  ${id} (its manifest is damaged or names another backup: look at it)`),
          ...outcome.abandoned.map((id) => `${dryRun ? 'clear' : 'cleared'}  ${id} (unfinished run that ended)`),
          `${verb} ${outcome.deleted.length} backup(s), kept ${outcome.kept.length}${dryRun ? ' (dry run: nothing was deleted)' : ''}`,
          '',
        ].join('\n'),
      );
    }),
  );
