// storeSafetyBackup: a restore's safety copy, taken on the worker with writers paused, made a backup
// like any other once writers are back: stored to every destination, every copy proven, the manifest
// last and signed. Its workflow id (workflowIds.safetyBackup) is what lets that restore, and only it,
// roll back to it.
import { defineQuery, setHandler } from '@temporalio/workflow';
import { renderBackupText } from '../common/report';
import type { BackupReport, BackupStatus, PreflightResult } from '../common/types';
import { proveAndCommit } from './backup-redis';
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
  const { target, backupId } = input;
  const steps: BackupStatus['steps'] & Parameters<typeof stepper>[1] = [];
  const status: BackupStatus = { backupId, step: 'capture', steps };
  setHandler(safetyBackupStatusQuery, () => status);
  const step = stepper(status, steps);

  const captured = await step('capture', () => copying.storeSafetyCopy({ target, backupId, restoreRunId: input.restoreRunId }));
  const manifest = await proveAndCommit(step, {
    target,
    backupId,
    captured,
    tags: ['pre-restore'],
    requestedBy: input.requestedBy,
    preflight: input.preflight,
  });
  // A restore's safety backup skips retention: it must not delete the backup being restored.
  const retention = { dryRun: true, kept: [], deleted: [], abandoned: [], suspicious: [] };
  const report: BackupReport = { backupId, target, ok: true, manifest, retention, steps: status.steps, text: '' };
  report.text = renderBackupText(report);
  await step('report', () => quick.writeReport(report));
  status.step = 'done';
  return report;
}
