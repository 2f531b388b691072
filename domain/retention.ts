// Applying a target's retention policy (common/retention.ts decides; this lists and deletes). Only
// what its own listing shows is removed: backups the policy lets go, and unfinished folders whose run
// has ended. A damaged manifest is never deleted, nor one that does not count (unsigned, forged,
// refused: domain/catalog.ts): the policy counts trusted backups only, and the others are reported,
// for a person to look at.
import { parseBackupId } from '../common/backup-id';
import { targetOf } from '../common/config';
import { applyRetentionPolicy } from '../common/retention';
import { artifactKeys, type RetentionOutcome } from '../common/types';
import { listDestination } from './catalog';
import type { Store } from './storage';
import type { Services } from './services';

/** An unfinished multipart upload older than this belongs to no running attempt. */
const STALE_UPLOAD_MS = 24 * 3600_000;

export async function retention(
  s: Pick<Services, 'config' | 'stores' | 'temporal'>,
  targetName: string,
  dryRun: boolean,
): Promise<RetentionOutcome> {
  const target = targetOf(s.config, targetName);
  const outcome: RetentionOutcome = { dryRun, kept: [], deleted: [], abandoned: [], suspicious: [] };
  const kept = new Map<string, Set<string>>();
  for (const destination of target.destinations) {
    const store = s.stores(destination);
    const listing = await listDestination(s.config, s.stores, destination, targetName);
    const decision = applyRetentionPolicy(
      [...listing.withManifest.values()].map((m) => ({
        backupId: m.backupId,
        time: new Date(m.createdAt),
        verified: m.verification.copies.every((c) => c.ok),
      })),
      target.retention,
    );
    for (const k of decision.keep) {
      const reasons = kept.get(k.backupId) ?? new Set();
      k.reasons.forEach((r) => reasons.add(r));
      kept.set(k.backupId, reasons);
    }
    for (const id of decision.remove) {
      if (!dryRun) await store.removeDir(artifactKeys(targetName, id).dir);
      if (!outcome.deleted.includes(id)) outcome.deleted.push(id);
    }
    for (const id of listing.withoutManifest) {
      if (await runStillGoing(s, store, targetName, id)) continue;
      if (!dryRun) await store.removeDir(artifactKeys(targetName, id).dir);
      if (!outcome.abandoned.includes(id)) outcome.abandoned.push(id);
    }
    for (const id of listing.invalidManifest) outcome.suspicious.push(`${destination}:${id}`);
    for (const [id, { trust }] of listing.untrusted) outcome.suspicious.push(`${destination}:${id} (${trust.state}: ${trust.reason})`);
    // Multipart uploads whose attempt died with the server gone: invisible, but billed and kept by S3.
    if (!dryRun && store.abortStaleUploads) {
      for (const key of await store.abortStaleUploads(targetName, STALE_UPLOAD_MS))
        (outcome.abortedUploads ??= []).push(`${destination}:${key}`);
    }
  }
  outcome.kept = [...kept].map(([backupId, reasons]) => ({ backupId, reasons: [...reasons] }));
  return outcome;
}

/** True when the folder's run is still running, or when that cannot be known (then it is left alone). */
async function runStillGoing(s: Pick<Services, 'temporal'>, store: Store, target: string, backupId: string): Promise<boolean> {
  const text = await store.readText(artifactKeys(target, backupId).run);
  if (!text) {
    // No marker: written by nothing we know. Leave it unless it is old enough to be certainly dead.
    return Date.now() - parseBackupId(backupId).time.getTime() < 24 * 3600_000;
  }
  const { workflowId, runId } = JSON.parse(text) as { workflowId: string; runId: string };
  if (!s.temporal) return true;
  try {
    const d = await s.temporal.workflow.getHandle(workflowId, runId).describe();
    return d.status.name === 'RUNNING';
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') return false;
    return true;
  }
}
