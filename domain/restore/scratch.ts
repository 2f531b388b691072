// A scratch redis-server started by the worker on a backup's RDB: the master a target replicates the
// backup from, and the reference verification compares the target with. A random password keeps the
// copy of production data it serves to those who are meant to have it; it is given in a config file
// (0600, in the worker's private folder), never on the command line, which any user sees in `ps`.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { RunbookError } from '../../common/errors';
import { childEnv, toolPath } from '../tools';
import { parseInfo } from '../redis-target';
import { isAlive, ownerAlive, ownerRecord, reapDeadStateDirs } from '../state-dir';
import { restoreWorkDir } from './local-rdb';

export { ownerRecord };

/** Marks a scratch server's password: found as a target's masterauth, it is a restore's, not the target's own. */
const SCRATCH_PASSWORD_PREFIX = 'rr-scratch-';
export const isScratchPassword = (s: string): boolean => s.startsWith(SCRATCH_PASSWORD_PREFIX);

export interface Scratch {
  /** Its folder in the worker's private folder (its dump.rdb is a link to the RDB it loaded). */
  dir: string;
  host: string;
  port: number;
  password: string;
  client: Redis;
  stop(): Promise<void>;
}

/** Enough databases for every one a backup holds keys in (Redis starts with 16; a source may have had more). */
export function databasesFor(keyspace: Record<string, unknown>): number {
  const highest = Math.max(
    -1,
    ...Object.keys(keyspace)
      .map((db) => Number(db.replace(/^db/, '')))
      .filter(Number.isFinite),
  );
  return Math.max(16, highest + 1);
}

export async function startScratch(rdbFile: string, host = '127.0.0.1', timeoutMs = 30 * 60_000, databases = 16): Promise<Scratch> {
  stopOrphans();
  const dir = mkdtempSync(path.join(restoreWorkDir(), 'scratch-'));
  symlinkSync(rdbFile, path.join(dir, 'dump.rdb'));
  const port = await freePort(host);
  const password = SCRATCH_PASSWORD_PREFIX + randomBytes(24).toString('hex');
  const conf = path.join(dir, 'redis.conf');
  const settings: [string, string][] = [
    ['port', String(port)],
    ['bind', host],
    ['dir', dir],
    ['dbfilename', 'dump.rdb'],
    ['save', ''],
    ['appendonly', 'no'],
    ['requirepass', password],
    ['repl-diskless-sync', 'yes'],
    ['repl-diskless-sync-delay', '0'],
    ['protected-mode', 'no'],
    ['databases', String(databases)],
    ['logfile', path.join(dir, 'redis.log')],
    ['daemonize', 'no'],
  ];
  // Quoted as redis-server reads quoted values (JSON's escapes are a subset of its own).
  writeFileSync(conf, settings.map(([k, v]) => `${k} ${JSON.stringify(v)}\n`).join(''), { mode: 0o600 });
  const child = spawn(toolPath('redis-server'), [conf], { stdio: 'ignore', env: childEnv() });
  // A missing binary is an error event: unheard, it would take the whole worker down.
  let spawnError: Error | undefined;
  child.on('error', (err) => (spawnError = err));
  writeFileSync(path.join(dir, OWNER), ownerRecord(child.pid));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const client = await waitLoaded(host, port, password, child, timeoutMs, dir, () => spawnError);
    return { dir, host, port, password, client, stop: async () => (client.disconnect(), stop()) };
  } catch (err) {
    await stop();
    throw err;
  }
}

export const OWNER = 'owner.json';

/**
 * Scratch servers and drill folders whose worker died (SIGKILL, OOM) without removing them: each still
 * holds a copy of a backup, and a server may still feed the target. The next scratch or sandbox started
 * on this host removes them. A server
 * is killed only while it provably works in its own dir (/proc): a reused pid is left alone.
 */
export function stopOrphans(): void {
  sweep(restoreWorkDir());
  // Other workers' private folders, of workers that died: their servers are stopped, the folders removed.
  reapDeadStateDirs(sweep);
}

function sweep(root: string): void {
  let dirs: string[];
  try {
    dirs = readdirSync(root).filter((d) => d.startsWith('scratch-') || d.startsWith('drill-'));
  } catch {
    return;
  }
  for (const name of dirs) {
    const dir = path.join(root, name);
    let owner: { worker: number; token?: string; server?: number };
    try {
      owner = JSON.parse(readFileSync(path.join(dir, OWNER), 'utf8')) as typeof owner;
    } catch {
      continue; // being started, or not one of ours
    }
    if (ownerAlive(owner)) continue;
    if (owner.server && isAlive(owner.server)) {
      if (!existsSync('/proc/self/cwd')) continue; // no /proc: cannot tell it is ours
      // redis-server rewrites its command line, but works in its dir.
      try {
        if (readlinkSync(`/proc/${owner.server}/cwd`) === dir) process.kill(owner.server, 'SIGKILL');
      } catch {
        // exited meanwhile, or a zombie
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

async function waitLoaded(
  host: string,
  port: number,
  password: string,
  child: ChildProcess,
  timeoutMs: number,
  dir: string,
  spawnError: () => Error | undefined,
): Promise<Redis> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const failed = spawnError();
    if (failed) {
      throw new RunbookError(
        'CONFIG_INVALID',
        `redis-server could not be started on this worker: ${failed.message}`,
        'run `npm run tools`',
      );
    }
    // Killed (the OOM killer, while loading) is an exit too: a signal and no exit code.
    if (child.exitCode !== null || child.signalCode !== null) {
      const log = (() => {
        try {
          return readFileSync(path.join(dir, 'redis.log'), 'utf8').trim().split('\n').slice(-3).join(' | ');
        } catch {
          return '';
        }
      })();
      throw new RunbookError(
        'RDB_INVALID',
        `the scratch redis-server stopped before it served the backup (${child.signalCode ? `killed by ${child.signalCode}` : `exit ${child.exitCode}`})${log ? `: ${log}` : ''}`,
        child.signalCode === 'SIGKILL' ? 'the worker may lack the memory to load it' : 'its log above says why',
      );
    }
    const c = new Redis({
      host,
      port,
      password,
      lazyConnect: true,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    c.on('error', () => {});
    try {
      await c.connect();
      if (parseInfo(await c.info('persistence')).loading === '0') return c;
    } catch {
      // starting or loading
    }
    c.disconnect();
    await sleep(50);
  }
  throw new RunbookError('SCRATCH_FAILED', 'the scratch redis-server did not load the backup in time');
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
