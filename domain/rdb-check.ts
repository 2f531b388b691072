// redis-check-rdb and redis-check-aof, run one way: on a file (drills, recoveries) or on a stream as
// it passes (a capture checks its RDB without reading it twice). Their verdict is read in one place.
import { spawn } from 'node:child_process';
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
  // Node gives a child a socket, not a pipe, as stdin, and /dev/stdin cannot be opened on a socket:
  // cat turns it into a real pipe.
  const child = spawn('sh', ['-c', 'cat | "$0" /dev/stdin', toolPath('redis-check-rdb')], {
    env: childEnv(),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stdin.on('error', () => {}); // an early exit is reported through `result`
  const result = new Promise<{ keys: number; expires: number }>((resolve, reject) => {
    child.on('error', (err) => reject(new RunbookError('TOOL_FAILED', `redis-check-rdb could not run: ${err.message}`)));
    child.on('close', (code) => {
      const v = verdictOf(code, out);
      if (v.ok) return resolve({ keys: Math.max(0, v.keys), expires: v.expires });
      const lines = out.trim().split('\n').slice(-4).join(' | ');
      reject(
        new RunbookError('RDB_INVALID', `redis-check-rdb rejected the RDB: ${lines}`, 'the captured RDB is damaged; nothing was kept'),
      );
    });
  });
  return { stdin: child.stdin, result, kill: () => child.kill('SIGKILL') };
}
