// The judgements a drill makes, as pure functions: what the sandbox holds against what the manifest
// promised, and what the backup history says about the recovery point.
import type { Check, RpoFigures } from './drill-types';
import type { KeyspaceDb, Manifest } from './types';

/**
 * Recovery point figures from the times of verified backups: the newest one's age, and the largest
 * gap between consecutive backups in the window (the last backup before the window opens it, and
 * the gap up to now closes it: a recovery now would lose that much).
 */
export function rpoFigures(times: Date[], now: Date, windowMs: number): RpoFigures {
  const sorted = times
    .map((t) => t.getTime())
    .filter((t) => t <= now.getTime())
    .sort((a, b) => a - b);
  if (sorted.length === 0) return { newestAgeMs: null, maxGapMs: null, windowMs, backupsInWindow: 0 };
  const start = now.getTime() - windowMs;
  const firstIn = sorted.findIndex((t) => t >= start);
  const inWindow = firstIn === -1 ? [] : sorted.slice(firstIn);
  const before = firstIn === -1 ? sorted[sorted.length - 1] : firstIn > 0 ? sorted[firstIn - 1] : undefined;
  // The gap across the window's start counts only from the window's start: older gaps are history.
  const points = [...(before !== undefined ? [Math.max(before, start)] : []), ...inWindow, now.getTime()];
  let maxGap = 0;
  for (let i = 1; i < points.length; i++) maxGap = Math.max(maxGap, points[i]! - points[i - 1]!);
  return { newestAgeMs: now.getTime() - sorted[sorted.length - 1]!, maxGapMs: maxGap, windowMs, backupsInWindow: inWindow.length };
}

const sum = (ks: Record<string, KeyspaceDb>) => Object.values(ks).reduce((n, d) => n + d.keys, 0);

/**
 * The sandbox's keys against the manifest. The total is exact (redis-check-rdb counted the RDB);
 * only keys with a TTL may be missing, having expired since. The per-database figures were read from
 * INFO as the capture began, so writes at that moment may move them: by no more than the manifest's
 * own per-database total misses the exact one.
 */
export function keyspaceChecks(manifest: Pick<Manifest, 'rdb' | 'keyspace'>, loaded: Record<string, KeyspaceDb>): Check[] {
  const total = sum(loaded);
  const { keys, expires } = manifest.rdb;
  const checks: Check[] = [
    {
      name: 'key count',
      ok: total >= keys - expires && total <= keys,
      detail: `${total} keys loaded; the RDB holds ${keys}, ${expires} of them with a TTL`,
    },
  ];
  const drift = Math.abs(sum(manifest.keyspace) - keys);
  const dbs = [...new Set([...Object.keys(manifest.keyspace), ...Object.keys(loaded)])].sort();
  const off = dbs.filter((db) => {
    const want = manifest.keyspace[db] ?? { keys: 0, expires: 0 };
    const got = loaded[db]?.keys ?? 0;
    return got < want.keys - want.expires - drift || got > want.keys + drift;
  });
  checks.push({
    name: 'keys per db',
    ok: off.length === 0,
    detail:
      (off.length
        ? `differ from the manifest in ${off.map((db) => `${db} (${loaded[db]?.keys ?? 0} loaded, manifest ${manifest.keyspace[db]?.keys ?? 0})`).join(', ')}`
        : dbs.map((db) => `${db}=${loaded[db]?.keys ?? 0}`).join(' ') || 'no keys') +
      (drift ? `; tolerance ${drift} (writes during the capture)` : ''),
  });
  return checks;
}

/**
 * The manifest's prefix sample against one taken in the sandbox: each prefix's share must agree
 * within sampling error (five standard errors, and one percentage point).
 */
export function prefixCheck(manifest: Pick<Manifest, 'prefixes'>, sample: { sampleSize: number; counts: Record<string, number> }): Check {
  const n = manifest.prefixes.sampleSize;
  const m = sample.sampleSize;
  if (n === 0) return { name: 'prefixes', ok: true, detail: 'the manifest holds no prefix sample' };
  if (m === 0) return { name: 'prefixes', ok: false, detail: `the sandbox holds no keys; the manifest sampled ${n}` };
  const bad: string[] = [];
  for (const { prefix, sampled } of manifest.prefixes.top) {
    const p1 = sampled / n;
    const p2 = (sample.counts[prefix] ?? 0) / m;
    const p = (sampled + (sample.counts[prefix] ?? 0)) / (n + m);
    const tolerance = 5 * Math.sqrt(p * (1 - p) * (1 / n + 1 / m)) + 0.01;
    if (Math.abs(p1 - p2) > tolerance) bad.push(`${prefix} ${(p1 * 100).toFixed(1)}% in the manifest, ${(p2 * 100).toFixed(1)}% loaded`);
  }
  return {
    name: 'prefixes',
    ok: bad.length === 0,
    detail: bad.length
      ? bad.slice(0, 5).join('; ')
      : `${manifest.prefixes.top.length} prefixes agree (${n} keys sampled at backup, ${m} in the sandbox)`,
  };
}
