// The worker's private folder, for what others on the host must not read: decrypted RDBs, scratch
// servers (their data and their password's config file), a target's saved replica settings. One per
// worker process, made by mkdtemp (mode 0700, a name nobody can guess) under RUNBOOK_STATE_DIR (default
// the temp dir), and checked to be ours and private before every use: a shared temp dir lets anyone
// create a predictable name first.
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RunbookError } from '../common/errors';

const PREFIX = 'redis-runbooks-';
const OWNER_FILE = 'worker.json';
/** Files that outlive their process: the next worker on the host adopts them (see reapDeadStateDirs). */
const LASTING = 'lasting';

/**
 * This process, as an owner. The token tells it from an earlier process with the same pid: a restarted
 * container's worker usually gets its predecessor's pid.
 */
const PROCESS_TOKEN = randomBytes(8).toString('hex');
export const ownerRecord = (server?: number): string => JSON.stringify({ worker: process.pid, token: PROCESS_TOKEN, server });

export function ownerAlive(owner: { worker: number; token?: string }): boolean {
  return owner.worker === process.pid ? owner.token === PROCESS_TOKEN : isAlive(owner.worker);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export const stateBase = (): string => path.resolve(process.env.RUNBOOK_STATE_DIR || os.tmpdir());

/** Throws unless `dir` is a directory of this process's user that nobody else may enter. */
export function checkPrivate(dir: string): void {
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  const mode = st.mode & 0o777;
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || mode !== 0o700) {
    throw new RunbookError(
      'CONFIG_INVALID',
      `the worker's private folder ${dir} is not private: ${st.isDirectory() ? 'a directory' : 'not a directory'} of uid ${st.uid}, mode ${mode.toString(8)}; it must be a directory of uid ${uid ?? '(this user)'}, mode 700`,
      "something changed it: remove it and restart the worker, or set RUNBOOK_STATE_DIR to a folder only the worker's user can write",
    );
  }
}

let current: string | undefined;

/** This process's private folder, made on first use (and again if it was removed). */
export function stateDir(): string {
  if (current) {
    try {
      checkPrivate(current);
      return current;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  const base = stateBase();
  mkdirSync(base, { recursive: true, mode: 0o700 });
  const dir = mkdtempSync(path.join(base, PREFIX));
  checkPrivate(dir);
  writeFileSync(path.join(dir, OWNER_FILE), ownerRecord(), { mode: 0o600 });
  if (!current) process.once('exit', removeIfIdle);
  current = dir;
  return dir;
}

/** At a clean exit: the folder goes, unless it holds lasting files or a scratch server's or drill's folder. */
function removeIfIdle(): void {
  if (!current) return;
  const busy = (dir: string): boolean => {
    try {
      return readdirSync(dir, { withFileTypes: true }).some((e) => !e.isDirectory() || busy(path.join(dir, e.name)));
    } catch {
      return false;
    }
  };
  try {
    if (busy(path.join(current, LASTING)) || readdirSync(current).some((n) => n.startsWith('scratch-') || n.startsWith('drill-'))) return;
    rmSync(current, { recursive: true, force: true });
  } catch {
    // gone already
  }
}

/** Whether `p` lies in a worker's private folder (this process's or another's) under the base, and in which sub-folder. */
export function inStateDir(p: string, sub = ''): boolean {
  const rel = path.relative(stateBase(), p).split(path.sep);
  return rel.length > 1 && rel[0]!.startsWith(PREFIX) && rel[1]!.startsWith(sub);
}

/** The other workers' private folders on this host (of this user, and private), and whether their worker lives. */
export function otherStateDirs(): { dir: string; alive: boolean }[] {
  const own = current;
  let names: string[];
  try {
    names = readdirSync(stateBase()).filter((n) => n.startsWith(PREFIX));
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const dir = path.join(stateBase(), name);
    if (dir === own) return [];
    try {
      checkPrivate(dir);
      const owner = JSON.parse(readFileSync(path.join(dir, OWNER_FILE), 'utf8')) as { worker: number; token?: string };
      return [{ dir, alive: ownerAlive(owner) }];
    } catch {
      return []; // another user's, not private, or being made
    }
  });
}

/** Where a file that must outlive this process goes (0700 folders): `rel` under this process's lasting folder. */
export function lastingPath(rel: string): string {
  const file = path.join(stateDir(), LASTING, rel);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  return file;
}

/** A lasting file, this process's first, else another worker's on this host (a retried attempt's predecessor). */
export function findLasting(rel: string): string | undefined {
  for (const dir of [stateDir(), ...otherStateDirs().map((o) => o.dir)]) {
    const file = path.join(dir, LASTING, rel);
    try {
      if (lstatSync(file).isFile()) return file;
    } catch {
      // not there
    }
  }
  return undefined;
}

/**
 * Removes the private folders of workers that died without removing them (each may hold decrypted
 * production data), after `before` (which stops what still runs in them) and after adopting their
 * lasting files that this process has not got.
 */
export function reapDeadStateDirs(before: (dir: string) => void): void {
  for (const { dir, alive } of otherStateDirs()) {
    if (alive) continue;
    before(dir);
    const walk = (rel: string) => {
      let entries;
      try {
        entries = readdirSync(path.join(dir, LASTING, rel), { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const r = path.join(rel, e.name);
        if (e.isDirectory()) walk(r);
        else if (e.isFile() && !findOwn(r)) renameSync(path.join(dir, LASTING, r), lastingPath(r));
      }
    };
    walk('');
    rmSync(dir, { recursive: true, force: true });
  }
}

function findOwn(rel: string): boolean {
  try {
    return lstatSync(path.join(stateDir(), LASTING, rel)).isFile();
  } catch {
    return false;
  }
}
