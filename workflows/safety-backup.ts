// storeSafetyBackup: a restore's safety copy, taken on the worker with writers paused, made a backup
// like any other once writers are back: stored to every destination, every copy proven, the manifest
// last and signed. Its workflow id (workflowIds.safetyBackup) is what lets that restore, and only it,
// roll back to it.
import { defineQuery, setHandler, workflowInfo } from '@temporalio/workflow';
import { fail } from '../common/errors';
import { renderBackupText } from '../common/report';
import { TOOL_NAME, type BackupReport, type BackupStatus, type Manifest, type PreflightResult } from '../common/types';
import { TOOL_VERSION } from '../common/version';
import { copying, quick, stepper } from './shared';

export interface SafetyBackupInput {
  target: string;
  /** Fixed by the restore before it replaced anything: its rollback names it. */
  backupId: string;
  /** The restore run whose safety copy this is. */
  restoreRunId: string;
  requestedBy: string;
  /** The target's facts before the restore, for the manifest. */
  preflight: PreflightResult;
}

export const safetyBackupStatusQuery = defineQuery<BackupStatus>('status');

export async function storeSafetyBackup(input: SafetyBackupInput): Promise<BackupReport> {
  const info = workflowInfo();
  const { target, backupId } = input;
  const steps: BackupStatus['steps'] & Parameters<typeof stepper>[1] = [];
  const status: BackupStatus = { backupId, step: 'capture', steps };
  setHandler(safetyBackupStatusQuery, () => status);
  const step = stepper(status, steps);

  const captured = await step('capture', () => copying.storeSafetyCopy({ target, backupId, restoreRunId: input.restoreRunId }));
  const copies = await step('verify', () =>
    copying.verifyCopies({ target, backupId, artifact: captured.artifact, rdb: captured.rdb, proof: captured.proof }),
  );
  const bad = copies.filter((c) => !c.ok);
  if (bad.length) {
    fail('VERIFY_FAILED', `stored copies failed verification: ${bad.map((c) => `${c.destination}: ${c.detail}`).join('; ')}`);
  }
  const manifest: Manifest = {
    formatVersion: 1,
    backupId,
    target,
    tags: ['pre-restore'],
    requestedBy: input.requestedBy,
    createdAt: captured.startedAt,
    completedAt: new Date().toISOString(),
    durationMs: Date.now() - info.runStartTime.getTime(),
    tool: { name: TOOL_NAME, version: TOOL_VERSION },
    workflow: { workflowId: info.workflowId, runId: info.runId },
    redis: input.preflight.redis,
    capture: { method: captured.method, durationMs: captured.durationMs },
    rdb: captured.rdb,
    artifact: captured.artifact,
    copies: captured.copies,
    keyspace: captured.keyspace,
    prefixes: input.preflight.prefixes,
    verification: { verifiedAt: new Date().toISOString(), copies },
  };
  await step('manifest', () => quick.writeManifest({ manifest, receipt: captured.receipt }));
  // A restore's safety backup skips retention: it must not delete the backup being restored.
  const retention = { dryRun: true, kept: [], deleted: [], abandoned: [], suspicious: [] };
  const report: BackupReport = { backupId, target, ok: true, manifest, retention, steps: status.steps, text: '' };
  report.text = renderBackupText(report);
  await step('report', () => quick.writeReport(report));
  status.step = 'done';
  return report;
}
