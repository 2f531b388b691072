// Activities of the disaster-recovery runbook: look at the target as it is, and choose the recovery
// point across every destination, proving the copy before anyone is asked to approve it. Both only read.
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { targetOf } from '../common/config';
import type { Assessment, CandidateCopy, Check, RecoveryPoint } from '../common/drill-types';
import { RunbookError } from '../common/errors';
import { toolPath } from '../domain/tools';
import type { Manifest } from '../common/types';
import { listDestination } from '../domain/catalog';
import { keyring } from '../domain/crypto/keys';
import type { ActivityDeps } from './index';
import { connectTarget, parseInfo } from '../domain/redis-target';
import { localRdb, removeLocalRdb } from '../domain/restore/local-rdb';

type Run = <T>(fn: () => Promise<T>) => Promise<T>;

/** How many backups a recovery tries, newest first, before it gives up. */
const MAX_CANDIDATES = 10;

export function createRecoverActivities(deps: ActivityDeps, run: Run) {
  const { config, stores } = deps;
  const keys = deps.keys ?? keyring(config);

  return {
    /** Reachable? What role, how many keys, is it persisting? With the data dir at hand, are its files sound? */
    async assessTarget(input: { target: string; checkFiles?: boolean }): Promise<Assessment & { runId?: string }> {
      return run(async () => {
        const t = targetOf(config, input.target);
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
          const ctx = Context.current();
          // redis-check-rdb on a large file takes minutes: the heartbeat says the check is alive.
          const beat = setInterval(() => ctx.heartbeat({ phase: 'checking files' }), 5_000);
          try {
            const rdb = path.join(dir, rdbName);
            if (await readable(rdb)) a.files.push(await checkFile('redis-check-rdb', [rdb], ctx.cancellationSignal));
            else a.files.push({ name: rdbName, ok: true, detail: `no ${rdbName} in ${dir}: the server has not saved a snapshot there` });
            // Redis 7 keeps the AOF as a manifest and its parts in appenddirname; older ones as one file.
            const manifest = path.join(dir, aofDir, `${aofName}.manifest`);
            const single = path.join(dir, aofName);
            if (await readable(manifest)) a.files.push(await checkFile('redis-check-aof', [manifest], ctx.cancellationSignal));
            else if (await readable(single)) a.files.push(await checkFile('redis-check-aof', [single], ctx.cancellationSignal));
          } finally {
            clearInterval(beat);
          }
        } else {
          a.files.push({
            name: 'data files',
            ok: true,
            detail: dir ? `${dir} is not readable from this worker: files not checked` : 'data dir unknown: files not checked',
          });
        }
        return a;
      });
    },

    /**
     * The newest backup with a copy that proves out, across all destinations (the local one first,
     * off-site when the local copy is missing or damaged). Every copy looked at is listed, with why a
     * rejected one was rejected. The proven copy stays on this worker for the restore's plan.
     */
    async chooseRecoveryPoint(input: { target: string; at?: string; from?: string }): Promise<RecoveryPoint> {
      return run(async () => {
        const t = targetOf(config, input.target);
        const ctx = Context.current();
        const considered: CandidateCopy[] = [];
        const byId = new Map<string, { manifest: Manifest; destinations: string[] }>();
        for (const destination of t.destinations) {
          try {
            for (const [id, manifest] of (await listDestination(stores, destination, input.target)).withManifest) {
              const e = byId.get(id) ?? { manifest, destinations: [] };
              e.destinations.push(destination);
              byId.set(id, e);
            }
          } catch (err) {
            considered.push({
              backupId: '*',
              createdAt: '',
              destination,
              ok: false,
              detail: `cannot be listed: ${(err as Error).message}`,
            });
          }
        }
        const at = input.at ? Date.parse(input.at) : undefined;
        const candidates = [...byId.values()]
          .filter(({ manifest: m }) => (input.from ? m.backupId === input.from : at === undefined || Date.parse(m.createdAt) < at))
          .filter(({ manifest: m }) => m.verification.copies.every((c) => c.ok))
          .sort((a, b) => b.manifest.createdAt.localeCompare(a.manifest.createdAt))
          .slice(0, MAX_CANDIDATES);
        const beat = setInterval(() => ctx.heartbeat(), 5_000);
        try {
          for (const { manifest, destinations } of candidates) {
            for (const destination of t.destinations) {
              const copy = { backupId: manifest.backupId, createdAt: manifest.createdAt, destination };
              if (!destinations.includes(destination)) {
                considered.push({ ...copy, ok: false, detail: 'no manifest in this destination (deleted, or never written)' });
                continue;
              }
              try {
                await localRdb(stores, manifest, [destination], { keys, signal: ctx.cancellationSignal, fresh: true });
              } catch (err) {
                await removeLocalRdb(manifest.backupId);
                if (ctx.cancellationSignal.aborted) throw err;
                considered.push({
                  ...copy,
                  ok: false,
                  detail: (err as Error).message.replace(/^no copy of \S+ checks out \((.*)\)$/, '$1').replace(`${destination}: `, ''),
                });
                continue;
              }
              considered.push({ ...copy, ok: true, detail: 'checksums, decryption and RDB header verified' });
              return { backupId: manifest.backupId, createdAt: manifest.createdAt, destination, considered };
            }
          }
        } finally {
          clearInterval(beat);
        }
        const which = input.from
          ? `backup ${input.from}`
          : at !== undefined
            ? `backup of ${input.target} taken before ${input.at}`
            : `backup of ${input.target}`;
        throw new RunbookError(
          'BACKUP_NOT_FOUND',
          `no ${which} has a copy that verifies${considered.length ? `: ${considered.map((c) => `${c.backupId}@${c.destination}: ${c.detail}`).join('; ')}` : ''}`,
          'look at `runbook backups list`; an older point (--at) or another backup (--from) may still be good',
        );
      });
    },
  };
}

async function readable(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

function checkFile(tool: 'redis-check-rdb' | 'redis-check-aof', args: string[], signal: AbortSignal): Promise<Check> {
  return new Promise((resolve) => {
    execFile(toolPath(tool), args, { signal, timeout: 30 * 60_000, maxBuffer: 8 << 20 }, (err, stdout) => {
      const out = String(stdout).trim().split('\n');
      const last = out
        .filter((l) => l.trim())
        .slice(-2)
        .join(' ')
        .slice(0, 300);
      resolve({ name: `${tool} ${args[0]}`, ok: !err, detail: err ? `damaged: ${last || (err as Error).message}` : last || 'OK' });
    });
  });
}
