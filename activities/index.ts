// The activities of the backup runbook. Every one is safe to run again: a retried capture rewrites
// the same keys (the backup id is fixed by the workflow run), manifests and reports are whole-file
// atomic writes, and retention only removes what its own listing shows.
import { Context, ApplicationFailure } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { Config } from '../common/config';
import { targetOf } from '../common/config';
import { durationMs } from '../common/duration';
import { RunbookError, PERMANENT } from '../common/errors';
import { applyRetentionPolicy } from '../common/retention';
import { parseBackupId } from '../common/backup-id';
import {
  artifactFileName,
  artifactKeys,
  type BackupReport,
  type CaptureResult,
  type CopyCheck,
  type Manifest,
  type PreflightResult,
  type RetentionOutcome,
} from '../common/types';
import { openReplicationStream } from '../domain/capture/replication';
import { openBgsaveSnapshot } from '../domain/capture/bgsave';
import { listDestination } from '../domain/catalog';
import { storeRdb } from '../domain/pipeline';
import { inspectTarget, keyspaceNow } from '../domain/preflight';
import { classifyRedisError, connectTarget, endpointOf } from '../domain/redis-target';
import type { StoreRegistry } from '../domain/storage';
import { verifyCopy, type ExpectedArtifact } from '../domain/verify';
import { keyring, type Keyring } from '../domain/crypto/keys';
import { createRestoreActivities } from './restore';
import { createDrillActivities } from './drill';
import { createRecoverActivities } from './recover';
import { appendAudit } from '../domain/audit';
import type { AuditEvent } from '../common/audit';
import type { RunbookEvent } from '../common/events';
import { sendNotification } from '../domain/notify';

export interface ActivityDeps {
  config: Config;
  stores: StoreRegistry;
  /** Encryption keys; built from the config when absent. */
  keys?: Keyring;
  /** Used by retention to tell a running backup's unfinished folder from an abandoned one. */
  temporal?: Client;
  /** Told of every notification event, whether or not a webhook wants it (the worker's metrics). */
  onEvent?: (e: RunbookEvent) => void;
}

export interface CaptureInput {
  target: string;
  backupId: string;
  workflowId: string;
  runId: string;
}

/** Turns our errors into Temporal failures: permanent ones are not retried. */
async function run<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof RunbookError) {
      throw ApplicationFailure.create({
        type: err.code,
        message: err.hint ? `${err.message} (${err.hint})` : err.message,
        nonRetryable: PERMANENT.has(err.code),
      });
    }
    throw err;
  }
}

export function createActivities(deps: ActivityDeps) {
  const { config, stores } = deps;
  const keyRing = deps.keys ?? keyring(config);

  return {
    ...createRestoreActivities(deps, run),
    ...createDrillActivities(deps, run),
    ...createRecoverActivities(deps, run),

    async preflight(target: string): Promise<PreflightResult> {
      return run(() => inspectTarget(target, targetOf(config, target)));
    },

    async capture(input: CaptureInput): Promise<CaptureResult> {
      return run(async () => {
        const target = targetOf(config, input.target);
        const ctx = Context.current();
        const keys = artifactKeys(input.target, input.backupId);
        // A target that encrypts never stores cleartext: no usable key, no byte written.
        const enc = target.encrypt ? keyRing.encryptionFor(target.encrypt) : undefined;
        const file = artifactFileName(target.compression, enc !== undefined);
        const destinations = target.destinations.map((d) => ({ store: stores(d), key: keys.data(file) }));
        // The run marker comes first: retention can then tell this folder belongs to a live run.
        const marker = JSON.stringify({ workflowId: input.workflowId, runId: input.runId, startedAt: new Date().toISOString() });
        await Promise.all(destinations.map(({ store }) => store.write(keys.run, marker)));

        const startedAt = new Date();
        // Heartbeats also while the server forks and before the first byte arrives.
        // Heartbeats say the capture is alive only while bytes move: a pipeline stalled anywhere stops
        // them, the heartbeat timeout fires, and another attempt starts (waiting for the server's first
        // byte is bounded by captureIdleTimeout in the capture itself).
        let bytes = 0;
        let moved = Date.now();
        const idleMs = durationMs(target.captureIdleTimeout);
        const beat = setInterval(() => {
          if (Date.now() - moved < idleMs) ctx.heartbeat({ phase: bytes ? 'transfer' : 'waiting for the RDB', bytes });
        }, 5_000);
        try {
          const client = await connectTarget(input.target, target);
          let keyspace: CaptureResult['keyspace'];
          let source;
          try {
            keyspace = await keyspaceNow(client);
            if (target.capture === 'bgsave-copy') {
              source = (
                await openBgsaveSnapshot(client, {
                  dataDir: target.dataDir,
                  signal: ctx.cancellationSignal,
                  onWait: () => ctx.heartbeat({ phase: 'bgsave' }),
                })
              ).stream;
            } else {
              const e = endpointOf(input.target, target);
              source = (
                await openReplicationStream({
                  host: e.host,
                  port: e.port,
                  username: e.username,
                  password: e.password,
                  tls: e.tls,
                  idleTimeoutMs: durationMs(target.captureIdleTimeout),
                  signal: ctx.cancellationSignal,
                })
              ).stream;
            }
          } catch (err) {
            throw classifyRedisError(err, input.target, endpointOf(input.target, target));
          } finally {
            client.disconnect();
          }
          const result = await storeRdb(source, destinations, {
            encryptTo: enc?.recipient,
            compression: target.compression,
            compressionLevel: target.compressionLevel,
            signal: ctx.cancellationSignal,
            onProgress: (raw, stored) => {
              if (raw + stored !== bytes) moved = Date.now();
              bytes = raw + stored;
              ctx.heartbeat({ phase: 'transfer', bytes: raw });
            },
          });
          return {
            method: target.capture,
            startedAt: startedAt.toISOString(),
            durationMs: Date.now() - startedAt.getTime(),
            rdb: { ...result.rdb, check: 'redis-check-rdb' },
            artifact: {
              file,
              compression: target.compression,
              encryption: enc?.encryption ?? null,
              size: result.stored.size,
              sha256: result.stored.sha256,
            },
            copies: result.copies,
            keyspace,
          };
        } finally {
          clearInterval(beat);
        }
      });
    },

    async verifyCopies(input: {
      target: string;
      backupId: string;
      artifact: CaptureResult['artifact'];
      rdb: CaptureResult['rdb'];
      destinations?: string[];
    }): Promise<CopyCheck[]> {
      return run(async () => {
        const target = targetOf(config, input.target);
        const key = artifactKeys(input.target, input.backupId).data(input.artifact.file);
        const expected: ExpectedArtifact = { ...input.artifact, rdb: input.rdb };
        const ctx = Context.current();
        const timer = setInterval(() => ctx.heartbeat({ phase: 'verify' }), 5_000);
        try {
          return await Promise.all(
            // One copy is decompressed and checked to the RDB's checksum; the others have the same
            // stored bytes, so their stored checksum proves them too.
            (input.destinations ?? target.destinations).map((d, i) =>
              verifyCopy(stores(d), key, expected, { keys: keyRing, signal: ctx.cancellationSignal, depth: i === 0 ? 'full' : 'stored' }),
            ),
          );
        } finally {
          clearInterval(timer);
        }
      });
    },

    /** The commit point: a backup exists from the moment its manifest does. */
    async writeManifest(manifest: Manifest): Promise<void> {
      return run(async () => {
        const target = targetOf(config, manifest.target);
        const keys = artifactKeys(manifest.target, manifest.backupId);
        const body = JSON.stringify(manifest, null, 2);
        await Promise.all(target.destinations.map((d) => stores(d).write(keys.manifest, body)));
      });
    },

    /** Sends an event to the target's webhooks; the metrics hear of it on the first attempt only. */
    async notify(event: RunbookEvent): Promise<string[]> {
      return run(async () => {
        const ctx = Context.current();
        if (ctx.info.attempt === 1) deps.onEvent?.(event);
        // Webhooks reached by an earlier attempt are not sent the event again.
        const sent = new Set((ctx.info.heartbeatDetails as string[] | undefined) ?? []);
        return sendNotification(config, event, {
          skip: sent,
          onSent: (webhook) => {
            sent.add(webhook);
            ctx.heartbeat([...sent]);
          },
        });
      });
    },

    async recordAudit(event: AuditEvent): Promise<void> {
      return run(() => appendAudit(config, stores, event));
    },

    async writeReport(report: BackupReport): Promise<void> {
      return run(async () => {
        const target = targetOf(config, report.target);
        const keys = artifactKeys(report.target, report.backupId);
        await Promise.all(
          target.destinations.flatMap((d) => [
            stores(d).write(keys.reportJson, JSON.stringify(report, null, 2)),
            stores(d).write(keys.reportText, report.text),
          ]),
        );
      });
    },

    async applyRetention(input: { target: string; dryRun: boolean }): Promise<RetentionOutcome> {
      return run(() => retention(deps, input.target, input.dryRun));
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;

export async function retention(deps: ActivityDeps, targetName: string, dryRun: boolean): Promise<RetentionOutcome> {
  const target = targetOf(deps.config, targetName);
  const outcome: RetentionOutcome = { dryRun, kept: [], deleted: [], abandoned: [], suspicious: [] };
  const kept = new Map<string, Set<string>>();
  for (const destination of target.destinations) {
    const store = deps.stores(destination);
    const listing = await listDestination(deps.stores, destination, targetName);
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
      if (await runStillGoing(deps, store, targetName, id)) continue;
      if (!dryRun) await store.removeDir(artifactKeys(targetName, id).dir);
      if (!outcome.abandoned.includes(id)) outcome.abandoned.push(id);
    }
    for (const id of listing.invalidManifest) if (!outcome.suspicious.includes(id)) outcome.suspicious.push(`${destination}:${id}`);
  }
  outcome.kept = [...kept].map(([backupId, reasons]) => ({ backupId, reasons: [...reasons] }));
  return outcome;
}

/** True when the folder's run is still running, or when that cannot be known (then it is left alone). */
async function runStillGoing(deps: ActivityDeps, store: ReturnType<StoreRegistry>, target: string, backupId: string): Promise<boolean> {
  const text = await store.readText(artifactKeys(target, backupId).run);
  if (!text) {
    // No marker: written by nothing we know. Leave it unless it is old enough to be certainly dead.
    return Date.now() - parseBackupId(backupId).time.getTime() < 24 * 3600_000;
  }
  const { workflowId, runId } = JSON.parse(text) as { workflowId: string; runId: string };
  if (!deps.temporal) return true;
  try {
    const d = await deps.temporal.workflow.getHandle(workflowId, runId).describe();
    return d.status.name === 'RUNNING';
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') return false;
    return true;
  }
}
