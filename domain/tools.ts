// The programs the runbooks drive, and the one way to run them: where they are (scripts/tools.sh
// installs into the tools dir what PATH lacks), with a minimal environment (no secret of the worker's
// reaches a child), a timeout, the tail of stderr kept, and an error that names the program.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import { RunbookError, type ErrorCode } from '../common/errors';

export const toolsDir = (): string => process.env.RUNBOOK_TOOLS_DIR ?? path.join(os.homedir(), '.cache', 'redis-runbooks');

export type Tool = 'temporal' | 'redis-server' | 'redis-cli' | 'redis-check-rdb' | 'redis-check-aof' | 'zstd' | 'age' | 'versitygw';

/** The tools-dir copy when there is one, else the bare name for PATH to find. */
export function toolPath(tool: Tool): string {
  const cached = path.join(toolsDir(), 'bin', tool);
  return existsSync(cached) ? cached : tool;
}

/** What a child may see of the worker's environment: where things are and how to speak, never a credential. */
const PASSED =
  /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LC_\w+|TZ|TMPDIR|KUBECONFIG|DOCKER_HOST|DOCKER_CONFIG|XDG_RUNTIME_DIR|RUNBOOK_HOOK_\w+)$/;

export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && PASSED.test(k)) env[k] = v;
  const tools = path.join(toolsDir(), 'bin');
  env.PATH = env.PATH ? `${tools}:${env.PATH}` : tools;
  return { ...env, ...extra };
}

export interface ToolRun {
  /** For people: "redis-check-rdb", "writer app pause". */
  what: string;
  timeoutMs: number;
  signal?: AbortSignal;
  env?: Record<string, string>;
  /** The code of the error a failure throws (default TOOL_FAILED). */
  code?: ErrorCode;
  /** Resolve with the output whatever the exit status (a checker's verdict is in its output). */
  check?: boolean;
  /** Told of every chunk of output: the program is alive and doing something. */
  onOutput?: () => void;
}

export interface ToolResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The last 64 KiB of stdout. */
  stdout: string;
  /** The last 2 KiB of stderr. */
  stderr: string;
}

const tail = (s: string, n: number) => (s.length > n ? s.slice(-n) : s);

/** Runs a program (or, with `sh -c`, a configured command) to its end. */
export function runTool(program: string, args: string[], opts: ToolRun): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env: childEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'], signal: opts.signal });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => ((stdout = tail(stdout + d.toString(), 65536)), opts.onOutput?.()));
    child.stderr.on('data', (d: Buffer) => ((stderr = tail(stderr + d.toString(), 2048)), opts.onOutput?.()));
    let timedOut = false;
    const timer = setTimeout(() => ((timedOut = true), child.kill('SIGKILL')), opts.timeoutMs);
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.name === 'AbortError') return reject(opts.signal?.reason ?? err);
      reject(new RunbookError(opts.code ?? 'TOOL_FAILED', `${opts.what} could not run: ${err.message}`, toolHint(program, err)));
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      const result = { exitCode, signal, stdout, stderr };
      if (opts.signal?.aborted) return reject(opts.signal.reason);
      if (timedOut)
        return reject(new RunbookError(opts.code ?? 'TOOL_FAILED', `${opts.what} did not finish within ${opts.timeoutMs / 1000} s`));
      if (exitCode === 0 || opts.check) return resolve(result);
      const why = stderr.trim().split('\n').slice(-4).join(' | ') || stdout.trim().split('\n').slice(-2).join(' | ');
      reject(new RunbookError(opts.code ?? 'TOOL_FAILED', `${opts.what} failed (${exitCode ?? signal})${why ? `: ${why}` : ''}`));
    });
  });
}

/** A configured shell command (a hook, a writer's pause, a file swap's start). */
export function runCommand(command: string, opts: ToolRun): Promise<ToolResult> {
  return runTool('sh', ['-c', command], opts);
}

function toolHint(program: string, err: NodeJS.ErrnoException): string | undefined {
  return err.code === 'ENOENT' ? `${program} is not installed on this worker: run \`npm run tools\`, or put it on PATH` : undefined;
}

/** A program as a stream filter (stdin -> stdout) that fails, naming the program, when the program does. */
export function filterTool(program: string, args: string[], what: string, code: ErrorCode = 'TOOL_FAILED'): Duplex {
  const child = spawn(program, args, { env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = tail(stderr + d.toString(), 2048)));
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on('error', (err: NodeJS.ErrnoException) =>
    duplex.destroy(new RunbookError('TOOL_FAILED', `${what} could not run: ${err.message}`, toolHint(program, err))),
  );
  child.on('exit', (exitCode, signal) => {
    if (exitCode !== 0 && !duplex.destroyed)
      duplex.destroy(new RunbookError(code, `${what} failed (${exitCode ?? signal}): ${stderr.trim()}`));
  });
  duplex.on('close', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return duplex;
}
