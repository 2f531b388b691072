// Activities of the restore runbook. Each is safe to retry: planning and verifying only read; pausing
// and resuming are idempotent; making a backup live starts over from the same proven file; the safety
// copy is followed again from scratch, sealed once (a retry finds the record), stored again whole.
import { createReadStream } from 'node:fs';
import os from 'node:os';
import { Context } from '@temporalio/activity';
import { targetOf } from '../common/config';
import { durationMs } from '../common/duration';
import { fail, RunbookError } from '../common/errors';
import type { MakeLiveResult, RestoreCheck, RestorePlan, TargetState, WriterPauseState } from '../common/restore-types';
import { artifactFileName, artifactKeys, type CaptureResult, type PreflightResult } from '../common/types';
import { findBackup } from '../domain/catalog';
import { storeRdb } from '../domain/pipeline';
import { inspectTarget } from '../domain/preflight';
import { connectTarget, endpointOf } from '../domain/redis-target';
import { localRdb, removeLocalRdb } from '../domain/restore/local-rdb';
import {
  captureNow,
  findSafetyDir,
  newSafetyDir,
  readRecord,
  removeSafetyCopy,
  safetyRdb,
  SafetySession,
  FollowRefused,
  summaryOf,
  type SafetyCopySummary,
} from '../domain/restore/safety-copy';
import { makeLive, readTargetState } from '../domain/restore/make-live';
import { planRestore, type PlanInput } from '../domain/restore/plan';
import { databasesFor } from '../domain/restore/scratch';
import { referencePool, restoreChecks } from '../domain/restore/verify';
import { pauseWriter, resumeWriter } from '../domain/restore/writers';
import { runCommand } from '../domain/tools';
import { countingBytes, type Progress } from '../domain/progress';
import { workflowIds } from '../common/workflow-ids';
import type { SignedStatement, Signer, StatementKind } from '../common/approval-statement';
import { captureReceipt } from './backup';
import { stallMsFor, type Deps } from './deps';
import { createGate } from './gate';
import { whileMoving } from './heartbeat';

/**
 * Safety copies being followed, by restore run: the copy is sealed by the next activity of the run, on
 * this worker if Temporal hands it here (elsewhere, sealing captures anew). One never sealed is dropped.
 */
const following = new Map<string, { session: SafetySession; expiry: NodeJS.Timeout }>();
const FOLLOW_FOR_MS = 60 * 60_000;

async function stopFollowing(runId: string): Promise<SafetySession | undefined> {
  const f = following.get(runId);
  if (!f) return undefined;
  following.delete(runId);
  clearTimeout(f.expiry);
  return f.session;
}

export function createRestoreActivities(deps: Deps) {
  const { config, stores, keys } = deps;
  const references = referencePool();
  const gate = createGate(deps);
  const writerOf = (target: string, name: string) =>
    targetOf(config, target).restore.writers.find((x) => x.name === name) ??
    fail('CONFIG_INVALID', `target ${target} has no writer named ${name}`);
  const runId = () => Context.current().info.workflowExecution?.runId;
  /** The backup's one manifest, read by id, and its RDB on this worker: proven by this run's plan, or proven now. */
  const backupOnWorker = async (backupId: string, p: Progress, allowUnsigned?: boolean) => {
    const { manifest, destinations } = await findBackup(config, stores, backupId, { allowUnsigned });
    const { file } = await localRdb(stores, manifest, destinations, {
      keys,
      signal: p.signal,
      runId: runId(),
      onBytes: countingBytes(p, 'fetch', manifest.artifact.size),
    });
    return { manifest, rdbFile: file };
  };
  const onTarget = async <T>(target: string, fn: (c: Awaited<ReturnType<typeof connectTarget>>) => Promise<T>) => {
    const client = await connectTarget(target, targetOf(config, target));
    try {
      return await fn(client);
    } finally {
      client.disconnect();
    }
  };

  return {
    /** What would be replaced by what: nothing is touched. Refuses what cannot work before anyone approves it. */
    async planRestore(input: Omit<PlanInput, 'runId'>): Promise<RestorePlan> {
      return whileMoving((p) => planRestore(deps, { ...input, runId: runId() }, p), stallMsFor(config, input.sourceTarget ?? input.target));
    },

    /** Who signed a statement sent to this run: the workflow counts it only if this says who. */
    async verifyStatement(input: { kind: StatementKind; signed: SignedStatement }): Promise<Signer> {
      return gate.verifyStatement(input);
    },

    async pauseWriter(input: { target: string; writer: string }): Promise<WriterPauseState> {
      await gate.approvedRun(input.target);
      return pauseWriter(writerOf(input.target, input.writer));
    },

    async resumeWriter(input: { target: string; paused: WriterPauseState }): Promise<void> {
      await gate.approvedRun(input.target);
      return resumeWriter(writerOf(input.target, input.paused.writer), input.paused);
    },

    /** CLIENT PAUSE is time-limited on purpose: if the runbook dies, writers come back after limitMs. */
    async pauseClientWrites(input: { target: string; limitMs: number }): Promise<void> {
      await gate.approvedRun(input.target);
      return onTarget(input.target, async (c) => void (await c.call('CLIENT', 'PAUSE', String(input.limitMs), 'WRITE')));
    },

    async unpauseClientWrites(input: { target: string }): Promise<void> {
      await gate.approvedRun(input.target);
      return onTarget(input.target, async (c) => void (await c.call('CLIENT', 'UNPAUSE')));
    },

    /**
     * Before writers pause: the target's facts for the safety backup's manifest, and (capture:
     * replication) the safety copy followed from a snapshot taken now, so that sealing it once writers
     * are paused takes only the writes made since.
     */
    async captureSafetyCopy(input: { target: string }): Promise<{ preflight: PreflightResult; following: boolean }> {
      const approved = await gate.approvedRun(input.target);
      const t = targetOf(config, input.target);
      return whileMoving(
        async (p) => {
          const preflight = await inspectTarget(input.target, t);
          await (await stopFollowing(approved.runId))?.discard();
          if (t.capture !== 'replication') return { preflight, following: false };
          let bytes = 0;
          const session = await SafetySession.open({
            endpoint: endpointOf(input.target, t),
            targetName: input.target,
            dir: newSafetyDir(approved.runId),
            idleTimeoutMs: durationMs(t.captureIdleTimeout),
            signal: p.signal,
            onBytes: (n) => p.moved({ phase: 'safety copy', bytes: (bytes += n) }),
          }).catch((err: unknown) => {
            // Not allowed to follow it: sealing takes the whole copy, with writers paused.
            if (err instanceof FollowRefused) return undefined;
            throw err;
          });
          if (!session) return { preflight, following: false };
          const expiry = setTimeout(() => void stopFollowing(approved.runId).then((s) => s?.discard()), FOLLOW_FOR_MS);
          expiry.unref();
          following.set(approved.runId, { session, expiry });
          return { preflight, following: true };
        },
        2 * durationMs(t.captureIdleTimeout),
      );
    },

    /**
     * With writers paused: the safety copy made exact and durable (fsynced, SHA-256 recorded) before
     * anything is replaced. A retry finds the record written; without a followed copy in this process,
     * the whole copy is captured now.
     */
    async sealSafetyCopy(input: { target: string }): Promise<SafetyCopySummary> {
      const approved = await gate.approvedRun(input.target);
      const t = targetOf(config, input.target);
      return whileMoving(
        async (p) => {
          const sealed = findSafetyDir(approved.runId);
          const record = sealed ? await readRecord(sealed) : undefined;
          // Writers have been paused since it was sealed: it is still exact.
          if (record?.target === input.target) return summaryOf(record, false);
          const client = await connectTarget(input.target, t, undefined, 15_000);
          try {
            const f = await stopFollowing(approved.runId);
            if (f && !f.failure) {
              try {
                return summaryOf(await f.seal(client, 30_000, p.signal), false);
              } catch {
                // captured anew below
              }
            }
            await f?.discard();
            const whole = await captureNow({
              endpoint: endpointOf(input.target, t),
              targetName: input.target,
              dir: newSafetyDir(approved.runId),
              idleTimeoutMs: durationMs(t.captureIdleTimeout),
              signal: p.signal,
              onBytes: () => p.moved(),
              method: t.capture,
              client,
              dataDir: t.dataDir,
            });
            return summaryOf(whole, true);
          } finally {
            client.disconnect();
          }
        },
        2 * durationMs(t.captureIdleTimeout),
      );
    },

    /** Before writers pause: the reference verification compares the target with, loaded and waiting. */
    async prepareVerification(input: { backupId: string; allowUnsigned?: boolean }): Promise<void> {
      return whileMoving(async (p) => {
        const { manifest, rdbFile } = await backupOnWorker(input.backupId, p, input.allowUnsigned);
        await p.alive(references.warm(input.backupId, rdbFile, databasesFor(manifest.keyspace)));
      });
    },

    /**
     * The safety backup's capture: the restore run's sealed safety copy, proven against its record and
     * streamed to every destination like any capture. Only the safety backup workflow of that very run
     * (known from this activity's own context) may store it.
     */
    async storeSafetyCopy(input: { target: string; backupId: string; restoreRunId: string }): Promise<CaptureResult> {
      const { workflowId = '', runId: run = '' } = Context.current().info.workflowExecution ?? {};
      if (workflowId !== workflowIds.safetyBackup(input.target, input.restoreRunId)) {
        fail('GATE_REFUSED', `${workflowId} is not the safety backup of restore run ${input.restoreRunId}: it may not store its copy`);
      }
      const t = targetOf(config, input.target);
      return whileMoving(async (p) => {
        const dir = findSafetyDir(input.restoreRunId);
        const record = dir ? await readRecord(dir) : undefined;
        if (!dir || record?.target !== input.target) {
          // Another host's worker may hold it: retried, and told.
          throw new RunbookError(
            'CAPTURE_FAILED',
            `no safety copy of restore run ${input.restoreRunId} of ${input.target} on this worker's host (${os.hostname()})`,
            'it is stored by a worker on the host that took it',
          );
        }
        const rdb = await p.alive(safetyRdb(dir, record, { signal: p.signal, onProgress: (d) => p.moved({ phase: d }) }));
        try {
          const keys = artifactKeys(input.target, input.backupId);
          const enc = t.encrypt ? deps.keys.encryptionFor(t.encrypt) : undefined;
          const file = artifactFileName(t.compression, enc !== undefined);
          const destinations = t.destinations.map((d) => ({ store: stores(d), key: keys.data(file) }));
          await Promise.all(destinations.map(({ store }) => store.abortStaleUploads?.(keys.dir, 0)));
          const marker = JSON.stringify({ workflowId, runId: run, startedAt: new Date().toISOString() });
          await Promise.all(destinations.map(({ store }) => store.write(keys.run, marker)));
          const result = await storeRdb(createReadStream(rdb.file, { highWaterMark: 1 << 20 }), destinations, {
            encryptTo: enc?.recipients,
            compression: t.compression,
            compressionLevel: t.compressionLevel,
            roundTrip: t.verify === 'stream',
            signal: p.signal,
            onWire: () => p.moved(),
            onProgress: (raw) => p.moved({ phase: 'transfer', bytes: raw }),
          });
          if (result.rdb.sha256 !== rdb.sha256 || result.rdb.size !== rdb.size) {
            fail(
              'VERIFY_FAILED',
              `the safety copy changed while it was stored (SHA-256 ${result.rdb.sha256.slice(0, 12)}…, recorded ${rdb.sha256.slice(0, 12)}…)`,
            );
          }
          const captured: CaptureResult = {
            method: record.method,
            startedAt: record.sealedAt,
            durationMs: Date.parse(record.sealedAt) - Date.parse(record.startedAt),
            rdb: { ...result.rdb, check: 'redis-check-rdb' },
            artifact: {
              file,
              compression: t.compression,
              encryption: enc?.encryption ?? null,
              size: result.stored.size,
              sha256: result.stored.sha256,
            },
            copies: result.copies,
            keyspace: record.keyspace,
            proof: result.proof,
          };
          return { ...captured, receipt: deps.signer().sign(captureReceipt(run, input.backupId, input.target, captured)).signature };
        } finally {
          await rdb.release();
        }
      });
    },

    /**
     * `undo`: the rollback, retried until it succeeds (activities/failures.ts), to this run's own safety
     * copy on this host (found by the run id the gate read, re-hashed against its record), or else to
     * this run's stored safety backup.
     */
    async makeLive(input: { target: string; backupId: string; undo?: boolean; allowUnsigned?: boolean }): Promise<MakeLiveResult> {
      const approved = await gate.approvedRun(input.target);
      return whileMoving(async (p) => {
        const target = targetOf(config, input.target);
        if (input.undo) {
          const dir = findSafetyDir(approved.runId);
          const record = dir ? await readRecord(dir) : undefined;
          if (dir && record?.target === input.target) {
            const rdb = await p.alive(safetyRdb(dir, record, { signal: p.signal, onProgress: (d) => p.moved(d) }));
            p.moved(target.restore.strategy);
            return p
              .alive(
                makeLive({
                  targetName: input.target,
                  target,
                  rdbFile: rdb.file,
                  backupId: input.backupId,
                  databases: databasesFor(record.keyspace),
                  heartbeat: (d) => p.moved(d),
                  signal: p.signal,
                }),
              )
              .finally(() => rdb.release());
          }
        }
        // Fetching is alive while bytes arrive; making live is local work under its own deadlines.
        const { manifest, rdbFile } = await backupOnWorker(input.backupId, p, input.allowUnsigned).catch((err: unknown) => {
          if (input.undo && err instanceof RunbookError && err.code === 'BACKUP_NOT_FOUND') {
            // Not stored yet, and its copy is on another host: retried until a worker there takes it.
            throw new RunbookError(
              'MAKE_LIVE_FAILED',
              `this worker's host (${os.hostname()}) holds no safety copy of run ${approved.runId}, and ${input.backupId} is not stored yet`,
              'the rollback is retried; a worker on the host that took the safety copy does it',
            );
          }
          throw err;
        });

        // Only what was approved goes live: the signed backup, or this run's own safety backup as its undo.
        const safetyOfThisRun = manifest.workflow.workflowId === workflowIds.safetyBackup(input.target, approved.runId);
        if (input.undo ? !safetyOfThisRun : input.backupId !== approved.plan.backupId || manifest.rdb.sha256 !== approved.plan.rdbSha256) {
          fail(
            'GATE_REFUSED',
            input.undo
              ? `the worker refuses to roll ${input.target} back to ${input.backupId}: it is not the safety backup of run ${approved.runId}`
              : `the worker refuses to make ${input.backupId} live on ${input.target}: the signed approvals are for ${approved.plan.backupId} (RDB SHA-256 ${approved.plan.rdbSha256.slice(0, 12)}…)`,
          );
        }
        const databases = databasesFor(manifest.keyspace);
        // What people see from here on: the strategy at work, no longer the fetch.
        p.moved(target.restore.strategy);
        // The reference verification compares the target with: loaded before writers paused, or now, meanwhile.
        if (!input.undo) references.start(input.backupId, rdbFile, databases);
        return p.alive(
          makeLive({
            targetName: input.target,
            target,
            rdbFile,
            backupId: input.backupId,
            databases,
            heartbeat: (d) => p.moved(d),
            signal: p.signal,
          }),
        );
      });
    },

    /** What is on the target now, in one line: for a report that must say what it could not undo. */
    async describeTarget(input: { target: string }): Promise<string> {
      return onTarget(input.target, async (c) => {
        const s = await readTargetState(c);
        return `${s.role}, Redis ${s.version}, ${s.keys} keys (${
          Object.entries(s.keyspace)
            .map(([db, k]) => `${db}: ${k.keys}`)
            .join(', ') || 'empty'
        })`;
      });
    },

    /** The target's own check (a smoke test, an application probe), run before verification. */
    async afterMakeLive(input: { target: string }): Promise<void> {
      await gate.approvedRun(input.target);
      const command = targetOf(config, input.target).restore.afterMakeLive;
      if (command) await runCommand(command, { what: 'afterMakeLive', code: 'VERIFY_FAILED', timeoutMs: 10 * 60_000 });
    },

    /** Is the target now the backup? Key counts, a sample of keys against the backup, settings as before. */
    async verifyRestore(input: {
      target: string;
      backupId: string;
      before: TargetState;
      sample?: number;
      allowUnsigned?: boolean;
    }): Promise<RestoreCheck[]> {
      return whileMoving(async (p) => {
        const { manifest, rdbFile } = await backupOnWorker(input.backupId, p, input.allowUnsigned);
        const reference = await p.alive(references.take(input.backupId, rdbFile, databasesFor(manifest.keyspace)));
        try {
          return await p.alive(onTarget(input.target, (c) => restoreChecks(manifest, reference.client, c, input.before, input.sample)));
        } finally {
          await reference.stop();
        }
      });
    },

    /**
     * The decrypted copies on this worker are production data: removed, and a failure to remove them is
     * told. The run's safety copy stops being followed, and is removed when `safetyCopy` says so (stored,
     * or never sealed); kept otherwise, for a person to store.
     */
    async removeRestoreFiles(input: { backupIds: string[]; safetyCopy?: 'remove' | 'keep' }): Promise<void> {
      const run = Context.current().info.workflowExecution?.runId;
      await Promise.all(input.backupIds.map((id) => references.drop(id)));
      await Promise.all(input.backupIds.map(removeLocalRdb));
      if (run && input.safetyCopy) {
        await (await stopFollowing(run))?.discard();
        if (input.safetyCopy === 'remove') await removeSafetyCopy(run);
      }
    },
  };
}
