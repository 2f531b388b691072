// Activities of the restore runbook. Each is safe to retry: planning and verifying only read; pausing
// and resuming are idempotent; making a backup live starts over from the same verified file.
import { exec } from 'node:child_process';
import { Context } from '@temporalio/activity';
import { targetOf } from '../common/config';
import { durationMs } from '../common/duration';
import { RunbookError } from '../common/errors';
import { maxRdbVersionFor } from '../common/rdb';
import type { MakeLiveResult, RestoreCheck, RestorePlan, TargetState, WriterPauseState } from '../common/restore-types';
import type { Manifest } from '../common/types';
import { findBackup, listBackups } from '../domain/catalog';
import type { Redis } from 'ioredis';
import { connectTarget, parseInfo } from '../domain/redis-target';
import { keyring } from '../domain/crypto/keys';
import type { ActivityDeps } from './index';
import { localRdb, removeLocalRdb } from '../domain/restore/local-rdb';
import { makeLive, readTargetState } from '../domain/restore/make-live';
import { databasesFor, startScratch, type Scratch } from '../domain/restore/scratch';
import { pauseWriter, resumeWriter } from '../domain/restore/writers';

type Run = <T>(fn: () => Promise<T>) => Promise<T>;

/**
 * Reference servers for verification, started while the target loads the backup. Kept in this
 * process only: a verification running on another worker simply starts its own.
 */
function referencePool() {
  const pending = new Map<string, Promise<Scratch>>();
  return {
    start(backupId: string, rdbFile: string, databases: number): void {
      if (pending.has(backupId)) return;
      const p = startScratch(rdbFile, undefined, undefined, databases);
      p.catch(() => pending.delete(backupId));
      pending.set(backupId, p);
    },
    async take(backupId: string, rdbFile: string, databases: number): Promise<Scratch> {
      const p = pending.get(backupId);
      pending.delete(backupId);
      return (p ? await p.catch(() => undefined) : undefined) ?? startScratch(rdbFile, undefined, undefined, databases);
    },
    async drop(backupId: string): Promise<void> {
      const p = pending.get(backupId);
      pending.delete(backupId);
      await p?.then((s) => s.stop()).catch(() => {});
    },
  };
}

export function createRestoreActivities(deps: ActivityDeps, run: Run) {
  const references = referencePool();
  const { config, stores } = deps;
  const keys = deps.keys ?? keyring(config);
  const writerOf = (target: string, name: string) => {
    const w = targetOf(config, target).restore.writers.find((x) => x.name === name);
    if (!w) throw new RunbookError('CONFIG_INVALID', `target ${target} has no writer named ${name}`);
    return w;
  };
  const manifestOf = async (backupId: string): Promise<{ manifest: Manifest; destinations: string[] }> => {
    const e = await findBackup(config, stores, backupId);
    return { manifest: e.manifest, destinations: e.destinations };
  };
  /** The backup's RDB as a proven local file (fetched once per worker), with its manifest. */
  const backupOnWorker = async (backupId: string, ctx: Context) => {
    const { manifest, destinations } = await manifestOf(backupId);
    const { file } = await heartbeatEvery(5000, localRdb(stores, manifest, destinations, { keys, signal: ctx.cancellationSignal }));
    return { manifest, rdbFile: file };
  };
  const withTarget = async <T>(target: string, fn: (c: Awaited<ReturnType<typeof connectTarget>>) => Promise<T>) => {
    const client = await connectTarget(target, targetOf(config, target));
    try {
      return await fn(client);
    } finally {
      client.disconnect();
    }
  };
  const heartbeatEvery = <T>(ms: number, p: Promise<T>): Promise<T> => {
    const ctx = Context.current();
    const t = setInterval(() => ctx.heartbeat(), ms);
    return p.finally(() => clearInterval(t));
  };

  return {
    /** What would be replaced by what: nothing is touched. Refuses what cannot work before anyone approves it. */
    async planRestore(input: { target: string; from: string; sourceTarget?: string; preferDestination?: string }): Promise<RestorePlan> {
      return run(async () => {
        const t = targetOf(config, input.target);
        const entry =
          input.from === 'latest'
            ? (await listBackups(config, stores, input.sourceTarget ?? input.target)).find((e) =>
                e.manifest.verification.copies.every((c) => c.ok),
              )
            : await findBackup(config, stores, input.from);
        if (!entry)
          throw new RunbookError('BACKUP_NOT_FOUND', `target ${input.target} has no verified backup`, 'take one with `runbook backup`');
        if (entry.target !== (input.sourceTarget ?? input.target)) {
          throw new RunbookError(
            'BAD_INPUT',
            `backup ${entry.backupId} is of target ${entry.target}, not ${input.sourceTarget ?? input.target}`,
          );
        }
        const m = entry.manifest;
        const order = [...entry.destinations].sort((a, b) => Number(b === input.preferDestination) - Number(a === input.preferDestination));
        // The whole backup is fetched, decrypted, decompressed and checked against the manifest (checksums
        // and the RDB header) now, before anyone approves: a bad backup is refused at the plan.
        const { destination: source } = await heartbeatEvery(5000, localRdb(stores, m, order, { keys }));
        const current = await withTarget(input.target, readTargetState);
        if (current.role !== 'master') {
          throw new RunbookError(
            'BAD_INPUT',
            `target ${input.target} is a ${current.role}`,
            'restore into the master; its replicas follow it',
          );
        }
        const maxRdbVersion = maxRdbVersionFor(current.version);
        if (m.rdb.version > maxRdbVersion) {
          throw new RunbookError(
            'RDB_INVALID',
            `backup ${m.backupId} is RDB version ${m.rdb.version}, but the target runs Redis ${current.version}, which loads RDB versions up to ${maxRdbVersion}`,
            'restore into a Redis at least as new as the one backed up',
          );
        }
        const r = t.restore;
        return {
          target: input.target,
          strategy: r.strategy,
          current,
          backup: {
            backupId: m.backupId,
            createdAt: m.createdAt,
            ageSeconds: Math.round((Date.now() - Date.parse(m.createdAt)) / 1000),
            rdbVersion: m.rdb.version,
            keys: m.rdb.keys,
            expires: m.rdb.expires,
            keyspace: m.keyspace,
            size: m.rdb.size,
            source,
          },
          maxRdbVersion,
          writers: r.writers.map((w) => w.name),
          pauseWrites: r.pauseWrites && r.strategy !== 'logical',
          pauseLimitMs: durationMs(r.pauseLimit),
          approvers: r.approvers,
          approvalsRequired: r.approvals,
          allowSelfApproval: r.allowSelfApproval,
          approvalTimeoutMs: durationMs(r.approvalTimeout),
        };
      });
    },

    async pauseWriter(input: { target: string; writer: string }): Promise<WriterPauseState> {
      return run(() => pauseWriter(writerOf(input.target, input.writer)));
    },

    async resumeWriter(input: { target: string; paused: WriterPauseState }): Promise<void> {
      return run(() => resumeWriter(writerOf(input.target, input.paused.writer), input.paused));
    },

    /** CLIENT PAUSE is time-limited on purpose: if the runbook dies, writers come back after limitMs. */
    async pauseClientWrites(input: { target: string; limitMs: number }): Promise<void> {
      return run(() => withTarget(input.target, async (c) => void (await c.call('CLIENT', 'PAUSE', String(input.limitMs), 'WRITE'))));
    },

    async unpauseClientWrites(input: { target: string }): Promise<void> {
      return run(() => withTarget(input.target, async (c) => void (await c.call('CLIENT', 'UNPAUSE'))));
    },

    async makeLive(input: { target: string; backupId: string }): Promise<MakeLiveResult> {
      return run(async () => {
        const ctx = Context.current();
        const { manifest, rdbFile } = await backupOnWorker(input.backupId, ctx);
        const databases = databasesFor(manifest.keyspace);
        // The reference that verification compares the target with loads meanwhile, on the other core.
        references.start(input.backupId, rdbFile, databases);
        return heartbeatEvery(
          5000,
          makeLive({
            targetName: input.target,
            target: targetOf(config, input.target),
            rdbFile,
            backupId: input.backupId,
            databases,
            heartbeat: (d) => ctx.heartbeat(d),
            signal: ctx.cancellationSignal,
          }),
        );
      });
    },

    /** The target's own check (a smoke test, an application probe), run before verification. */
    async afterMakeLive(input: { target: string }): Promise<void> {
      return run(async () => {
        const command = targetOf(config, input.target).restore.afterMakeLive;
        if (!command) return;
        await new Promise<void>((resolve, reject) =>
          exec(command, { timeout: 10 * 60_000 }, (err, _o, stderr) =>
            err
              ? reject(new RunbookError('VERIFY_FAILED', `afterMakeLive failed: ${String(stderr).trim().slice(-400) || err.message}`))
              : resolve(),
          ),
        );
      });
    },

    /** Is the target now the backup? Key counts, a sample of keys against the backup, settings as before. */
    async verifyRestore(input: { target: string; backupId: string; before: TargetState; sample?: number }): Promise<RestoreCheck[]> {
      return run(async () => {
        const ctx = Context.current();
        const { manifest, rdbFile } = await backupOnWorker(input.backupId, ctx);
        const scratch = await references.take(input.backupId, rdbFile, databasesFor(manifest.keyspace));
        try {
          return await withTarget(input.target, async (client) => {
            const now = await readTargetState(client);
            const checks: RestoreCheck[] = [];
            const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
            const loading = parseInfo(await client.info('persistence')).loading === '1';
            add('loaded', !loading, loading ? 'the target is still loading' : 'loading:0');
            add('role', now.role === input.before.role, `${now.role} (was ${input.before.role})`);
            add(
              'aof',
              now.aofEnabled === input.before.aofEnabled,
              `appendonly ${now.aofEnabled ? 'yes' : 'no'} (was ${input.before.aofEnabled ? 'yes' : 'no'})`,
            );
            add('save', now.save === input.before.save, `save "${now.save}" (was "${input.before.save}")`);
            // Keys with a TTL may have expired since the backup: the count may fall short by at most those.
            const low = manifest.rdb.keys - manifest.rdb.expires;
            add(
              'key count',
              now.keys >= low && now.keys <= manifest.rdb.keys,
              `${now.keys} keys (backup: ${manifest.rdb.keys}, of which ${manifest.rdb.expires} with a TTL)`,
            );
            add('sample', ...(await compareSample(scratch.client, client, input.sample ?? 200)));
            return checks;
          });
        } finally {
          await scratch.stop();
        }
      });
    },

    async removeRestoreFiles(input: { backupIds: string[] }): Promise<void> {
      return run(async () => {
        await Promise.all(input.backupIds.map((id) => references.drop(id)));
        await Promise.all(input.backupIds.map(removeLocalRdb));
      });
    },
  };
}

/**
 * Sampled keys compared by value and TTL with the reference. Not DUMP bytes: a set or hash may be
 * serialised in another order after a load, with the same contents.
 */
async function compareSample(reference: Redis, target: Redis, size: number): Promise<[boolean, string]> {
  const info = await reference.info('keyspace');
  const dbs = [...info.matchAll(/^db(\d+):keys=(\d+)/gm)].map((m) => Number(m[1]));
  let compared = 0;
  const bad: string[] = [];
  for (const db of dbs) {
    await reference.select(db);
    await target.select(db);
    const keys = new Set<string>();
    for (let i = 0; i < size && keys.size < size / dbs.length; i++) {
      const k = await reference.randomkey();
      if (k === null) break;
      keys.add(k);
    }
    for (const k of keys) {
      const ttl = await reference.pttl(k);
      if (ttl >= 0 && ttl < 60_000) continue; // may expire while compared
      const [a, b] = await Promise.all([valueOf(reference, k), valueOf(target, k)]);
      compared++;
      const targetTtl = await target.pttl(k);
      if (a !== b || (ttl === -1) !== (targetTtl === -1)) bad.push(`db${db}:${k.slice(0, 60)}`);
    }
  }
  return [
    bad.length === 0,
    bad.length
      ? `${bad.length} of ${compared} sampled keys differ: ${bad.slice(0, 5).join(', ')}`
      : `${compared} sampled keys equal the backup's`,
  ];
}

/** A canonical text of a key's value, whatever its type. */
async function valueOf(c: Redis, key: string): Promise<string> {
  const type = await c.type(key);
  const sorted = (xs: string[]) => JSON.stringify([...xs].sort());
  switch (type) {
    case 'none':
      return 'none';
    case 'string':
      return `string:${(await c.getBuffer(key))?.toString('base64')}`;
    case 'list':
      return `list:${JSON.stringify(await c.lrange(key, 0, -1))}`;
    case 'set':
      return `set:${sorted(await c.smembers(key))}`;
    case 'zset':
      return `zset:${JSON.stringify(await c.zrange(key, 0, -1, 'WITHSCORES'))}`;
    case 'hash': {
      const h = await c.hgetall(key);
      return `hash:${sorted(Object.entries(h).map(([f, v]) => `${f}=${v}`))}`;
    }
    case 'stream':
      return `stream:${JSON.stringify(await c.xrange(key, '-', '+'))}`;
    default:
      return `${type}:${(await c.dumpBuffer(key))?.toString('base64')}`;
  }
}
