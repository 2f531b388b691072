// The disaster-recovery runbook's reading of the world: the target as it is (reachable? its files
// sound?), and the recovery point across every destination, proving the copy before anyone is asked to
// approve it. Both only read.
import { access } from 'node:fs/promises';
import path from 'node:path';
import { targetOf } from '../common/config';
import type { Assessment, CandidateCopy, RecoveryPoint } from '../common/drill-types';
import { fail, RunbookError } from '../common/errors';
import type { Manifest } from '../common/types';
import { listDestination } from './catalog';
import type { Progress } from './progress';
import { checkAofFile, checkRdbFile } from './rdb-check';
import { connectTarget, parseInfo } from './redis-target';
import { localRdb, removeLocalRdb } from './restore/local-rdb';
import type { Services } from './services';

/** How many backups a recovery tries, newest first, before it gives up. */
const MAX_CANDIDATES = 10;

/** Reachable? What role, how many keys, is it persisting? With the data dir at hand, are its files sound? */
export async function assessTarget(
  s: Services,
  input: { target: string; checkFiles?: boolean },
  p: Progress,
): Promise<Assessment & { runId?: string }> {
  const t = targetOf(s.config, input.target);
  const a: Assessment & { runId?: string } = { target: input.target, reachable: false, files: [] };
  let dir = t.dataDir;
  let rdbName = 'dump.rdb';
  let aofDir = 'appendonlydir';
  let aofName = 'appendonly.aof';
  try {
    const client = await connectTarget(input.target, t, 5_000);
    try {
      const info = parseInfo(await client.info('everything'));
      Object.assign(a, {
        reachable: true,
        role: info.role,
        version: info.redis_version,
        runId: info.run_id,
        loading: info.loading === '1',
        aofEnabled: info.aof_enabled === '1',
        rdbLastBgsaveStatus: info.rdb_last_bgsave_status,
        lastSaveAt: info.rdb_last_save_time ? new Date(Number(info.rdb_last_save_time) * 1000).toISOString() : undefined,
      });
      // A loading server answers DBSIZE with -LOADING: it is up, and its files are still worth checking.
      a.dbsize = await client.dbsize().catch(() => undefined);
      const conf = async (name: string) => ((await client.call('CONFIG', 'GET', name)) as string[])[1];
      dir ??= await conf('dir').catch(() => undefined);
      rdbName = (await conf('dbfilename').catch(() => undefined)) ?? rdbName;
      aofDir = (await conf('appenddirname').catch(() => undefined)) ?? aofDir;
      aofName = (await conf('appendfilename').catch(() => undefined)) ?? aofName;
    } finally {
      client.disconnect();
    }
  } catch (err) {
    a.error = (err as Error).message;
  }
  if (input.checkFiles === false) return a;
  if (dir && (await readable(dir))) {
    // redis-check-rdb on a large file takes minutes: a check of ours, under its own timeout, is alive work.
    const rdb = path.join(dir, rdbName);
    if (await readable(rdb)) {
      const v = await p.alive(checkRdbFile(rdb, { signal: p.signal }));
      a.files.push({ name: `redis-check-rdb ${rdb}`, ok: v.ok, detail: v.ok ? v.detail || 'OK' : `damaged: ${v.detail}` });
    } else a.files.push({ name: rdbName, ok: true, detail: `no ${rdbName} in ${dir}: the server has not saved a snapshot there` });
    // Redis 7 keeps the AOF as a manifest and its parts in appenddirname; older ones as one file.
    const manifest = path.join(dir, aofDir, `${aofName}.manifest`);
    const single = path.join(dir, aofName);
    const aof = (await readable(manifest)) ? manifest : (await readable(single)) ? single : undefined;
    if (aof) {
      const v = await p.alive(checkAofFile(aof, { signal: p.signal }));
      a.files.push({ name: `redis-check-aof ${aof}`, ok: v.ok, detail: v.ok ? v.detail || 'OK' : `damaged: ${v.detail}` });
    }
  } else {
    a.files.push({
      name: 'data files',
      ok: true,
      detail: dir ? `${dir} is not readable from this worker: files not checked` : 'data dir unknown: files not checked',
    });
  }
  return a;
}

/**
 * The newest backup with a copy that proves out, across all destinations (the local one first,
 * off-site when the local copy is missing or damaged). Every copy looked at is listed, with why a
 * rejected one was rejected. The proven copy stays on this worker for the restore's plan. Alive only
 * while bytes arrive: a stalled download is retried, not waited on for hours.
 */
export async function chooseRecoveryPoint(
  s: Services,
  input: { target: string; at?: string; from?: string },
  p: Progress,
): Promise<RecoveryPoint> {
  const t = targetOf(s.config, input.target);
  const considered: CandidateCopy[] = [];
  const byId = new Map<string, { manifest: Manifest; destinations: string[] }>();
  const untrusted: CandidateCopy[] = [];
  for (const destination of t.destinations) {
    try {
      const listing = await listDestination(s.config, s.stores, destination, input.target);
      for (const [id, manifest] of listing.withManifest) {
        const e = byId.get(id) ?? { manifest, destinations: [] };
        e.destinations.push(destination);
        byId.set(id, e);
      }
      for (const { manifest: m, trust } of listing.untrusted.values()) {
        const detail = `manifest not trusted (${trust.state}): ${trust.reason}`;
        untrusted.push({ backupId: m.backupId, createdAt: m.createdAt, destination, ok: false, detail });
      }
    } catch (err) {
      considered.push({ backupId: '*', createdAt: '', destination, ok: false, detail: `cannot be listed: ${(err as Error).message}` });
    }
    p.moved();
  }
  const at = input.at ? Date.parse(input.at) : undefined;
  const wanted = (m: { backupId: string; createdAt: string }) =>
    input.from ? m.backupId === input.from : at === undefined || Date.parse(m.createdAt) < at;
  const candidates = [...byId.values()]
    .filter(({ manifest: m }) => wanted(m))
    .filter(({ manifest: m }) => m.verification.copies.every((c) => c.ok))
    .sort((a, b) => b.manifest.createdAt.localeCompare(a.manifest.createdAt))
    .slice(0, MAX_CANDIDATES);
  // Manifests that do not count and would have come first are listed with why they were passed over.
  const newest = candidates[0]?.manifest.createdAt ?? '';
  considered.push(
    ...untrusted
      .filter((c) => wanted(c) && c.createdAt > newest)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .slice(0, MAX_CANDIDATES),
  );
  for (const { manifest, destinations } of candidates) {
    for (const destination of t.destinations) {
      const copy = { backupId: manifest.backupId, createdAt: manifest.createdAt, destination };
      if (!destinations.includes(destination)) {
        considered.push({ ...copy, ok: false, detail: 'no manifest in this destination (deleted, or never written)' });
        continue;
      }
      try {
        await localRdb(s.stores, manifest, [destination], { keys: s.keys, signal: p.signal, fresh: true, onBytes: () => p.moved() });
      } catch (err) {
        await removeLocalRdb(manifest.backupId);
        if (p.signal?.aborted) throw err;
        const problems =
          err instanceof RunbookError ? (err.details?.[0] as { problems?: { problem: string }[] } | undefined)?.problems : undefined;
        const detail = problems?.map((x) => x.problem).join('; ') ?? (err as Error).message;
        considered.push({ ...copy, ok: false, detail });
        continue;
      }
      considered.push({ ...copy, ok: true, detail: 'checksums, decryption and RDB header verified' });
      return { backupId: manifest.backupId, createdAt: manifest.createdAt, destination, considered };
    }
  }
  const which = input.from
    ? `backup ${input.from}`
    : at !== undefined
      ? `backup of ${input.target} taken before ${input.at}`
      : `backup of ${input.target}`;
  return fail(
    'BACKUP_NOT_FOUND',
    `no ${which} has a copy that verifies${considered.length ? `: ${considered.map((c) => `${c.backupId}@${c.destination}: ${c.detail}`).join('; ')}` : ''}`,
    'look at `runbook backups list`; an older point (--at) or another backup (--from) may still be good',
  );
}

async function readable(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}
