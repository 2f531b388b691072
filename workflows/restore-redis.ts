// restoreRedis, seed 001 as a runbook: plan -> approval -> safety capture -> quiesce writers -> safety
// backup (the copy sealed) -> make live -> verify -> resume writers -> safety backup stored. Every step
// that changes something pushes its undo beside it; a failure or a cancellation runs the pending undos
// in a non-cancellable scope (rolling the data back to the safety copy if it was being replaced), and
// writers are always resumed.
//
// Writers are held only from the seal of the safety copy to the verified restore: the copy follows the
// target from a snapshot taken before the pause, so sealing it takes only the writes made since, and it
// is durable on the worker (fsynced, SHA-256 recorded) before anything is replaced; it becomes a stored,
// verified, signed backup once writers are back (or after a rollback).
import { CancellationScope, defineQuery, executeChild, isCancellation, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import { makeBackupId } from '../common/backup-id';
import { fail } from '../common/errors';
import { messageOf } from '../common/failure';
import type { RestoreInput, RestorePlan, RestoreReport, RestoreStatus, SafetyCopySummary, WriterPauseState } from '../common/restore-types';
import type { PreflightResult } from '../common/types';
import { workflowIds } from '../common/workflow-ids';
import { approvalGate, restoreRecords } from './approval';
import { Saga } from './saga';
import { storeSafetyBackup } from './safety-backup';
import { heavy, prompt, quick, stepper, undo } from './shared';

/** How long an undo retries before the target's webhooks hear that it is still being retried. */
const UNDO_ALERT_MS = 60_000;

export { approveUpdate, rejectUpdate, requestUpdate } from './approval';
export const restoreStatusQuery = defineQuery<RestoreStatus>('status');

export async function restoreRedis(input: RestoreInput): Promise<RestoreReport> {
  const { target } = input;
  const status: RestoreStatus = { step: 'plan', reason: input.reason, decisions: [], refused: [] };
  setHandler(restoreStatusQuery, () => status);
  const gate = approvalGate(input, status);
  const { audit, tell, requester } = restoreRecords(input, status);
  const steps: RestoreReport['steps'] = [];
  const step = stepper(status, steps);
  // What the report says so far: filled in step by step, so that a failure reports what was done.
  const done: Partial<Pick<RestoreReport, 'safetyBackupId' | 'safetyCopy' | 'makeLive' | 'verification'>> = {};
  const warnings: string[] = [];
  const noting = (what: string) => (err: unknown) => void warnings.push(`${what}: ${messageOf(err)}`);

  const plan = await step('plan', () =>
    heavy.planRestore({
      target,
      from: input.from,
      sourceTarget: input.sourceTarget,
      preferDestination: input.preferDestination,
      allowUnsigned: input.allowUnsigned,
    }),
  );
  status.plan = plan;
  const planned = {
    target,
    reason: input.reason,
    /** The person whose key signed the request: known once it is signed. */
    get requestedBy() {
      return requester();
    },
    decisions: status.decisions,
    steps,
    compensations: [],
    plan,
  };
  // The plan proved the backup onto the worker; a restore that ends before using it removes it.
  const dropPlannedCopy = () => CancellationScope.nonCancellable(() => quick.removeRestoreFiles({ backupIds: [plan.backup.backupId] }));
  if (input.dryRun) {
    await dropPlannedCopy().catch(noting('removing the proven copy from the worker'));
    return { ...planned, outcome: 'dry-run', targetState: 'untouched (dry run)', ...(warnings.length ? { warnings } : {}) };
  }
  if (plan.approvers.length === 0) {
    fail(
      'CONFIG_INVALID',
      `target ${target} lists no restore approvers, so no restore of it can be approved (set targets.${target}.restore.approvers)`,
    );
  }

  const verdict = await gate.decide(plan, () =>
    dropPlannedCopy().then(
      () => undefined,
      () => undefined,
    ),
  );
  if (verdict !== 'approved') {
    status.step = verdict;
    await dropPlannedCopy().catch(noting('removing the proven copy from the worker'));
    await tell('restore-done', `restore of ${target} ${verdict}`, 'nothing was changed', { outcome: verdict });
    return {
      ...planned,
      outcome: verdict,
      targetState: `untouched (${verdict}: nothing was changed)`,
      ...(warnings.length ? { warnings } : {}),
    };
  }

  const saga = new Saga();
  const pause = {
    startedAt: undefined as number | undefined,
    renewal: new CancellationScope(),
    renewing: Promise.resolve(),
    /** Why CLIENT PAUSE could not be renewed: writes may have reached the target since. */
    lost: undefined as string | undefined,
  };
  /** Fails safe when the pause lapsed: the restore must not go on as if writers were held. */
  const stillPaused = () => {
    if (pause.lost)
      fail(
        'WRITER_FAILED',
        `CLIENT PAUSE on ${target} lapsed: it could not be renewed (${pause.lost}); writes may have reached the target`,
      );
  };
  const stopRenewal = async () => (pause.renewal.cancel(), await pause.renewing);
  let phase: 'untouched' | 'replacing' | 'verified' = 'untouched';
  let safetyBackupId: string | undefined;
  /** The sealed safety copy, on the worker's host until its safety backup is stored. */
  let safetyCopy: { summary: SafetyCopySummary; preflight: PreflightResult; stored: boolean } | undefined;
  /** Removed once stored (or never sealed); kept on the worker otherwise, for a person to store. */
  const safetyCopyFate = () => (!safetyCopy || safetyCopy.stored ? 'remove' : 'keep');
  try {
    // Before writers pause: the safety copy starts from a snapshot taken now (the writes after it are
    // followed), and the reference that verification compares with is loaded.
    const [taken] = await step('safety capture', () =>
      Promise.all([
        heavy.captureSafetyCopy({ target }),
        heavy.prepareVerification({ backupId: plan.backup.backupId, allowUnsigned: plan.allowUnsigned }),
      ]),
    );
    await step('quiesce writers', async () => {
      pause.startedAt = Date.now();
      for (const writer of plan.writers) {
        // The undo is pushed before the pause: a pause that half happened is still undone.
        const paused: WriterPauseState = { writer, state: {} };
        saga.push(
          `resume writer ${writer}`,
          untilDone(`resume writer ${writer}`, () => undo.resumeWriter({ target, paused })),
        );
        Object.assign(paused, await quick.pauseWriter({ target, writer }));
      }
      if (plan.pauseWrites) {
        saga.push(
          'CLIENT UNPAUSE',
          untilDone('CLIENT UNPAUSE', () => undo.unpauseClientWrites({ target })),
        );
        await quick.pauseClientWrites({ target, limitMs: plan.pauseLimitMs });
        pause.renewing = renewClientPause(plan, pause.renewal, (why) => {
          pause.lost ??= why;
          warnings.push(`renewing CLIENT PAUSE failed: ${why}`);
        });
      }
    });
    // Sealed with writers already paused, the safety copy is exactly what a rollback must bring back:
    // no write can fall between it and the restore. It is durable before anything is replaced.
    const sealed = await step('safety backup', () => heavy.sealSafetyCopy({ target }));
    safetyCopy = { summary: sealed, preflight: taken.preflight, stored: false };
    done.safetyCopy = sealed;
    // Its backup id is fixed now: the rollback and the report name it before it is stored.
    const safetyId = makeBackupId(target, new Date(), workflowInfo().runId.replace(/-/g, '').slice(-8));
    safetyBackupId = done.safetyBackupId = safetyId;
    stillPaused();
    const rollback = `roll back to the safety backup ${safetyId}`;
    const dropRollback = saga.push(
      rollback,
      untilDone(rollback, async () => {
        await undo.makeLive({ target, backupId: safetyId, undo: true });
        return 'the pre-restore data is back';
      }),
    );
    phase = 'replacing';
    done.makeLive = await step('make live', () =>
      heavy.makeLive({ target, backupId: plan.backup.backupId, allowUnsigned: plan.allowUnsigned }),
    );
    stillPaused();
    await step('after make-live check', () => quick.afterMakeLive({ target }));
    done.verification = await step('verify', () =>
      heavy.verifyRestore({ target, backupId: plan.backup.backupId, before: plan.current, allowUnsigned: plan.allowUnsigned }),
    );
    stillPaused();
    const failed = done.verification.filter((c) => !c.ok);
    if (failed.length) fail('VERIFY_FAILED', `verification failed: ${failed.map((c) => `${c.name}: ${c.detail}`).join('; ')}`);
    // Verified: the restore stands. From here a failure is reported, never answered by undoing it.
    dropRollback();
    phase = 'verified';
    await step('resume writers', async () => {
      await stopRenewal();
      await saga.runAll();
    });
  } catch (err) {
    return await CancellationScope.nonCancellable(() => compensate(err));
  }

  const writePauseMs = Date.now() - (pause.startedAt ?? Date.now());
  await storeSafetyCopy();
  await quick
    .removeRestoreFiles({ backupIds: [plan.backup.backupId, safetyBackupId!], safetyCopy: safetyCopyFate() })
    .catch(noting('removing the local copies'));
  status.step = 'done';
  await audit('restored', requester(), `from ${plan.backup.backupId}; safety backup ${safetyBackupId}`).catch(
    noting('the audit record of the restore was not written'),
  );
  await tell('restore-done', `restore of ${target} done`, `restored from ${plan.backup.backupId} and verified; writers resumed`, {
    outcome: 'restored',
    backupId: plan.backup.backupId,
    safetyBackupId,
  });
  const targetState = `restored from ${plan.backup.backupId} and verified; writers resumed`;
  return { ...planned, ...done, outcome: 'restored', targetState, writePauseMs, ...(warnings.length ? { warnings } : {}) };

  /**
   * An undo that runs until it is done: the status says what it waits for and since when, and if it
   * takes longer than a minute, the target's webhooks hear that someone should look.
   */
  function untilDone(name: string, run: () => Promise<unknown>): () => Promise<unknown> {
    return async () => {
      const before = status.step;
      status.step = `${phase === 'verified' ? 'resuming' : 'compensating'}: ${name} (since ${new Date().toISOString()})`;
      const timer = new CancellationScope();
      const alert = timer
        .run(() => sleep(UNDO_ALERT_MS))
        .then(
          () =>
            tell(
              'restore-undo-waiting',
              `restore of ${target}: "${name}" is still being retried`,
              `since ${new Date(Date.now() - UNDO_ALERT_MS).toISOString()}; it is retried until it succeeds. See \`runbook status ${workflowInfo().workflowId}\``,
              { undo: name },
            ),
          () => undefined,
        );
      try {
        return await run();
      } finally {
        timer.cancel();
        await alert;
        if (status.step.includes(name)) status.step = before;
      }
    };
  }

  /**
   * The sealed safety copy made a backup like any other, once writers are back, or beside the undos
   * of a failure (so that a rollback that waits for the target leaves it stored, for a person to use):
   * a failure to store it is reported, and the copy stays on the worker's host.
   */
  async function storeSafetyCopy(beside = false): Promise<void> {
    if (!safetyCopy || safetyCopy.stored || !safetyBackupId) return;
    const runId = workflowInfo().runId;
    // Beside the undos, the status keeps saying what they wait for.
    const track = beside
      ? async <T>(name: string, fn: () => Promise<T>) => {
          const startedAt = new Date();
          const out = await fn();
          steps.push({ name, startedAt: startedAt.toISOString(), durationMs: Date.now() - startedAt.getTime() });
          return out;
        }
      : step;
    try {
      await track('store safety backup', () =>
        executeChild(storeSafetyBackup, {
          workflowId: workflowIds.safetyBackup(target, runId),
          args: [
            {
              target,
              backupId: safetyBackupId!,
              restoreRunId: runId,
              requestedBy: `restore:${requester()}`,
              preflight: safetyCopy!.preflight,
            },
          ],
        }),
      );
      safetyCopy.stored = true;
    } catch (err) {
      warnings.push(
        `the safety backup ${safetyBackupId} was not stored (${messageOf(err)}); its copy stays on ${safetyCopy.summary.host}, ` +
          `in the worker's private folder under lasting/safety/${runId}`,
      );
    }
  }

  /** Runs the pending undos, records the ending, and fails the restore with its report. */
  async function compensate(err: unknown): Promise<never> {
    const failedAt = status.step;
    status.step = 'compensating';
    await stopRenewal();
    const [undone] = await Promise.all([saga.compensate(), storeSafetyCopy(true)]);
    const rollback = undone.find((u) => u.name.startsWith('roll back'));
    const targetState =
      phase === 'verified'
        ? `restored from ${plan.backup.backupId} and verified, but resuming writers failed`
        : phase === 'untouched' || !rollback
          ? 'untouched: it failed before any data was replaced'
          : rollback.ok
            ? `rolled back to its pre-restore data (safety backup ${safetyBackupId})`
            : `UNKNOWN: the rollback failed for good (${rollback.detail}); the target now: ${await quick
                .describeTarget({ target })
                .catch(
                  (e: unknown) => `not readable (${messageOf(e)})`,
                )}; restore ${safetyBackupId} by hand (runbook restore ${target} --from ${safetyBackupId})`;
    const writePauseMs = pause.startedAt === undefined ? undefined : Date.now() - pause.startedAt;
    // The local copies are production data: removed whatever the ending (the stored backups stay).
    await quick
      .removeRestoreFiles({ backupIds: [plan.backup.backupId, ...(safetyBackupId ? [safetyBackupId] : [])], safetyCopy: safetyCopyFate() })
      .catch(noting('removing the local copies'));
    const outcome = isCancellation(err) ? 'cancelled' : 'failed';
    const error = messageOf(err);
    await audit(outcome, requester(), `${error}; target: ${targetState}`).catch(noting('the audit record of the failure was not written'));
    const final: RestoreReport = {
      ...planned,
      ...done,
      compensations: undone,
      outcome,
      targetState,
      error,
      ...(writePauseMs !== undefined ? { writePauseMs } : {}),
      ...(warnings.length ? { warnings } : {}),
    };
    status.step = outcome;
    await tell('restore-done', `restore of ${target} ${outcome.toUpperCase()}`, `${error}\ntarget: ${targetState}`, { outcome });
    const notDone = undone.filter((c) => !c.ok).map((c) => c.name);
    const writersBack = saga.pending.length === 0;
    return fail(
      outcome === 'cancelled' ? 'RESTORE_CANCELLED' : 'RESTORE_FAILED',
      `restore of ${target} ${outcome} at "${failedAt}": ${error}. Target: ${targetState}.` +
        (writersBack ? ' Writers resumed.' : '') +
        (notDone.length ? ` NOT DONE: ${notDone.join(', ')}.` : ''),
      undefined,
      [final],
    );
  }
}

/**
 * CLIENT PAUSE renewed while the restore runs; if the runbook dies, the last pause lapses on its own.
 * Only the wait between renewals is cancellable: a renewal under way always completes, so none can
 * land after the final CLIENT UNPAUSE. A renewal that fails is reported, and fails the restore safe.
 */
async function renewClientPause(plan: RestorePlan, scope: CancellationScope, onFailure: (why: string) => void): Promise<void> {
  for (;;) {
    try {
      await scope.run(() => sleep(Math.max(1000, Math.floor(plan.pauseLimitMs / 3))));
    } catch {
      return;
    }
    await CancellationScope.nonCancellable(() => prompt.pauseClientWrites({ target: plan.target, limitMs: plan.pauseLimitMs })).catch(
      (err: unknown) => onFailure(messageOf(err)),
    );
  }
}
