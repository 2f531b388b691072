import { Command } from 'commander';
import { workflowIds } from '../../common/workflow-ids';
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
  allowUnsigned: z.boolean().default(false),
  key: z.string().optional(),
  validFor: z
    .string()
    .regex(/^\d+(s|m|h)$/, 'a duration such as "15m" or "1h"')
    .optional(),
});

export const restoreCommand = new Command('restore')
  .description('restore a backup into a target, after approval (one restore per target at a time): you sign the request with your SSH key')
  .argument('<target>')
  .requiredOption('--from <backupId>', 'the backup to restore, or "latest"')
  .requiredOption('--reason <text>', 'why: recorded in the report and signed by you and the approvers')
  .option('--key <file>', 'your SSH key (or its .pub, with the key in ssh-agent) to sign the request; default $RUNBOOK_SSH_KEY')
  .option('--valid-for <duration>', 'how long your signature may take to reach the restore (default 15m)')
  .option('--wait', 'wait for the approval and the restore, and print the report')
  .option('--dry-run', 'print the plan and stop: nothing is touched, nothing is signed')
  .option('--allow-unsigned', 'accept a backup whose manifest is unsigned (made before signing); the approvers see it. Never a forged one')
  .action(
    action(async (targetName: string, raw: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const opts = parseOptions(options, raw);
      const config = loadCliConfig(global);
      targetOf(config, targetName);
      // The request is signed: a missing key is said before anything starts.
      const { readyToSign, renderSigning, signAndSend, signingKeyFile } = await import('../statements');
      const keyFile = opts.dryRun ? undefined : signingKeyFile(opts.key, 'a restore request');
      const client = await connectClient(config);
      const { WorkflowExecutionAlreadyStartedError, WorkflowIdConflictPolicy } = await import('@temporalio/client');
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
          args: [{ target: targetName, from: opts.from, reason: opts.reason, dryRun: opts.dryRun, allowUnsigned: opts.allowUnsigned }],
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
      if (opts.dryRun) {
        const report = (await handle.result()) as RestoreReport;
        print(global, report, () => renderRestoreText(report));
        return;
      }
      // Sign the plan as made, for this very run; a request that cannot be signed leaves nothing waiting.
      let status: RestoreStatus;
      try {
        status = await readyToSign(handle, 'request');
        await signAndSend(client, handle, handle.firstExecutionRunId, status, 'request', keyFile!, { validFor: opts.validFor });
      } catch (err) {
        await handle.cancel().catch(() => undefined);
        throw err;
      }
      if (opts.wait) {
        if (!global.json) process.stderr.write(renderSigning(status, 'request') + 'signed the request; waiting for approval\n');
        const { follow } = await import('../progress');
        const report = await follow<RestoreReport>(handle, global.json ? undefined : process.stderr, { target: targetName });
        print(global, report, () => renderRestoreText(report));
        return;
      }
      print(global, { workflowId, runId: handle.firstExecutionRunId, plan: status.plan }, () =>
        [
          renderRestoreText({ plan: status.plan, decisions: [], steps: [], compensations: [] } as unknown as RestoreReport),
          `started ${workflowId} and signed its request; it waits for approval:`,
          `  runbook approve ${workflowId} --key <approver's SSH key>`,
          `  runbook reject ${workflowId} --key <approver's SSH key> --reason "..."`,
          '',
        ].join('\n'),
      );
    }),
  );
