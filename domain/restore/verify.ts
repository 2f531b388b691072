// Is the target now the backup? Key counts, a sample of keys compared by value and TTL with a
// reference server loaded from the same RDB, and the settings the restore must not have changed.
import type { Redis } from 'ioredis';
import type { RestoreCheck, TargetState } from '../../common/restore-types';
import { parseInfo } from '../redis-target';
import type { Manifest } from '../../common/types';
import { readTargetState } from './make-live';
import { startScratch, type Scratch } from './scratch';

/**
 * Reference servers for verification, started while the target loads the backup. Kept in this
 * process only: a verification running on another worker simply starts its own.
 */
export function referencePool() {
  const pending = new Map<string, Promise<Scratch>>();
  return {
    start(backupId: string, rdbFile: string, databases: number): void {
      if (pending.has(backupId)) return;
      const p = startScratch(rdbFile, undefined, undefined, databases);
      p.catch(() => pending.delete(backupId));
      pending.set(backupId, p);
    },
    /** Started and loaded: the restore has it ready before writers pause, so verifying waits for no load. */
    async warm(backupId: string, rdbFile: string, databases: number): Promise<void> {
      this.start(backupId, rdbFile, databases);
      await pending.get(backupId);
    },
    async take(backupId: string, rdbFile: string, databases: number): Promise<Scratch> {
      const p = pending.get(backupId);
      pending.delete(backupId);
      return (p ? await p.catch(() => undefined) : undefined) ?? startScratch(rdbFile, undefined, undefined, databases);
    },
    async drop(backupId: string): Promise<void> {
      const p = pending.get(backupId);
      pending.delete(backupId);
      await p?.then((s) => s.stop());
    },
  };
}
export type ReferencePool = ReturnType<typeof referencePool>;

export async function restoreChecks(
  manifest: Manifest,
  reference: Redis,
  target: Redis,
  before: TargetState,
  sample = 200,
): Promise<RestoreCheck[]> {
  const now = await readTargetState(target);
  const checks: RestoreCheck[] = [];
  const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  const loading = parseInfo(await target.info('persistence')).loading === '1';
  add('loaded', !loading, loading ? 'the target is still loading' : 'loading:0');
  add('role', now.role === before.role, `${now.role} (was ${before.role})`);
  add('aof', now.aofEnabled === before.aofEnabled, `appendonly ${now.aofEnabled ? 'yes' : 'no'} (was ${before.aofEnabled ? 'yes' : 'no'})`);
  add('save', now.save === before.save, `save "${now.save}" (was "${before.save}")`);
  // Keys with a TTL may have expired since the backup: the count may fall short by at most those.
  const low = manifest.rdb.keys - manifest.rdb.expires;
  add(
    'key count',
    now.keys >= low && now.keys <= manifest.rdb.keys,
    `${now.keys} keys (backup: ${manifest.rdb.keys}, of which ${manifest.rdb.expires} with a TTL)`,
  );
  add('sample', ...(await compareSample(reference, target, sample)));
  return checks;
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
    // Sent together (ioredis pipelines what is not awaited): writers wait on these round trips.
    const want = Math.ceil(size / dbs.length);
    const keys = [...new Set((await Promise.all(Array.from({ length: want }, () => reference.randomkey()))).filter((k) => k !== null))];
    const results = await Promise.all(
      keys.map(async (k) => {
        const [ttl, a, b, targetTtl] = await Promise.all([reference.pttl(k), valueOf(reference, k), valueOf(target, k), target.pttl(k)]);
        if (ttl >= 0 && ttl < 60_000) return undefined; // may expire while compared
        return a === b && (ttl === -1) === (targetTtl === -1);
      }),
    );
    results.forEach((same, i) => {
      if (same === undefined) return;
      compared++;
      if (!same) bad.push(`db${db}:${keys[i]!.slice(0, 60)}`);
    });
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
