// Activities of the backup runbook, over the domain library. Every one is safe to run again: a retried
// capture rewrites the same keys, manifests and reports are whole-file atomic writes, and retention
// removes only what its own listing shows.
import { Context } from '@temporalio/activity';
import { targetOf } from '../common/config';
import { durationMs } from '../common/duration';
import type { BackupReport, CaptureResult, CopyCheck, Manifest, PreflightResult, RetentionOutcome } from '../common/types';
import { appendAudit } from '../domain/audit';
import { captureBackup, verifyCopies, writeBackupReport, writeManifest, type CaptureInput, type VerifyCopiesInput } from '../domain/backup';
import { inspectTarget } from '../domain/preflight';
import { retention } from '../domain/retention';
import type { Deps } from './deps';
import { fail } from '../common/errors';
import type { Signature } from '../common/signature';
import { whileMoving } from './heartbeat';

export function createBackupActivities(deps: Deps) {
  const { config } = deps;
  return {
    async preflight(target: string): Promise<PreflightResult> {
      return inspectTarget(target, targetOf(config, target));
    },

    /**
     * Alive while bytes move. The capture's own idle timers (captureIdleTimeout) name the stalled
     * stage; the heartbeat's stall, at twice that, is the backstop for any other.
     */
    async capture(input: CaptureInput): Promise<CaptureResult> {
      const idleMs = durationMs(targetOf(config, input.target).captureIdleTimeout);
      const captured = await whileMoving((p) => captureBackup(deps, input, p), 2 * idleMs);
      const { runId } = Context.current().info.workflowExecution ?? {};
      return { ...captured, receipt: deps.signer().sign(captureReceipt(runId, input.backupId, input.target, captured)).signature };
    },

    async verifyCopies(input: VerifyCopiesInput): Promise<CopyCheck[]> {
      return whileMoving((p) => verifyCopies(deps, input, p));
    },

    /**
     * The commit point: a backup exists from the moment its manifest does. The worker signs only a
     * manifest of this run that says what this run's capture receipt says was captured.
     */
    async writeManifest(input: { manifest: Manifest; receipt?: Signature }): Promise<void> {
      const { manifest, receipt } = input;
      const { runId, workflowId } = Context.current().info.workflowExecution ?? {};
      const claimed = captureReceipt(runId, manifest.backupId, manifest.target, {
        method: manifest.capture.method,
        startedAt: manifest.createdAt,
        rdb: manifest.rdb,
        artifact: manifest.artifact,
        copies: manifest.copies,
        keyspace: manifest.keyspace,
      });
      const verdict = deps.verify({ ...claimed, signature: receipt });
      if (manifest.workflow.runId !== runId || manifest.workflow.workflowId !== workflowId || !verdict.ok) {
        fail(
          'SIGNATURE_INVALID',
          `the worker refuses to sign the manifest of ${manifest.backupId}: it does not say what run ${runId}'s capture captured` +
            (verdict.ok ? ' (it names another run)' : ` (${verdict.reason})`),
        );
      }
      return writeManifest(deps, manifest);
    },

    async writeReport(report: BackupReport): Promise<void> {
      return writeBackupReport(deps, report);
    },

    /** Deletes what the policy lets go, and says so in the target's audit trail. */
    async applyRetention(input: { target: string; dryRun: boolean; requestedBy?: string }): Promise<RetentionOutcome> {
      const outcome = await retention(deps, input.target, input.dryRun);
      if (!input.dryRun && (outcome.deleted.length || outcome.abandoned.length)) {
        const { workflowExecution, activityId } = Context.current().info;
        await appendAudit(
          deps,
          {
            at: new Date().toISOString(),
            target: input.target,
            workflowId: workflowExecution?.workflowId ?? 'unknown',
            runId: workflowExecution?.runId ?? 'unknown',
            action: 'retention',
            event: 'deleted',
            actor: input.requestedBy ?? 'retention policy',
            detail: [
              outcome.deleted.length ? `deleted ${outcome.deleted.join(', ')}` : '',
              outcome.abandoned.length ? `cleared unfinished ${outcome.abandoned.join(', ')}` : '',
            ]
              .filter(Boolean)
              .join('; '),
          },
          `${workflowExecution?.runId ?? 'unknown'}/${activityId}`,
        );
      }
      return outcome;
    },
  };
}

/** What a capture receipt binds: this run, this backup, and what was captured and stored. */
export function captureReceipt(
  runId: string | undefined,
  backupId: string,
  target: string,
  c: Pick<CaptureResult, 'method' | 'startedAt' | 'rdb' | 'artifact' | 'copies' | 'keyspace'>,
) {
  return {
    kind: 'capture-receipt',
    runId: runId ?? '',
    backupId,
    target,
    method: c.method,
    startedAt: c.startedAt,
    rdb: c.rdb,
    artifact: c.artifact,
    copies: c.copies,
    keyspace: c.keyspace,
  };
}
