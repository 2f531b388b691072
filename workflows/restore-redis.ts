// restoreRedis: plan, approval, safety backup, quiesce, make live, verify, resume. A saga: every
// step that changes something records its undo first, and any failure or cancellation runs the undos
// in a non-cancellable scope, rolling the data back to the safety backup when it had been replaced.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  defineUpdate,
  executeChild,
  isCancellation,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { AuditEvent } from '../common/audit';
import type {
  ApproveArgs,
  Decision,
  RejectArgs,
  RestoreCheck,
  RestoreInput,
  RestorePlan,
  RestoreReport,
  RestoreStatus,
  WriterPauseState,
} from '../common/restore-types';
import { backupRedis } from './backup-redis';
import { heavy, messageOf, quick } from './shared';

export const restoreStatusQuery = defineQuery<RestoreStatus>('status');
export const approveUpdate = defineUpdate<Decision[], [ApproveArgs & { identity?: string }]>('approve');
export const rejectUpdate = defineUpdate<Decision[], [RejectArgs & { identity?: string }]>('reject');

export async function restoreRedis(input: RestoreInput): Promise<RestoreReport> {
  const { target } = input;
  const status: RestoreStatus = { step: 'plan', decisions: [] };
  setHandler(restoreStatusQuery, () => status);
  const report = {
    target,
    reason: input.reason,
    requestedBy: input.requestedBy,
    decisions: status.decisions,
    steps: [],
    compensations: [],
  } as unknown as RestoreReport;
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    status.step = name;
    const startedAt = new Date();
    const out = await fn();
    report.steps.push({ name, startedAt: startedAt.toISOString(), durationMs: Date.now() - startedAt.getTime() });
    return out;
  };

  // The approval gate, registered first so that no early update is lost. Validators refuse before anything is recorded in history.
  const approvedBy = new Set<string>();
  let rejected = false;
  const decided = () => rejected || (plan !== undefined && approvedBy.size >= plan.approvalsRequired);
  const validate = (approver: string) => {
    if (!plan || status.step !== 'awaiting approval')
      throw new Error(`the restore of ${target} is not awaiting approval (step: ${status.step})`);
    if (decided()) throw new Error(`the restore of ${target} has already been ${rejected ? 'rejected' : 'approved'}`);
    if (!plan.approvers.includes(approver)) {
      throw new Error(`${approver} may not approve restores of ${target} (approvers: ${plan.approvers.join(', ')})`);
    }
    if (!plan.allowSelfApproval && approver === input.requestedBy) {
      throw new Error(`${approver} asked for this restore and cannot also approve it (four eyes)`);
    }
  };
  const decide = (d: Decision) => {
    status.decisions.push(d);
    return status.decisions;
  };
  setHandler(
    approveUpdate,
    ({ approver, comment, identity }) => {
      approvedBy.add(approver);
      return decide({ approver, decision: 'approve', at: new Date().toISOString(), comment, identity });
    },
    {
      validator: ({ approver }) => {
        validate(approver);
        if (approvedBy.has(approver)) throw new Error(`${approver} has already approved this restore`);
      },
    },
  );
  setHandler(
    rejectUpdate,
    ({ approver, reason, identity }) => {
      rejected = true;
      return decide({ approver, decision: 'reject', at: new Date().toISOString(), comment: reason, identity });
    },
    {
      validator: ({ approver, reason }) => {
        validate(approver);
        if (!reason?.trim()) throw new Error('a rejection needs a reason');
      },
    },
  );
  let plan: RestorePlan | undefined = undefined;
  plan = await step('plan', () =>
    // The plan fetches and proves the whole backup: as long as that takes, with heartbeats.
    heavy.planRestore({ target, from: input.from, sourceTarget: input.sourceTarget, preferDestination: input.preferDestination }),
  );
  report.plan = status.plan = plan;
  // The plan fetched the backup onto the worker; a restore that ends before making it live removes it.
  const dropPlannedCopy = () =>
    CancellationScope.nonCancellable(() => quick.removeRestoreFiles({ backupIds: [plan!.backup.backupId] })).catch(() => {});
  if (input.dryRun) {
    await dropPlannedCopy();
    return { ...report, outcome: 'dry-run', targetState: 'untouched (dry run)' };
  }
  const { workflowId, runId } = workflowInfo();
  const tell = (event: 'restore-awaiting-approval' | 'restore-done', title: string, text: string, fields = {}) =>
    quick
      .notify({
        event,
        target,
        at: new Date().toISOString(),
        title,
        text,
        workflowId,
        fields: { requestedBy: input.requestedBy, ...fields },
      })
      .catch(() => {});
  const audit = (event: AuditEvent['event'], actor: string, detail?: string, identity?: string, at = new Date().toISOString()) =>
    quick.recordAudit({ at, target, workflowId, runId, action: 'restore', event, actor, identity, detail });
  if (plan.approvers.length === 0) {
    throw ApplicationFailure.create({
      type: 'CONFIG_INVALID',
      message: `target ${target} lists no restore approvers, so no restore of it can be approved (set targets.${target}.restore.approvers)`,
      nonRetryable: true,
    });
  }

  status.step = 'awaiting approval';
  await audit('requested', input.requestedBy, `restore ${plan.backup.backupId} (${plan.strategy}): ${input.reason}`);
  await tell(
    'restore-awaiting-approval',
    `restore of ${target} awaits approval`,
    [
      `${input.requestedBy} asks to restore ${plan.backup.backupId} (${plan.backup.keys} keys, taken ${plan.backup.createdAt}) into ${target}: ${input.reason}`,
      `approvers: ${plan.approvers.join(', ')} (${plan.approvalsRequired} needed)`,
      `runbook approve ${workflowId} --as <approver>`,
    ].join('\n'),
  );
  let inTime: boolean;
  try {
    inTime = await condition(decided, plan.approvalTimeoutMs);
  } catch (err) {
    // Cancelled while waiting: nothing was touched, but the trail and the channel still hear of it.
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(async () => {
        await dropPlannedCopy();
        await audit('cancelled', input.requestedBy, 'cancelled while awaiting approval; target untouched').catch(() => {});
        await tell('restore-done', `restore of ${target} cancelled`, 'cancelled while awaiting approval; nothing was changed', {
          outcome: 'cancelled',
        });
      });
    }
    throw err;
  }
  for (const d of status.decisions)
    await audit(d.decision === 'approve' ? 'approved' : 'rejected', d.approver, d.comment, d.identity, d.at);
  if (!inTime || rejected) {
    const outcome = rejected ? 'rejected' : 'expired';
    if (outcome === 'expired') await audit('expired', 'timeout', `no decision within ${plan.approvalTimeoutMs / 1000} s`);
    status.step = outcome;
    await dropPlannedCopy();
    await tell('restore-done', `restore of ${target} ${outcome}`, 'nothing was changed', { outcome });
    return { ...report, outcome, targetState: `untouched (${outcome}: nothing was changed)` };
  }

  const compensations: { name: string; run: () => Promise<unknown> }[] = [];
  let dataReplaced = false;
  // Once verified, a failure to resume a writer is reported, never answered by undoing the restore.
  let verified = false;
  let pauseStarted: number | undefined;
  const renewal = new CancellationScope();
  let renewing: Promise<void> = Promise.resolve();
  const stopRenewal = async () => {
    renewal.cancel();
    await renewing;
  };
  try {
    await step('quiesce writers', async () => {
      pauseStarted = Date.now();
      for (const writer of plan.writers) {
        // The undo is recorded before the pause: a pause that half happened is still undone.
        const paused: WriterPauseState = { writer, state: {} };
        compensations.unshift({ name: `resume writer ${writer}`, run: () => quick.resumeWriter({ target, paused }) });
        Object.assign(paused, await quick.pauseWriter({ target, writer }));
      }
      if (plan.pauseWrites) {
        compensations.unshift({ name: 'CLIENT UNPAUSE', run: () => quick.unpauseClientWrites({ target }) });
        await quick.pauseClientWrites({ target, limitMs: plan.pauseLimitMs });
        // Renewed while the restore runs; if the runbook dies, the last pause lapses on its own.
        // Only the wait between renewals is cancellable: a renewal under way always completes, so
        // none can land after the final CLIENT UNPAUSE.
        renewing = (async () => {
          for (;;) {
            try {
              await renewal.run(() => sleep(Math.max(1000, Math.floor(plan.pauseLimitMs / 3))));
            } catch {
              return;
            }
            await CancellationScope.nonCancellable(() => quick.pauseClientWrites({ target, limitMs: plan.pauseLimitMs })).catch(() => {});
          }
        })();
      }
    });

    // Taken with writers already paused, the safety backup is exactly what a rollback must bring back:
    // no write can fall between it and the restore.
    const safety = await step('safety backup', () =>
      executeChild(backupRedis, {
        workflowId: `restore/${target}/safety/${workflowInfo().runId}`,
        args: [{ target, tags: ['pre-restore'], requestedBy: `restore:${input.requestedBy}`, skipRetention: true }],
      }),
    );
    report.safetyBackupId = safety.backupId;

    dataReplaced = true;
    report.makeLive = await step('make live', () => heavy.makeLive({ target, backupId: plan.backup.backupId }));
    await step('after make-live check', () => quick.afterMakeLive({ target }));
    const checks: RestoreCheck[] = await step('verify', () =>
      heavy.verifyRestore({ target, backupId: plan.backup.backupId, before: plan.current }),
    );
    report.verification = checks;
    const failed = checks.filter((c) => !c.ok);
    if (failed.length) {
      throw ApplicationFailure.create({
        type: 'VERIFY_FAILED',
        message: `verification failed: ${failed.map((c) => `${c.name}: ${c.detail}`).join('; ')}`,
        nonRetryable: true,
      });
    }

    verified = true;
    await step('resume writers', async () => {
      await stopRenewal();
      for (const c of compensations) await c.run();
    });
    report.writePauseMs = pauseStarted === undefined ? 0 : Date.now() - pauseStarted;
    await quick.removeRestoreFiles({ backupIds: [plan.backup.backupId, safety.backupId] }).catch(() => {});
    status.step = 'done';
    await audit('restored', input.requestedBy, `from ${plan.backup.backupId}; safety backup ${safety.backupId}`);
    await tell('restore-done', `restore of ${target} done`, `restored from ${plan.backup.backupId} and verified; writers resumed`, {
      outcome: 'restored',
      backupId: plan.backup.backupId,
      safetyBackupId: safety.backupId,
    });
    return { ...report, outcome: 'restored', targetState: `restored from ${plan.backup.backupId} and verified; writers resumed` };
  } catch (err) {
    const failedAt = status.step;
    let targetState = verified
      ? `restored from ${plan.backup.backupId} and verified, but resuming writers failed`
      : 'untouched: it failed before any data was replaced';
    await CancellationScope.nonCancellable(async () => {
      status.step = 'compensating';
      await stopRenewal();
      if (dataReplaced && !verified && report.safetyBackupId) {
        const name = `roll back to the safety backup ${report.safetyBackupId}`;
        try {
          await heavy.makeLive({ target, backupId: report.safetyBackupId });
          report.compensations.push({ name, ok: true, detail: 'the pre-restore data is back' });
          targetState = `rolled back to its pre-restore data (safety backup ${report.safetyBackupId})`;
        } catch (e) {
          report.compensations.push({ name, ok: false, detail: messageOf(e) });
          targetState = `UNKNOWN: the data may be partly replaced and the rollback failed; restore ${report.safetyBackupId} by hand`;
        }
      }
      for (const c of compensations) {
        try {
          await c.run();
          report.compensations.push({ name: c.name, ok: true, detail: 'done' });
        } catch (e) {
          report.compensations.push({ name: c.name, ok: false, detail: messageOf(e) });
        }
      }
      if (pauseStarted !== undefined) report.writePauseMs = Date.now() - pauseStarted;
      // The local copies are production data: removed whatever the ending (the stored backups stay).
      const local = [plan.backup.backupId, ...(report.safetyBackupId ? [report.safetyBackupId] : [])];
      await quick.removeRestoreFiles({ backupIds: local }).catch(() => {});
      await audit(isCancellation(err) ? 'cancelled' : 'failed', input.requestedBy, `${messageOf(err)}; target: ${targetState}`).catch(
        () => {},
      );
    });
    report.outcome = isCancellation(err) ? 'cancelled' : 'failed';
    report.targetState = targetState;
    await CancellationScope.nonCancellable(() =>
      tell('restore-done', `restore of ${target} ${report.outcome.toUpperCase()}`, `${messageOf(err)}\ntarget: ${targetState}`, {
        outcome: report.outcome,
      }),
    );
    report.error = messageOf(err);
    status.step = report.outcome;
    const notDone = report.compensations.filter((c) => !c.ok).map((c) => c.name);
    const writersBack = compensations.every((c) => report.compensations.some((r) => r.name === c.name && r.ok));
    throw ApplicationFailure.create({
      type: report.outcome === 'cancelled' ? 'RESTORE_CANCELLED' : 'RESTORE_FAILED',
      message:
        `restore of ${target} ${report.outcome} at "${failedAt}": ${report.error}. Target: ${targetState}.` +
        (writersBack ? ' Writers resumed.' : '') +
        (notDone.length ? ` NOT DONE: ${notDone.join(', ')}.` : ''),
      details: [report],
      nonRetryable: true,
    });
  }
}
