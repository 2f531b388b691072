// Looks before it leaps: what the target is, whether it can be backed up now, and what it holds.
import type { Redis } from 'ioredis';
import type { TargetConfig } from '../common/config';
import { RunbookError } from '../common/errors';
import type { PreflightResult, PrefixCount, RedisFacts } from '../common/types';
import { classifyRedisError, connectTarget, endpointOf, parseInfo, parseKeyspace } from './redis-target';

export async function inspectTarget(name: string, target: TargetConfig): Promise<PreflightResult> {
  const client = await connectTarget(name, target);
  try {
    const info = parseInfo(await client.info('everything'));
    if (info.loading === '1') {
      throw new RunbookError('TARGET_LOADING', `target ${name} is loading its dataset`, 'wait until it has loaded and try again');
    }
    const redis = factsOf(info);
    const prefixes = await samplePrefixes(client, target.prefixSample, totalKeys(redis));
    return { redis, prefixes };
  } catch (err) {
    throw classifyRedisError(err, name, endpointOf(name, target));
  } finally {
    client.disconnect();
  }
}

export function factsOf(info: Record<string, string>): RedisFacts {
  const warnings: string[] = [];
  if (info.rdb_last_bgsave_status && info.rdb_last_bgsave_status !== 'ok') {
    warnings.push(
      `the server's last BGSAVE failed (rdb_last_bgsave_status:${info.rdb_last_bgsave_status}): its own snapshots are not being written`,
    );
  }
  if (info.aof_last_write_status && info.aof_last_write_status !== 'ok') {
    warnings.push(`the server's AOF writes are failing (aof_last_write_status:${info.aof_last_write_status})`);
  }
  return {
    version: info.redis_version ?? 'unknown',
    role: info.role ?? 'unknown',
    usedMemory: Number(info.used_memory ?? 0),
    aofEnabled: info.aof_enabled === '1',
    rdbLastBgsaveStatus: info.rdb_last_bgsave_status ?? 'unknown',
    rdbChangesSinceLastSave: Number(info.rdb_changes_since_last_save ?? 0),
    latestForkUsec: Number(info.latest_fork_usec ?? 0),
    rdbLastCowSize: Number(info.rdb_last_cow_size ?? 0),
    keyspace: parseKeyspace(info),
    warnings,
  };
}

const totalKeys = (r: RedisFacts) => Object.values(r.keyspace).reduce((n, db) => n + db.keys, 0);

export async function keyspaceNow(client: Redis) {
  return parseKeyspace(parseInfo(await client.info('keyspace')));
}

/** A key's prefix: up to and with its first ':'. */
export function prefixOf(key: string): string {
  const i = key.indexOf(':');
  return i > 0 ? key.slice(0, i + 1) : '(no prefix)';
}

/** The first `size` keys SCAN returns in the selected database, counted by prefix. */
export async function scanPrefixCounts(client: Redis, size: number): Promise<{ seen: number; counts: Map<string, number> }> {
  const counts = new Map<string, number>();
  let seen = 0;
  let cursor = '0';
  if (size > 0) {
    do {
      const [next, keys] = await client.scan(cursor, 'COUNT', 1000);
      cursor = next;
      for (const key of keys.slice(0, size - seen)) {
        counts.set(prefixOf(key), (counts.get(prefixOf(key)) ?? 0) + 1);
        seen++;
      }
    } while (cursor !== '0' && seen < size);
  }
  return { seen, counts };
}

/** Counts key prefixes over a SCAN sample of the selected database. */
export async function samplePrefixes(client: Redis, sampleSize: number, total: number): Promise<PreflightResult['prefixes']> {
  const { seen, counts } = await scanPrefixCounts(client, sampleSize);
  const top: PrefixCount[] = [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 20)
    .map(([prefix, sampled]) => ({ prefix, sampled, estimated: seen ? Math.round((sampled / seen) * total) : 0 }));
  return { sampleSize: seen, top };
}
