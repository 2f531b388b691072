// Making a backup live on a target. An RDB is only ever loaded at start-up or by a replica during a
// full sync (there is no "load this file" command), hence three strategies:
//   replica-promote: the target replicates from a scratch server holding the backup, then is promoted;
//   file-swap: stop, replace the RDB, start (with AOF off at first, or the AOF would win and the
//     restore would silently restore nothing), then turn AOF back on and wait for its rewrite;
//   logical: FLUSHALL, then RESTORE ... REPLACE of every key from a scratch server.
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { TargetConfig } from '../../common/config';
import { durationMs } from '../../common/duration';
import { RunbookError } from '../../common/errors';
import type { MakeLiveResult, TargetState } from '../../common/restore-types';
import { connectTarget, endpointOf, parseInfo, parseKeyspace } from '../redis-target';
import { findLasting, lastingPath } from '../state-dir';
import { isScratchPassword, startScratch } from './scratch';
import { serveRdb } from './rdb-master';
import { runCommand } from '../tools';

export interface MakeLiveContext {
  targetName: string;
  target: TargetConfig;
  rdbFile: string;
  backupId: string;
  /** How many databases a scratch server on the backup needs. */
  databases?: number;
  heartbeat: (detail: string) => void;
  signal?: AbortSignal;
}

export async function readTargetState(client: Redis): Promise<TargetState> {
  const info = parseInfo(await client.info('everything'));
  const keyspace = parseKeyspace(info);
  const [, save] = (await client.config('GET', 'save')) as string[];
  return {
    version: info.redis_version ?? 'unknown',
    role: info.role ?? 'unknown',
    keys: Object.values(keyspace).reduce((n, db) => n + db.keys, 0),
    keyspace,
    usedMemory: Number(info.used_memory ?? 0),
    aofEnabled: info.aof_enabled === '1',
    save: save ?? '',
  };
}

/**
 * Replica-promote and file-swap speak to the target only in short commands (INFO, CONFIG, REPLICAOF):
 * one unanswered this long means the path to it is gone, and the attempt fails to be tried again.
 */
const PROBE_TIMEOUT_MS = 15_000;

export async function makeLive(ctx: MakeLiveContext): Promise<MakeLiveResult> {
  const t0 = Date.now();
  const strategy = ctx.target.restore.strategy;
  const detail =
    strategy === 'replica-promote' ? await replicaPromote(ctx) : strategy === 'file-swap' ? await fileSwap(ctx) : await logical(ctx);
  return { strategy, durationMs: Date.now() - t0, detail };
}

async function until(what: string, timeoutMs: number, ctx: MakeLiveContext, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new RunbookError('MAKE_LIVE_FAILED', `timed out waiting for ${what}`);
    if (ctx.signal?.aborted) throw ctx.signal.reason;
    if (Date.now() - last > 2000) {
      ctx.heartbeat(what);
      last = Date.now();
    }
    await sleep(50);
  }
}

/** The master the target replicates the backup from: the worker itself (default) or a scratch server. */
async function backupMaster(ctx: MakeLiveContext) {
  const { scratchHost, master } = ctx.target.restore;
  if (master === 'worker') {
    const m = await serveRdb(ctx.rdbFile, scratchHost);
    return { host: m.host, port: m.port, password: m.password, what: 'the worker serving the RDB as a master', stop: () => m.close() };
  }
  const s = await startScratch(ctx.rdbFile, scratchHost, undefined, ctx.databases);
  return { host: s.host, port: s.port, password: s.password, what: 'a scratch redis-server', stop: () => s.stop() };
}

async function replicaPromote(ctx: MakeLiveContext): Promise<string> {
  const scratch = await backupMaster(ctx);
  const client = await connectTarget(ctx.targetName, ctx.target, undefined, PROBE_TIMEOUT_MS).catch(async (err: unknown) => {
    await scratch.stop(); // a target that cannot be reached must not leave the scratch server running
    throw err;
  });
  try {
    const own = await ownReplicaSettings(ctx, client);
    const { masterauth, masteruser } = own.settings;
    await client.config('SET', 'masterauth', scratch.password);
    if (masteruser) await client.config('SET', 'masteruser', '');
    try {
      await client.call('REPLICAOF', scratch.host, String(scratch.port));
      await until('the target to load the backup as a replica', 6 * 3600_000, ctx, async () => {
        const info = parseInfo(await client.info('everything'));
        return info.master_link_status === 'up' && info.master_sync_in_progress === '0' && info.loading === '0';
      });
    } finally {
      // Always leave the target a master with its own settings, whatever happened above.
      await client.call('REPLICAOF', 'NO', 'ONE');
      await client.config('SET', 'masterauth', masterauth);
      if (masteruser) await client.config('SET', 'masteruser', masteruser);
      await rm(own.file, { force: true });
    }
    return (
      `replicated from ${scratch.what} at ${scratch.host}:${scratch.port}, then promoted` +
      (own.lost
        ? "; the target's masterauth/masteruser had been replaced by an interrupted attempt on another worker and are now empty: set them again"
        : '')
    );
  } finally {
    client.disconnect();
    await scratch.stop();
  }
}

interface ReplicaSettings {
  masterauth: string;
  masteruser: string;
}

/**
 * The target's own masterauth/masteruser, which replicating from the scratch server replaces. They are
 * kept on the worker's disk until they are put back: a worker killed in between leaves the scratch's
 * password on the target, and the retry must put back the target's own settings, not that password.
 */
async function ownReplicaSettings(
  ctx: MakeLiveContext,
  client: Redis,
): Promise<{ settings: ReplicaSettings; file: string; lost: boolean }> {
  const e = endpointOf(ctx.targetName, ctx.target);
  // In the worker's private folder, where the next worker process adopts it if this one dies.
  const rel = path.join('replica-settings', `${ctx.targetName}-${e.host.replace(/[^\w.-]/g, '_')}-${e.port}.json`);
  const get = async (key: string) => ((await client.config('GET', key)) as string[])[1] ?? '';
  const current = { masterauth: await get('masterauth'), masteruser: await get('masteruser') };
  if (!isScratchPassword(current.masterauth)) {
    const file = lastingPath(rel);
    await writeFile(file, JSON.stringify(current), { mode: 0o600 });
    return { settings: current, file, lost: false };
  }
  const file = findLasting(rel) ?? lastingPath(rel);
  const saved = await readFile(file, 'utf8').then(
    (text) => JSON.parse(text) as ReplicaSettings,
    () => undefined,
  );
  return { settings: saved ?? { masterauth: '', masteruser: '' }, file, lost: !saved };
}

async function shell(command: string, env: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  await runCommand(command, { what: `"${command}"`, code: 'MAKE_LIVE_FAILED', timeoutMs, env, signal });
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

async function fileSwap(ctx: MakeLiveContext): Promise<string> {
  const swap = ctx.target.restore.fileSwap!;
  const timeoutMs = durationMs(swap.timeout);
  const e = endpointOf(ctx.targetName, ctx.target);
  let client = await connectTarget(ctx.targetName, ctx.target, undefined, PROBE_TIMEOUT_MS);
  const cfg = async (key: string) => ((await client.config('GET', key)) as string[])[1] ?? '';
  const dir = swap.dataDir ?? (await cfg('dir'));
  const dbfilename = await cfg('dbfilename');
  const aof = (await cfg('appendonly')) === 'yes';
  const appenddirname = aof ? await cfg('appenddirname').catch(() => '') : '';
  if (swap.stop) {
    client.disconnect();
    await shell(swap.stop, {}, timeoutMs, ctx.signal);
  } else {
    await client.call('SHUTDOWN', 'NOSAVE').catch(() => {}); // the connection drops: that is the answer
    client.disconnect();
  }
  await until('the target to stop', timeoutMs, ctx, async () => !(await portOpen(e.host, e.port)));

  // The files it had are moved aside, not deleted: they are a way back until the restore is verified.
  const aside = `.pre-restore-${ctx.backupId}`;
  const live = path.join(dir, dbfilename);
  if (await stat(live).catch(() => null)) await rename(live, live + aside);
  if (aof && appenddirname && (await stat(path.join(dir, appenddirname)).catch(() => null))) {
    await rename(path.join(dir, appenddirname), path.join(dir, appenddirname + aside));
  }
  await mkdir(dir, { recursive: true });
  await copyFile(ctx.rdbFile, `${live}.partial`);
  await rename(`${live}.partial`, live);

  await shell(swap.start, { REDIS_EXTRA_ARGS: aof ? '--appendonly no' : '' }, timeoutMs, ctx.signal);
  await until('the target to start and load the RDB', timeoutMs, ctx, async () => {
    try {
      client = await connectTarget(ctx.targetName, ctx.target, 2000, PROBE_TIMEOUT_MS);
    } catch {
      return false;
    }
    const loaded = parseInfo(await client.info('persistence').catch(() => 'loading:1')).loading === '0';
    if (!loaded) client.disconnect();
    return loaded;
  });
  try {
    if (aof) {
      // AOF back on: Redis rewrites it from the restored data, which is then what survives a restart.
      await client.config('SET', 'appendonly', 'yes');
      await until('the AOF rewrite of the restored data', timeoutMs, ctx, async () => {
        const p = parseInfo(await client.info('persistence'));
        return p.aof_enabled === '1' && p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0';
      });
      const status = parseInfo(await client.info('persistence')).aof_last_bgrewrite_status;
      if (status !== 'ok')
        throw new RunbookError('MAKE_LIVE_FAILED', `the AOF rewrite after the restore failed (aof_last_bgrewrite_status:${status})`);
    }
  } finally {
    client.disconnect();
  }
  return `stopped, replaced ${live}${aof ? ', started with AOF off, AOF re-enabled and rewritten' : ', restarted'}`;
}

async function logical(ctx: MakeLiveContext): Promise<string> {
  const scratch = await startScratch(ctx.rdbFile, undefined, undefined, ctx.databases);
  const client = await connectTarget(ctx.targetName, ctx.target).catch(async (err: unknown) => {
    await scratch.stop(); // a target that cannot be reached must not leave the scratch server running
    throw err;
  });
  let keys = 0;
  try {
    const dbs = Object.keys(parseKeyspace(parseInfo(await scratch.client.info('keyspace')))).map((d) => Number(d.slice(2)));
    await client.flushall();
    for (const db of dbs) {
      await scratch.client.select(db);
      await client.select(db);
      let cursor = '0';
      do {
        const [next, batch] = await scratch.client.scan(cursor, 'COUNT', 1000);
        cursor = next;
        if (batch.length === 0) continue;
        const read = scratch.client.pipeline();
        for (const k of batch) read.pttl(k).dumpBuffer(k);
        const res = (await read.exec()) ?? [];
        const write = client.pipeline();
        for (let i = 0; i < batch.length; i++) {
          const ttl = Number(res[2 * i]?.[1]);
          const payload = res[2 * i + 1]?.[1] as Buffer | null;
          if (!payload || ttl === -2) continue; // expired between SCAN and DUMP
          write.restore(batch[i]!, ttl > 0 ? ttl : 0, payload, 'REPLACE');
        }
        for (const [err] of (await write.exec()) ?? [])
          if (err) throw new RunbookError('MAKE_LIVE_FAILED', `RESTORE failed: ${err.message}`);
        keys += batch.length;
        ctx.heartbeat(`restored ${keys} keys`);
      } while (cursor !== '0');
    }
    await client.select(endpointOf(ctx.targetName, ctx.target).db);
    return `flushed, then restored ${keys} keys with RESTORE ... REPLACE`;
  } finally {
    client.disconnect();
    await scratch.stop();
  }
}
