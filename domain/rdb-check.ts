// redis-check-rdb and redis-check-aof, run one way: on a file (drills, recoveries) or on a stream as
// it passes (a capture checks its RDB without reading it twice). Their verdict is read in one place.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Writable } from 'node:stream';
import { RunbookError } from '../common/errors';
import { childEnv, runTool, toolPath } from './tools';

export interface RdbVerdict {
  ok: boolean;
  keys: number;
  expires: number;
  /** The checker's last words, for people. */
  detail: string;
}

function verdictOf(exitCode: number | null, out: string): RdbVerdict {
  const ok = exitCode === 0 && /RDB looks OK/.test(out);
  const lines = out
    .trim()
    .split('\n')
    .filter((l) => l.trim());
  const why = ok ? lines.slice(-2) : lines.filter((l) => /error|fail|invalid|unexpected|wrong/i.test(l)).slice(-2);
  return {
    ok,
    keys: Number(/(\d+) keys read/.exec(out)?.[1] ?? -1),
    expires: Number(/(\d+) expires/.exec(out)?.[1] ?? 0),
    detail: (why.length ? why : lines.slice(-2)).join(' ').slice(0, 400),
  };
}

/** redis-check-rdb on a file. `onAlive` hears of its output (it prints as it goes). */
export async function checkRdbFile(file: string, opts: { signal?: AbortSignal; onAlive?: () => void } = {}): Promise<RdbVerdict> {
  const r = await runTool(toolPath('redis-check-rdb'), [file], {
    what: 'redis-check-rdb',
    timeoutMs: 30 * 60_000,
    signal: opts.signal,
    check: true,
    onOutput: opts.onAlive,
  });
  return verdictOf(r.exitCode, r.stdout + r.stderr);
}

/** redis-check-aof on an AOF file or (Redis 7) its manifest: ok, or the last words of what it found. */
export async function checkAofFile(
  file: string,
  opts: { signal?: AbortSignal; onAlive?: () => void } = {},
): Promise<{ ok: boolean; detail: string }> {
  const r = await runTool(toolPath('redis-check-aof'), [file], {
    what: 'redis-check-aof',
    timeoutMs: 30 * 60_000,
    signal: opts.signal,
    check: true,
    onOutput: opts.onAlive,
  });
  const last = r.stdout
    .trim()
    .split('\n')
    .filter((l) => l.trim())
    .slice(-2)
    .join(' ')
    .slice(0, 300);
  return { ok: r.exitCode === 0, detail: last };
}

/** redis-check-rdb reading a stream as it passes: write the RDB to `stdin`, await `result`. */
export function rdbStreamChecker() {
  const checker = toolPath('redis-check-rdb');
  let child: ChildProcess;
  let stdin: Writable;
  let toFifo: net.Socket | undefined;
  let ended = false; // the checker has exited, or could not start
  let notOpened: string | undefined;
  const fifo = namedPipe();
  if (fifo) {
    child = spawn(checker, [fifo.file], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    // The checker's open of the FIFO blocks until a writer comes; ours (non-blocking) fails until the
    // checker is there. Writing only once both ends are open, the checker cannot miss the writer,
    // however soon a small RDB has ended.
    const pass = new PassThrough({ highWaterMark: 1 << 20 });
    stdin = pass;
    const since = Date.now();
    const attach = () => {
      if (ended || pass.destroyed) return fifo.remove();
      let fd: number;
      try {
        fd = openSync(fifo.file, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENXIO' && Date.now() - since < OPEN_TIMEOUT_MS) {
          setTimeout(attach, 2);
          return;
        }
        notOpened =
          (err as NodeJS.ErrnoException).code === 'ENXIO' ? `it did not open its input within ${OPEN_TIMEOUT_MS / 1000} s` : String(err);
        fifo.remove();
        child.kill('SIGKILL');
        return;
      }
      fifo.remove(); // both ends are open: the name is no longer needed
      toFifo = new net.Socket({ fd, readable: false, writable: true });
      // The checker gone (EPIPE): its exit says why. Destroyed with the error, as a child's stdin would be.
      toFifo.on('error', (err) => pass.destroy(err));
      pass.pipe(toFifo);
    };
    attach();
  } else {
    // Node gives a child a socket, not a pipe, as stdin, and /dev/stdin cannot be opened on a socket:
    // cat turns it into a pipe.
    child = spawn('sh', ['-c', 'cat | "$0" /dev/stdin', checker], { env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    stdin = child.stdin!;
  }
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  stdin.on('error', () => {}); // an early exit is reported through `result`
  const result = new Promise<{ keys: number; expires: number }>((resolve, reject) => {
    child.on('error', (err) => {
      ended = true;
      reject(new RunbookError('TOOL_FAILED', `redis-check-rdb could not run: ${err.message}`));
    });
    child.on('exit', () => (ended = true));
    child.on('close', (code) => {
      ended = true;
      if (notOpened) return reject(new RunbookError('TOOL_FAILED', `redis-check-rdb could not be fed the RDB: ${notOpened}`));
      const v = verdictOf(code, out);
      if (v.ok) return resolve({ keys: Math.max(0, v.keys), expires: v.expires });
      const lines = out.trim().split('\n').slice(-4).join(' | ');
      reject(
        new RunbookError('RDB_INVALID', `redis-check-rdb rejected the RDB: ${lines}`, 'the captured RDB is damaged; nothing was kept'),
      );
    });
  });
  return {
    stdin,
    result,
    kill: () => {
      child.kill('SIGKILL');
      stdin.destroy();
      toFifo?.destroy();
      fifo?.remove();
    },
  };
}

const OPEN_TIMEOUT_MS = 30_000;

/**
 * A new FIFO in a private temp dir; undefined where none can be made (no mkfifo). Fed through a pipe,
 * redis-check-rdb needs no `cat` between it and this process: one process and one copy of the RDB fewer.
 */
function namedPipe(): { file: string; remove(): void } | undefined {
  let dir: string | undefined;
  const remove = () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
  try {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rdb-check-'));
    const file = path.join(dir, 'rdb');
    execFileSync('mkfifo', ['-m', '600', file], { env: childEnv(), stdio: 'ignore', timeout: 10_000 });
    return { file, remove };
  } catch {
    remove();
    return undefined;
  }
}
