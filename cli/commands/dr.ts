import { Command } from 'commander';
import { workflowIds } from '../../common/workflow-ids';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { z } from 'zod';
import { isBackupId } from '../../common/backup-id';
import { targetOf } from '../../common/config';
import { hours, seconds } from '../../common/drill-report';
import type { RecoverReport, RecoverStatus } from '../../common/drill-types';
import { RunbookError } from '../../common/errors';
import {
  action,
  connectClient,
  requireWorker,
  parseOptions,
  requireSearchAttributes,
  failureReport,
  loadCliConfig,
  print,
  type GlobalOptions,
} from '../context';

const options = z
  .object({
    at: z
      .string()
      .refine((v) => !Number.isNaN(Date.parse(v)), { error: 'a time such as 2026-11-21T09:30:00Z', abort: true })
      .refine((v) => Date.parse(v) <= Date.now(), 'a moment in the past')
      .transform((v) => new Date(v).toISOString())
      .optional(),
    from: z.string().refine(isBackupId, 'a backup id').optional(),
    to: z.string().optional(),
    reason: z.string().trim().min(3, 'a reason of a few words'),
    key: z.string().optional(),
    validFor: z
      .string()
      .regex(/^\d+(s|m|h)$/, 'a duration such as "15m" or "1h"')
      .optional(),
    dryRun: z.boolean().default(false),
    wait: z.boolean().default(false),
  })
  .refine((o) => !(o.at && o.from), { message: 'either --at or --from, not both', path: ['at'] });

export function renderRecoverText(r: RecoverReport): string {
  const a = r.assessment;
  const lines = [
    `disaster recovery of ${r.target}${r.to !== r.target ? ` into ${r.to}` : ''}: ${r.outcome.toUpperCase()}${r.error ? ` (${r.error})` : ''}`,
    a.reachable
      ? `  ${r.to}: ${a.role}, Redis ${a.version}, ${a.dbsize} keys${a.loading ? ', LOADING' : ''}, AOF ${a.aofEnabled ? 'on' : 'off'}, last save ${a.lastSaveAt ?? 'never'} (${a.rdbLastBgsaveStatus})`
      : `  ${r.to}: UNREACHABLE (${a.error ?? 'no answer'})`,
    ...a.files.map((f) => `  ${f.ok ? 'ok    ' : 'DAMAGED'} ${f.name}: ${f.detail}`),
    ...(r.point
      ? [
          `  recovery point: ${r.point.backupId} (taken ${r.point.createdAt}) from ${r.point.destination}`,
          ...r.point.considered.filter((c) => !c.ok).map((c) => `    rejected ${c.backupId} in ${c.destination}: ${c.detail}`),
        ]
      : []),
    ...(r.rpo
      ? [`  RPO: ${hours(r.rpo.measuredMs)} of data lost against ${hours(r.rpo.objectiveMs)}: ${r.rpo.met ? 'met' : 'MISSED'}`]
      : []),
    ...(r.rto
      ? [
          `  RTO: ${seconds(r.rto.measuredMs)} (${seconds(r.rto.withoutApprovalMs)} without the wait for approval) against ${hours(r.rto.objectiveMs)}: ${r.rto.met ? 'met' : 'MISSED'}`,
        ]
      : []),
    ...(r.restore ? [`  target: ${r.restore.targetState}`] : []),
  ];
  return lines.join('\n') + '\n';
}

export const drCommand = new Command('dr')
  .description(
    'disaster recovery: assess the target, choose the newest good copy across destinations, restore it after approval, verify, resume writers',
  )
  .argument('<target>', 'the target whose backups are recovered')
  .requiredOption('--reason <text>', 'why: recorded and shown to approvers')
  .option('--at <time>', 'recover the newest backup taken before this moment (a rollback)')
  .option('--from <backupId>', 'recover this backup')
  .option('--to <target>', 'restore into this target instead (a rebuilt server, or a clone to staging)')
  .option('--key <file>', 'your SSH key (or its .pub, with the key in ssh-agent) to sign the restore request; default $RUNBOOK_SSH_KEY')
  .option('--valid-for <duration>', 'how long your signature may take to reach the restore (default 15m)')
  .option('--dry-run', 'assess and choose the recovery point, then stop: nothing is touched')
  .option('--wait', 'wait for approval and the recovery, and print the report')
  .action(
    action(async (targetName: string, raw: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const opts = parseOptions(options, raw);
      const config = loadCliConfig(global);
      targetOf(config, targetName);
      const to = opts.to ?? targetName;
      targetOf(config, to);
      const { readyToSign, signAndSend, signingKeyFile } = await import('../statements');
      const keyFile = opts.dryRun ? undefined : signingKeyFile(opts.key, 'the restore request of a recovery');
      const client = await connectClient(config);
      const { WorkflowExecutionAlreadyStartedError, WorkflowIdConflictPolicy } = await import('@temporalio/client');
      // Without them the recovery could not get past its first step: say so now, not never.
      await requireSearchAttributes(client, config);
      await requireWorker(client, config);
      const workflowId = opts.dryRun ? workflowIds.recoverPlan(to) : workflowIds.recover(to);
      let handle;
      try {
        handle = await client.workflow.start('recoverRedis', {
          taskQueue: config.temporal.taskQueue,
          workflowId,
          workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
          args: [
            {
              target: targetName,
              to,
              at: opts.at,
              from: opts.from,
              reason: opts.reason,
              requestedBy: `cli:${process.env.USER ?? 'unknown'}`,
              dryRun: opts.dryRun,
            },
          ],
        });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          throw new RunbookError(
            'RESTORE_RUNNING',
            `a recovery of ${to} is already running: ${workflowId}`,
            `follow it with \`runbook status ${workflowId}\``,
          );
        }
        throw err;
      }
      // The recovery's restore is requested by whoever runs this: sign its plan once it has one.
      if (!opts.dryRun) {
        const restore = await restoreOf(client, handle);
        if (restore) {
          try {
            const status = await readyToSign(restore.handle, 'request');
            await signAndSend(client, restore.handle, restore.runId, status, 'request', keyFile!, { validFor: opts.validFor });
          } catch (err) {
            await handle.cancel().catch(() => undefined);
            throw err;
          }
        }
      }
      if (opts.dryRun || opts.wait) {
        let report: RecoverReport;
        try {
          report = await handle.result();
        } catch (err) {
          const failed = failureReport<RecoverReport>(err);
          if (failed) print(global, failed, () => renderRecoverText(failed));
          throw err;
        }
        print(global, report, () => renderRecoverText(report));
        return;
      }
      // Show the assessment and the chosen point, then hand over to the approvers of the restore.
      let status: RecoverStatus | undefined;
      for (let i = 0; i < 3000 && !status?.restoreWorkflowId; i++) {
        status = await handle.query<RecoverStatus>('status').catch(() => undefined);
        const d = status?.restoreWorkflowId ? undefined : await handle.describe();
        if (d && d.status.name !== 'RUNNING') break;
        if (!status?.restoreWorkflowId) await new Promise((r) => setTimeout(r, 200));
      }
      if (!status?.restoreWorkflowId && (await handle.describe()).status.name === 'RUNNING') {
        // Still choosing (a large backup being proven): hand over rather than block here.
        print(
          global,
          { workflowId, runId: handle.firstExecutionRunId },
          () =>
            `started ${workflowId}; it is still choosing the recovery point. Follow it with \`runbook status ${workflowId}\`, then approve its restore with \`runbook approve ${workflowId} --key <approver's SSH key>\`\n`,
        );
        return;
      }
      if (!status?.restoreWorkflowId) {
        // It ended before the restore: the result says why.
        const report = (await handle.result()) as RecoverReport;
        print(global, report, () => renderRecoverText(report));
        return;
      }
      const restoreId = status.restoreWorkflowId;
      print(
        global,
        { workflowId, runId: handle.firstExecutionRunId, restoreWorkflowId: restoreId, assessment: status.assessment, point: status.point },
        () =>
          [
            renderRecoverText({
              target: targetName,
              to,
              outcome: 'failed',
              assessment: status.assessment!,
              point: status.point,
            } as RecoverReport).replace(
              /^.*\n/,
              `disaster recovery of ${targetName}${to !== targetName ? ` into ${to}` : ''}: waiting for approval\n`,
            ),
            `started ${workflowId}; its restore ${restoreId} waits for approval:`,
            `  runbook approve ${restoreId} --key <approver's SSH key>`,
            `  runbook reject ${restoreId} --key <approver's SSH key> --reason "..."`,
            `follow it with: runbook status ${workflowId}`,
            '',
          ].join('\n'),
      );
    }),
  );

/** The restore a recovery started, once it has: undefined when the recovery ended before it did. */
async function restoreOf(client: Client, handle: WorkflowHandle): Promise<{ handle: WorkflowHandle; runId: string } | undefined> {
  for (const until = Date.now() + 30 * 60_000; Date.now() < until;) {
    const status = await handle.query<RecoverStatus>('status').catch(() => undefined);
    if (status?.restoreWorkflowId && status.restoreRunId) {
      return { handle: client.workflow.getHandle(status.restoreWorkflowId, status.restoreRunId), runId: status.restoreRunId };
    }
    if ((await handle.describe()).status.name !== 'RUNNING') return undefined;
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}
