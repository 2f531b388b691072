import { Command } from 'commander';
import { workflowIds } from '../../common/workflow-ids';
import { WorkflowExecutionAlreadyStartedError, WorkflowIdConflictPolicy } from '@temporalio/client';
import { z } from 'zod';
import { isBackupId } from '../../common/backup-id';
import { targetOf } from '../../common/config';
import { RunbookError } from '../../common/errors';
import type { RestoreReport, RestoreStatus } from '../../common/restore-types';
import { action, connectClient, requireWorker, parseOptions, loadCliConfig, print, type GlobalOptions } from '../context';
import { renderRestoreText } from '../restore-text';

const options = z.object({
  from: z.string().refine((v) => v === 'latest' || isBackupId(v), 'a backup id or "latest"'),
  reason: z.string().trim().min(3, 'a reason of a few words'),
  wait: z.boolean().default(false),
  dryRun: z.boolean().default(false),
  requestedBy: z.string().default(process.env.USER ?? 'unknown'),
});

export const restoreCommand = new Command('restore')
  .description('restore a backup into a target, after approval (one restore per target at a time)')
  .argument('<target>')
  .requiredOption('--from <backupId>', 'the backup to restore, or "latest"')
  .requiredOption('--reason <text>', 'why: recorded in the report and shown to approvers')
  .option('--requested-by <name>', 'who asks (default: $USER); cannot approve it unless the target allows it')
  .option('--wait', 'wait for the approval and the restore, and print the report')
  .option('--dry-run', 'print the plan and stop: nothing is touched')
  .action(
    action(async (targetName: string, raw: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const opts = parseOptions(options, raw);
      const config = loadCliConfig(global);
      targetOf(config, targetName);
      const client = await connectClient(config);
      // The plan is made by a worker, and printed here: without one, say so now.
      await requireWorker(client, config);
      const workflowId = opts.dryRun ? workflowIds.restorePlan(targetName) : workflowIds.restore(targetName);
      let handle;
      try {
        handle = await client.workflow.start('restoreRedis', {
          taskQueue: config.temporal.taskQueue,
          workflowId,
          // One restore per target: a second one while the first runs is refused, naming the first.
          workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
          args: [{ target: targetName, from: opts.from, reason: opts.reason, requestedBy: opts.requestedBy, dryRun: opts.dryRun }],
        });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          const running = await client.workflow.getHandle(workflowId).describe();
          throw new RunbookError(
            'RESTORE_RUNNING',
            `a restore of ${targetName} is already running: ${workflowId} (run ${running.runId}, started ${running.startTime.toISOString()})`,
            `follow it with \`runbook status ${workflowId}\`, or cancel it in the Temporal UI`,
          );
        }
        throw err;
      }
      if (opts.dryRun || opts.wait) {
        const report = (await handle.result()) as RestoreReport;
        print(global, report, () => renderRestoreText(report));
        return;
      }
      // Show the plan as soon as it is made, then hand over to the approvers.
      let status: RestoreStatus | undefined;
      for (let i = 0; i < 600 && !status?.plan; i++) {
        status = await handle.query<RestoreStatus>('status').catch(() => undefined);
        if (!status?.plan) await new Promise((r) => setTimeout(r, 200));
      }
      print(global, { workflowId, runId: handle.firstExecutionRunId, plan: status?.plan }, () =>
        [
          status?.plan
            ? renderRestoreText({ plan: status.plan, decisions: [], steps: [], compensations: [] } as unknown as RestoreReport)
            : '',
          `started ${workflowId}; it waits for approval:`,
          `  runbook approve ${workflowId} --as <approver>`,
          `  runbook reject ${workflowId} --as <approver> --reason "..."`,
          '',
        ].join('\n'),
      );
    }),
  );
