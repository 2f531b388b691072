// `runbook backup --wait` shows progress people can read: the real CLI against a real worker (built as
// `runbook worker` builds it), a Temporal dev server and a redis-server holding a few hundred MiB,
// whose RDB reaches the worker through a throttled proxy so that the capture lasts a few seconds. On a
// pseudo-terminal one line is redrawn in place; piped, a plain line every 5 s; with --json, nothing.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Meter, ProgressLine } from '../../cli/progress';
import { parseConfig } from '../../common/config';
import type { BackupReport } from '../../common/types';
import { createRunbookWorker } from '../../worker';
import { startRedis, type RedisProcess } from '../support/redis';
import { signingKey } from '../support/signing';
import { startTemporal } from '../support/temporal';
import { throttledProxy, type ThrottledProxy } from '../support/throttled-proxy';

const MiB = 1024 * 1024;
/** 256 Ki keys of 1 KiB, stored uncompressed in the RDB: about 270 MiB to capture. */
const KEYS = 256 * 1024;
/** About 7 s of capture. */
const RATE = 40 * MiB;

let env: TestWorkflowEnvironment;
let redis: RedisProcess;
let proxy: ThrottledProxy;
let dir: string;
let configFile: string;
let worker: Awaited<ReturnType<typeof createRunbookWorker>>;
let workerRun: Promise<void>;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rr-progress-'));
  // Uncompressed: the padded values DEBUG POPULATE makes would otherwise shrink to almost nothing.
  [env, redis] = await Promise.all([startTemporal(), startRedis({ args: ['--rdbcompression', 'no'] })]);
  await redis.client().call('DEBUG', 'POPULATE', String(KEYS), 'key', '1024');
  proxy = await throttledProxy(redis.port, RATE);
  const text = `
temporal: { address: "${env.address}", taskQueue: progress-test }
${signingKey(dir).yaml}storage:
  disk: { type: local, path: ${dir}/backups }
targets:
  main:
    url: redis://127.0.0.1:${proxy.port}
    destinations: [disk]
`;
  configFile = path.join(dir, 'runbook.yaml');
  writeFileSync(configFile, text);
  worker = await createRunbookWorker({ config: parseConfig(text, configFile), address: env.address });
  workerRun = worker.worker.run();
});

afterAll(async () => {
  worker?.worker.shutdown();
  await workerRun;
  await worker?.close();
  await proxy?.close();
  await Promise.all([env?.teardown(), redis?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Each chunk of stderr (or of the terminal) with when it came, in ms since the start. */
  chunks: { at: number; text: string }[];
}

const cliArgs = (...args: string[]) => ['--import', 'tsx', 'cli/index.ts', '--config', configFile, ...args];
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The CLI with pipes, or on a pseudo-terminal (`script`) where stdout and stderr are one stream. */
function run(args: string[], opts: { tty?: boolean } = {}): Promise<Run> {
  const env = { ...process.env, TERM: 'xterm' };
  const child = opts.tty
    ? spawn('script', ['-qec', [process.execPath, ...cliArgs(...args)].map(quote).join(' '), '/dev/null'], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(process.execPath, cliArgs(...args), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const t0 = Date.now();
  const r: Run = { code: null, stdout: '', stderr: '', chunks: [] };
  child.stdout.on('data', (d: Buffer) => {
    r.stdout += d.toString();
    if (opts.tty) r.chunks.push({ at: Date.now() - t0, text: d.toString() });
  });
  child.stderr.on('data', (d: Buffer) => {
    r.stderr += d.toString();
    r.chunks.push({ at: Date.now() - t0, text: d.toString() });
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ ...r, code })));
}

const ESC = '\x1b';
/** Back to the start of the line, and clear it. */
const CLEAR = `\r${ESC}[K`;
const CAPTURE = /^capture {2}([\d.]+) MiB of ~([\d.]+) MiB {2}(\d+)%/;

describe('runbook backup --wait', () => {
  it('redraws one progress line in place on a terminal, then clears it for the report', { timeout: 120_000 }, async () => {
    proxy.setRate(RATE);
    const r = await run(['backup', 'main', '--wait'], { tty: true });
    expect(r.code, r.stdout).toBe(0);
    const reportAt = r.stdout.search(/backup \S+ of main: OK/);
    expect(reportAt).toBeGreaterThan(0);
    const before = r.stdout.slice(0, reportAt);
    // Redrawn, never scrolled: no line ends before the report, and the last drawn line was cleared.
    expect(before).not.toContain('\n');
    expect(before.endsWith(CLEAR), JSON.stringify(before.slice(-80))).toBe(true);
    const drawn = before
      .split('\r')
      .map((l) => l.replaceAll(`${ESC}[K`, ''))
      .filter(Boolean);
    const captures = drawn.map((l) => CAPTURE.exec(l)).filter((m) => m !== null);
    const bytes = [...new Set(captures.map((m) => Number(m[1])))];
    expect(bytes.length, drawn.join('\n')).toBeGreaterThanOrEqual(3);
    // In order, growing: each state reads more than the one before.
    for (let i = 1; i < bytes.length; i++) expect(bytes[i]).toBeGreaterThan(bytes[i - 1]!);
    const percents = captures.map((m) => Number(m[3]));
    expect(Math.max(...percents)).toBeGreaterThan(Math.min(...percents));
    expect(Math.max(...percents)).toBeLessThanOrEqual(99);
    // The expected total is the target's used memory, a little more than its RDB.
    const total = Number(captures[0]![2]) * MiB;
    expect(total).toBeGreaterThan(KEYS * 1024);
    expect(total).toBeLessThan(KEYS * 1024 * 1.5);
    expect(
      drawn.some((l) => /^capture .* [\d.]+ MiB\/s {2}ETA \d+s$/.test(l)),
      drawn.join('\n'),
    ).toBe(true);
  });

  it('prints nothing but the result with --json', { timeout: 60_000 }, async () => {
    proxy.setRate(Infinity);
    const json = await run(['--json', 'backup', 'main', '--wait']);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stderr).toBe('');
    expect((JSON.parse(json.stdout) as BackupReport).target).toBe('main');
  });

  it('writes a plain line every 5 s when piped, with the size the last backup foretells', { timeout: 120_000 }, async () => {
    // The one before (made here when this test runs alone) tells how large an RDB this target makes.
    proxy.setRate(Infinity);
    expect((await run(['--json', 'backup', 'main', '--wait'])).code).toBe(0);
    proxy.setRate(RATE);
    const piped = await run(['backup', 'main', '--wait']);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout).toMatch(/^backup \S+ of main: OK/);
    expect(piped.stderr).not.toContain('\r');
    expect(piped.stderr).not.toContain(ESC);
    const lines = piped.stderr.split('\n').filter(Boolean);
    // The capture lasts more than 5 s: at least one line, and each one a whole line about a step.
    const captures = lines.map((l) => CAPTURE.exec(l)).filter((m) => m !== null);
    expect(captures.length, piped.stderr).toBeGreaterThanOrEqual(1);
    for (const l of lines) expect(l).toMatch(/^[a-z][\w ,:()~.%/-]* {2}\S/);
    const at = piped.chunks.map((c) => c.at);
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThan(4_000);
    const rdb = Number(/raw ([\d.]+) MiB/.exec(piped.stdout)![1]);
    expect(Math.abs(Number(captures[0]![2]) - rdb) / rdb).toBeLessThan(0.02);
  });
});

describe('runbook drill --wait', () => {
  it('shows the drill step by step on a terminal, then its report on a clean line', { timeout: 120_000 }, async () => {
    proxy.setRate(Infinity);
    expect((await run(['--json', 'backup', 'main', '--wait'])).code).toBe(0);
    const r = await run(['drill', 'main', '--wait'], { tty: true });
    expect(r.code, r.stdout).toBe(0);
    const reportAt = r.stdout.search(/drill \S+ of main: PASSED/);
    expect(reportAt, r.stdout).toBeGreaterThan(0);
    const before = r.stdout.slice(0, reportAt);
    expect(before.endsWith(CLEAR), JSON.stringify(before)).toBe(true);
    const drawn = before
      .split('\r')
      .map((l) => l.replaceAll(`${ESC}[K`, ''))
      .filter(Boolean);
    // Loading 270 MiB into the sandbox takes more than the half second between two looks.
    expect(
      drawn.some((l) => /^drill: (fetch|load|verify) {2}/.test(l)),
      drawn.join('\n'),
    ).toBe(true);
    for (const l of drawn) expect(l).toMatch(/^[a-z]/);
  });
});

describe('the progress line', () => {
  /** A stream as the line sees it: a terminal of 60 columns or a pipe, writing into a string. */
  const stream = (tty: boolean) => {
    const s = { text: '', isTTY: tty, columns: 60, write: (t: string) => ((s.text += t), true) };
    return s as typeof s & NodeJS.WriteStream;
  };

  it('measures the rate on the worker clock and gives the time left, capped below 100% for a guessed total', () => {
    const m = new Meter();
    const step = { step: 'capture', key: 'a', attempt: 1, total: 100 * MiB, estimated: true };
    expect(m.render({ ...step, bytes: 0, at: 1_000 }, 50_000)).toBe('capture  0.0 MiB of ~100.0 MiB  0%  0s');
    expect(m.render({ ...step, bytes: 20 * MiB, at: 3_000 }, 51_000)).toBe('capture  20.0 MiB of ~100.0 MiB  20%  10.0 MiB/s  ETA 8s');
    // Past a guessed total, the guess is dropped rather than shown as more than 100%.
    expect(m.render({ ...step, bytes: 120 * MiB, at: 5_000 }, 52_000)).toBe('capture  120.0 MiB  30.0 MiB/s  2s');
    // A new attempt starts again.
    expect(m.render({ ...step, key: 'b', attempt: 2, bytes: 99.9 * MiB, total: 100 * MiB, estimated: false }, 53_000)).toBe(
      'capture (attempt 2)  99.9 MiB of 100.0 MiB  99%  0s',
    );
  });

  it('redraws within the terminal width, and prints whole lines every 5 s to a pipe', () => {
    const tty = stream(true);
    const line = new ProgressLine(tty, 0);
    line.show({ step: 'drill: fetch', key: 'k', attempt: 1, bytes: 5 * MiB, total: 10 * MiB, note: 'x'.repeat(100) }, 100);
    line.finish();
    const [, drawn, cleared] = tty.text.split('\r');
    expect(drawn).toBe(`drill: fetch: ${'x'.repeat(59 - 'drill: fetch: '.length)}${ESC}[K`);
    expect(`\r${cleared}`).toBe(CLEAR);

    const pipe = stream(false);
    const plain = new ProgressLine(pipe, 0);
    for (let t = 0; t <= 12_000; t += 500) plain.show({ step: 'verify', key: 'k', attempt: 1 }, t);
    plain.finish();
    expect(pipe.text).toBe('verify  5s\nverify  10s\n');
  });
});
