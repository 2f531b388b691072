// The drill runbook's work. A drill reads a stored copy and loads it into a sandbox redis-server on
// the worker: it never connects to the target. Safe to retry: the pick only reads, the restore works
// in its own folder and always removes its sandbox.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { drillSource, targetOf, type SmokeConfig } from '../common/config';
import { rpoFigures, keyspaceChecks, prefixCheck } from '../common/drill-checks';
import type { Check, DrillPick, DrillRestoreResult, Phase } from '../common/drill-types';
import { durationMs } from '../common/duration';
import { fail } from '../common/errors';
import { messageOf } from '../common/failure';
import { mib } from '../common/units';
import type { Manifest } from '../common/types';
import { listBackups, listDestination, readManifest } from './catalog';
import { parseInfo, parseKeyspace } from './redis-target';
import { scanPrefixCounts } from './preflight';
import { countingBytes, type Progress } from './progress';
import { checkRdbFile } from './rdb-check';
import { localRdb, restoreWorkDir } from './restore/local-rdb';
import { databasesFor, OWNER, ownerRecord, startScratch, type Scratch } from './restore/scratch';
import type { Services } from './services';

export interface DrillRestoreInput {
  target: string;
  backupId: string;
  destination: string;
  drillId: string;
}

/** Which backup to drill, from which destination, and the recovery point figures of the target. */
export async function drillPick(
  s: Services,
  input: { target: string; random?: number; from?: string; backupId?: string },
): Promise<DrillPick> {
  const { config, stores } = s;
  const t = targetOf(config, input.target);
  const destination = input.from ?? drillSource(config, input.target);
  if (!t.destinations.includes(destination)) {
    fail('BAD_INPUT', `${destination} is not a destination of ${input.target}`, `use one of: ${t.destinations.join(', ')}`);
  }
  const listing = await listDestination(config, stores, destination, input.target);
  const verified = [...listing.withManifest.values()]
    .filter((m) => m.verification.copies.every((c) => c.ok))
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  let chosen: Manifest | undefined;
  let among = 1;
  if (input.backupId) {
    const untrusted = listing.untrusted.get(input.backupId)?.trust;
    if (untrusted) {
      fail(
        'SIGNATURE_INVALID',
        `backup ${input.backupId} in ${destination} is not trusted (${untrusted.state}): ${untrusted.reason}`,
        'a drill proves only backups whose manifest the worker signed: drill another one',
      );
    }
    chosen =
      listing.withManifest.get(input.backupId) ?? fail('BACKUP_NOT_FOUND', `destination ${destination} holds no backup ${input.backupId}`);
  } else {
    among = Math.min(input.random ?? t.drill?.random ?? 1, verified.length);
    // Chosen here, not in the workflow: the result is recorded, so a replay picks the same one.
    chosen =
      verified[Math.floor(Math.random() * among)] ??
      fail(
        'BACKUP_NOT_FOUND',
        `destination ${destination} holds no verified backup of ${input.target}`,
        'a drill proves a stored copy: take a backup, or check that this destination receives them',
      );
  }
  // The recovery point is the target's, over every destination: a backup anywhere can be restored.
  const all = await listBackups(config, stores, input.target);
  const times = all.filter((e) => e.manifest.verification.copies.every((c) => c.ok)).map((e) => new Date(e.createdAt));
  const rpo = rpoFigures(times, new Date(), durationMs(t.drill?.rpoWindow ?? '7d'));
  return { backupId: chosen.backupId, createdAt: chosen.createdAt, destination, among, rpo };
}

/**
 * Fetch, prove and load the backup into a sandbox, and check what it holds. Phases are timed; the
 * RDB check runs beside the load, on the other core, so it costs the drill next to nothing. While
 * fetching, the drill is alive only while bytes arrive; loading and verifying are local work.
 */
export async function drillRestore(s: Services, input: DrillRestoreInput, p: Progress): Promise<DrillRestoreResult> {
  const { config, stores, keys } = s;
  const t = targetOf(config, input.target);
  const found = await readManifest(config, stores, input.destination, input.target, input.backupId);
  if (!found || found === 'invalid') fail('BACKUP_NOT_FOUND', `destination ${input.destination} holds no backup ${input.backupId}`);
  // Read again here, not taken from the pick: the manifest may have been changed in between.
  if (found.trust.state !== 'trusted') {
    fail(
      'SIGNATURE_INVALID',
      `backup ${input.backupId} in ${input.destination} is not trusted (${found.trust.state}): ${found.trust.reason}`,
    );
  }
  const { manifest } = found;
  const dir = path.join(restoreWorkDir(), `drill-${input.drillId}`);
  const phases: Phase[] = [];
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      phases.push({ name, durationMs: Math.round(performance.now() - t0) });
    }
  };
  let sandbox: Scratch | undefined;
  try {
    const available = os.freemem();
    if (manifest.redis.usedMemory > available) {
      fail(
        'DRILL_FAILED',
        `the backup needs about ${mib(manifest.redis.usedMemory)} of memory to load, and this worker has ${mib(available)} available`,
        'run drills on a worker with more memory',
      );
    }
    // Owned by this process: if it dies here, the next sandbox started on this host removes the folder.
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(path.join(dir, OWNER), ownerRecord());
    p.moved({ phase: 'fetch' });
    const fetched = await timed('fetch', () =>
      localRdb(stores, manifest, [input.destination], {
        keys,
        signal: p.signal,
        dir,
        onBytes: countingBytes(p, 'fetch', manifest.artifact.size),
      }),
    );
    const checks: Check[] = [
      {
        name: 'stored copy',
        ok: true,
        detail: `${input.destination}: stored and RDB checksums match the manifest (${mib(fetched.storedSize)} stored, ${mib(manifest.rdb.size)} RDB)`,
      },
    ];
    p.moved({ phase: 'load' });
    const [checked, loaded] = await p.alive(
      Promise.allSettled([
        timed('redis-check-rdb', () => checkRdbFile(fetched.file, { signal: p.signal })),
        timed('load', () => startScratch(fetched.file, undefined, undefined, databasesFor(manifest.keyspace))),
      ]),
    );
    if (loaded.status === 'fulfilled') sandbox = loaded.value;
    if (checked.status === 'rejected') throw checked.reason;
    const v = checked.value;
    checks.push({
      name: 'redis-check-rdb',
      ok: v.ok && v.keys === manifest.rdb.keys,
      detail: v.ok ? `RDB looks OK, ${v.keys} keys read (manifest: ${manifest.rdb.keys})` : `rejected the RDB: ${v.detail}`,
    });
    checks.push({
      name: 'loaded',
      ok: loaded.status === 'fulfilled',
      detail: loaded.status === 'fulfilled' ? 'redis-server loaded the RDB (and checked its CRC64)' : messageOf(loaded.reason),
    });
    let keyspace = {};
    if (sandbox) {
      p.moved({ phase: 'verify' });
      const client = sandbox.client;
      await p.alive(
        timed('verify', async () => {
          keyspace = parseKeyspace(parseInfo(await client.info('keyspace')));
          checks.push(...keyspaceChecks(manifest, keyspace));
          await client.select(Number(new URL(t.url).pathname.slice(1) || 0));
          // The same sample the backup's preflight took: the first keys SCAN returns, counted by prefix.
          const sample = await scanPrefixCounts(client, manifest.prefixes.sampleSize);
          checks.push(prefixCheck(manifest, { sampleSize: sample.seen, counts: Object.fromEntries(sample.counts) }));
          checks.push(...(await smokeChecks(client, t.smoke)));
        }),
      );
    }
    return { phases, checks, keyspace, rdbSize: manifest.rdb.size, storedSize: fetched.storedSize };
  } finally {
    await sandbox?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The target's smoke checks: a key matching each pattern exists; each listed key holds its value. */
async function smokeChecks(client: Redis, smoke: SmokeConfig): Promise<Check[]> {
  const checks: Check[] = [];
  for (const pattern of smoke.exists) {
    const found = /[*?[\\]/.test(pattern) ? await scanFirst(client, pattern) : (await client.exists(pattern)) ? pattern : null;
    checks.push({
      name: `exists ${pattern}`,
      ok: found !== null,
      // The key's name may itself be data (an e-mail, a token): the report says only that one exists.
      detail: found !== null ? 'a key matches' : `no key matches ${pattern}`,
    });
  }
  for (const [key, want] of Object.entries(smoke.get)) {
    const type = await client.type(key);
    if (type !== 'string' && type !== 'none') {
      checks.push({ name: `get ${key}`, ok: false, detail: `is a ${type}, not a string` });
      continue;
    }
    const got = await client.get(key);
    checks.push({
      name: `get ${key}`,
      ok: got === want,
      // The value itself is production data: it is not copied into the report.
      detail: got === want ? 'holds the expected value' : got === null ? 'the key is missing' : `holds another value (${got.length} bytes)`,
    });
  }
  return checks;
}

async function scanFirst(client: Redis, pattern: string): Promise<string | null> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 10_000);
    if (keys.length) return keys[0]!;
    cursor = next;
  } while (cursor !== '0');
  return null;
}
