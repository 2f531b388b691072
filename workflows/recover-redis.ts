// recoverRedis: the disaster-recovery runbook. Assess the target, choose the recovery point across
// every destination, then hand over to the restore runbook (approval, safety backup, quiesce, make
// live, verify, resume writers), and report the RTO and RPO achieved. The seeds' scenarios are its
// options: complete loss or corruption (newest good point), rollback (--at), a rebuilt server or a
// clone to staging (--to).
import {
  CancellationScope,
  ParentClosePolicy,
  defineQuery,
  startChild,
  isCancellation,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { AuditEvent } from '../common/audit';
import { ErrorCode, fail } from '../common/errors';
import { innermostCode, messageOf, reportOf } from '../common/failure';
import type { RecoverInput, RecoverReport, RecoverStatus } from '../common/drill-types';
import { workflowIds } from '../common/workflow-ids';
import type { RestoreReport } from '../common/restore-types';
import { OUTCOME_ATTR, TARGET_ATTR } from '../common/search-attributes';
import { restoreRedis } from './restore-redis';
import { heavy, quick, records } from './shared';

export const recoverStatusQuery = defineQuery<RecoverStatus>('status');

export async function recoverRedis(input: RecoverInput): Promise<RecoverReport> {
  const info = workflowInfo();
  const started = Date.now();
  const to = input.to ?? input.target;
  const status: RecoverStatus = { step: 'assess' };
  setHandler(recoverStatusQuery, () => status);
  upsertSearchAttributes([{ key: TARGET_ATTR, value: to }]);
  const report: RecoverReport = {
    target: input.target,
    to,
    reason: input.reason,
    requestedBy: input.requestedBy,
    outcome: 'failed',
    startedAt: new Date(started).toISOString(),
    finishedAt: '',
    assessment: { target: to, reachable: false, files: [] },
  };
  // The actor of a recovery's own records is the person who signed its restore's request, once known.
  const audit = (event: AuditEvent['event'], detail: string) =>
    records.recordAudit({
      at: new Date().toISOString(),
      target: to,
      workflowId: info.workflowId,
      runId: info.runId,
      action: 'recover',
      event,
      actor: report.restore?.requestedBy ?? 'recovery',
      detail,
    });
  const finish = (outcome: RecoverReport['outcome']) => {
    report.outcome = outcome;
    report.finishedAt = new Date().toISOString();
    upsertSearchAttributes([{ key: OUTCOME_ATTR, value: outcome }]);
    return report;
  };
  try {
    const { runId: toRunId, ...assessment } = await heavy.assessTarget({ target: to, checkFiles: true });
    report.assessment = status.assessment = assessment;
    if (to !== input.target) {
      // Two names for one server would make a clone to staging overwrite production.
      const source = await quick.assessTarget({ target: input.target, checkFiles: false }).catch(() => undefined);
      if (source?.runId && source.runId === toRunId) {
        fail(
          'BAD_INPUT',
          `targets ${input.target} and ${to} are the same Redis server (run_id ${toRunId}): refusing to restore one over itself as another`,
        );
      }
    }
    if (!assessment.reachable && !input.dryRun) {
      fail(
        'TARGET_UNREACHABLE',
        `${to} is unreachable (${assessment.error ?? 'no answer'}): start it, empty is fine, or a replacement server and recover into that with --to <target>`,
      );
    }
    status.step = 'choose recovery point';
    const point = await heavy.chooseRecoveryPoint({ target: input.target, at: input.at, from: input.from });
    report.point = status.point = point;
    const objectives = await quick.targetObjectives(input.target);
    const incident = input.at ? Date.parse(input.at) : started;
    const lostMs = Math.max(0, incident - Date.parse(point.createdAt));
    report.rpo = { measuredMs: lostMs, objectiveMs: objectives.rpoMs, met: lostMs <= objectives.rpoMs };
    if (input.dryRun) {
      // The proven copy was kept for a restore that will not come: production data leaves the worker.
      await quick.removeRestoreFiles({ backupIds: [point.backupId] }).catch(() => {});
      return finish('dry-run');
    }
    await audit(
      'requested',
      `recover ${point.backupId} from ${point.destination}${to !== input.target ? ` (a backup of ${input.target})` : ''}: ${input.reason}`,
    );
    status.step = 'restore';
    const restoreWorkflowId = workflowIds.restore(to);
    let restore: RestoreReport;
    try {
      const child = await startChild(restoreRedis, {
        workflowId: restoreWorkflowId,
        // Ending the recovery (cancelled, terminated, timed out) cancels its restore, which then rolls
        // back and resumes writers; terminating the restore outright would skip that.
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        args: [
          {
            target: to,
            from: point.backupId,
            sourceTarget: input.target,
            preferDestination: point.destination,
            reason: `disaster recovery (${info.workflowId}): ${input.reason}`,
          },
        ],
      });
      // Announced once it exists: approvers can be pointed at it.
      report.restoreWorkflowId = status.restoreWorkflowId = restoreWorkflowId;
      status.restoreRunId = child.firstExecutionRunId;
      restore = await child.result();
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        await quick.removeRestoreFiles({ backupIds: [point.backupId] }).catch(() => {});
        fail(
          'RESTORE_RUNNING',
          `a restore of ${to} is already running (${restoreWorkflowId}): let it finish or cancel it, then recover again`,
        );
      }
      report.restore = reportOf<RestoreReport>(err);
      throw err;
    }
    report.restore = restore;
    if (restore.outcome !== 'restored')
      return finish(restore.outcome === 'rejected' || restore.outcome === 'expired' ? restore.outcome : 'failed');
    const measured = Date.now() - started;
    report.rto = {
      measuredMs: measured,
      withoutApprovalMs: measured - approvalWaitMs(restore),
      objectiveMs: objectives.rtoMs,
      met: measured <= objectives.rtoMs,
    };
    status.step = 'done';
    await audit(
      'recovered',
      `from ${point.backupId}: RTO ${Math.round(measured / 1000)} s (${Math.round(report.rto.withoutApprovalMs / 1000)} s without the wait for approval), RPO ${Math.round(lostMs / 1000)} s`,
    );
    if (!report.rto.met || !report.rpo.met) {
      await records
        .notify({
          event: 'objective-missed',
          target: to,
          at: new Date().toISOString(),
          title: `recovery of ${to} missed its objectives`,
          text: `RTO ${Math.round(measured / 1000)} s (objective ${objectives.rtoMs / 1000} s), RPO ${Math.round(lostMs / 1000)} s (objective ${objectives.rpoMs / 1000} s)`,
          workflowId: info.workflowId,
          fields: { rtoSeconds: measured / 1000, rpoSeconds: lostMs / 1000, rtoMet: report.rto.met, rpoMet: report.rpo.met },
        })
        .catch(() => {});
    }
    return finish('recovered');
  } catch (err) {
    report.error = messageOf(err);
    // A restore cancelled with its recovery reports RESTORE_CANCELLED, not a cancellation.
    finish(isCancellation(err) || innermostCode(err) === 'RESTORE_CANCELLED' ? 'cancelled' : 'failed');
    if (report.point && !report.restoreWorkflowId) {
      // Failed before the restore took the proven copy over: it leaves the worker here.
      await CancellationScope.nonCancellable(() => quick.removeRestoreFiles({ backupIds: [report.point!.backupId] })).catch(() => {});
    }
    if (report.point && !input.dryRun) {
      await CancellationScope.nonCancellable(() =>
        audit(report.outcome === 'cancelled' ? 'cancelled' : 'failed', report.error ?? ''),
      ).catch(() => {});
    }
    status.step = report.outcome;
    // The cause's own code where it has one (no copy verifies: BACKUP_NOT_FOUND), so the CLI exits by it.
    const cause = innermostCode(err);
    const code =
      cause && cause in ErrorCode && cause !== 'RESTORE_FAILED' && cause !== 'RESTORE_CANCELLED' ? (cause as ErrorCode) : 'RECOVER_FAILED';
    return fail(
      code,
      `recovery of ${to} ${report.outcome}: ${report.error}${report.restore ? `. Target: ${report.restore.targetState}` : ''}`,
      undefined,
      [report],
    );
  }
}

/** From the plan being ready to the last approval: time a person took, not the runbook. */
function approvalWaitMs(r: RestoreReport): number {
  const plan = r.steps.find((s) => s.name === 'plan');
  const last = r.decisions.filter((d) => d.decision === 'approve').at(-1);
  if (!plan || !last) return 0;
  return Math.max(0, Date.parse(last.at) - (Date.parse(plan.startedAt) + plan.durationMs));
}
