// backupRedis: preflight, capture (checked, compressed, encrypted, streamed to every destination),
// proof of every stored copy, the manifest last (the commit point), retention, the report.
import { defineQuery, isCancellation, setHandler, workflowInfo } from '@temporalio/workflow';
import { makeBackupId } from '../common/backup-id';
import { fail } from '../common/errors';
import { renderBackupText } from '../common/report';
import {
  TOOL_NAME,
  type BackupInput,
  type BackupReport,
  type BackupStatus,
  type CaptureResult,
  type Manifest,
  type PreflightResult,
} from '../common/types';
import { TOOL_VERSION } from '../common/version';
import { copying, messageOf, quick, records, stepper } from './shared';

export const backupStatusQuery = defineQuery<BackupStatus>('status');

export async function backupRedis(input: BackupInput): Promise<BackupReport> {
  try {
    return await runBackup(input);
  } catch (err) {
    if (!isCancellation(err)) {
      const info = workflowInfo();
      // Told, never in the way: a webhook that is down does not change how the backup ended.
      await records
        .notify({
          event: 'backup-failed',
          target: input.target,
          at: new Date().toISOString(),
          title: `backup of ${input.target} FAILED`,
          text: `${messageOf(err)}
no backup was kept (${info.workflowId})`,
          workflowId: info.workflowId,
          fields: { requestedBy: input.requestedBy ?? 'unknown' },
        })
        .catch(() => {});
    }
    throw err;
  }
}

async function runBackup(input: BackupInput): Promise<BackupReport> {
  const info = workflowInfo();
  // Run ids are UUIDv7: their first digits are a timestamp, their last ones random.
  const backupId = makeBackupId(input.target, info.runStartTime, info.runId.replace(/-/g, '').slice(-8));
  const steps: BackupStatus['steps'] & Parameters<typeof stepper>[1] = [];
  const status: BackupStatus = { backupId, step: 'preflight', steps };
  setHandler(backupStatusQuery, () => status);
  const step = stepper(status, steps);

  const pre = await step('preflight', () => quick.preflight(input.target));
  const captured = await step('capture', () =>
    copying.capture({ target: input.target, backupId, workflowId: info.workflowId, runId: info.runId }),
  );
  const manifest = await proveAndCommit(step, {
    target: input.target,
    backupId,
    captured,
    tags: input.tags ?? [],
    requestedBy: input.requestedBy ?? 'unknown',
    preflight: pre,
  });
  // A restore's safety backup skips retention: it must not delete the backup being restored.
  const retention = input.skipRetention
    ? { dryRun: true, kept: [], deleted: [], abandoned: [], suspicious: [] }
    : await step('retention', () => quick.applyRetention({ target: input.target, dryRun: false, requestedBy: input.requestedBy }));

  const report: BackupReport = { backupId, target: input.target, ok: true, manifest, retention, steps: status.steps, text: '' };
  report.text = renderBackupText(report);
  await step('report', () => quick.writeReport(report));
  status.step = 'done';
  return report;
}

/**
 * The proof of every stored copy, then the manifest (the commit point): shared by a backup and a
 * restore's safety backup. A copy that fails its proof leaves no manifest, so the backup never exists.
 */
export async function proveAndCommit(
  step: ReturnType<typeof stepper>,
  b: { target: string; backupId: string; captured: CaptureResult; tags: string[]; requestedBy: string; preflight: PreflightResult },
): Promise<Manifest> {
  const info = workflowInfo();
  const { target, backupId, captured } = b;
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
    tags: b.tags,
    requestedBy: b.requestedBy,
    createdAt: captured.startedAt,
    completedAt: new Date().toISOString(),
    durationMs: Date.now() - info.runStartTime.getTime(),
    tool: { name: TOOL_NAME, version: TOOL_VERSION },
    workflow: { workflowId: info.workflowId, runId: info.runId },
    redis: b.preflight.redis,
    capture: { method: captured.method, durationMs: captured.durationMs },
    rdb: captured.rdb,
    artifact: captured.artifact,
    copies: captured.copies,
    keyspace: captured.keyspace,
    prefixes: b.preflight.prefixes,
    verification: { verifiedAt: new Date().toISOString(), copies },
  };
  await step('manifest', () => quick.writeManifest({ manifest, receipt: captured.receipt }));
  return manifest;
}
