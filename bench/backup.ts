// Backup benchmark (not a test): how close does a real `runbook backup --wait` come to the limit,
// `redis-cli --rdb`, on one machine, for the dataset shapes it generates itself (bench/datasets.ts)?
//
//   npm run bench:backup                      full run (~4M small keys, ~1 GB of 50 KiB values,
//                                             2M mixed keys, 12k mixed keys of ~50 KB)
//   BENCH_SCALE=0.05 npx tsx bench/backup.ts  quick run: key counts multiplied by BENCH_SCALE
//   BENCH_MEMORY=1 npx tsx bench/backup.ts    memory check: the worker's peak RSS backing up a ~1 GB,
//                                             then a ~4 GB RDB (BENCH_MEMORY_GB=1,4), (a) and (c) only
//
// Other knobs: BENCH_GZIP=0 skips (d), the gzip backup; BENCH_SHAPES=small-keys,large-values,mixed,
// mixed-large picks shapes; BENCH_CPU_PROF=<dir> runs the worker with --cpu-prof into <dir>; BENCH_TMPDIR=<dir> puts the
// temp dir (Redis dir, Temporal SQLite, backup destination, (b)'s output file) elsewhere than
// os.tmpdir(); BENCH_KEEP=1 keeps it; BENCH_BACKUP_TRIES (default 3) re-runs a failed `runbook backup`
// (each failure is recorded); BENCH_BACKUP_TIMEOUT_S kills a run that hangs and terminates its workflow;
// BENCH_WORKER_NODE_ARGS adds node options to the worker (--trace-gc, --perf-basic-prof for perf).
// The results also go to bench/results/backup-<date>.json, with the CPU used by other processes on the
// machine during each measurement ("foreign CPU"): on 2 cores, other jobs distort the numbers; and
// the CPU each process used (sampled from /proc every 200 ms, pidstat-like, with a timeline): the
// worker's threads, its children (zstd, redis-check-rdb, age), Redis's main thread and its fork.
//
// Per shape:
//   (a) redis-cli -p PORT --rdb /dev/null           the limit. redis-cli exits 1 there (fsync of
//       /dev/null fails after the transfer); accepted when it printed "Transfer finished with success".
//   (b) sh -c 'redis-cli -p PORT --rdb - | gzip > FILE'   the seeds' pipeline (gzip -6, no fsync).
//   (c) runbook backup <target> --wait --json, compression zstd (the default), to a local destination:
//       the CLI as a child process, the worker another (node --import tsx, so its pid is the node
//       process whose VmHWM is read), Temporal the official CLI dev server.
//   (d) the same with compression gzip.
//   (e) the same as (c), encrypted with age (encryption at rest); BENCH_AGE=0 skips it.
// Throughput is RDB bytes / wall time, in MB/s (10^6 bytes).
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statfsSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import type { Redis } from 'ioredis';
import { toolPath } from '../domain/tools';
import { generateIdentity } from '../domain/crypto/age';
import type { BackupReport } from '../common/types';
import { freePort, startRedis } from '../test/support/redis';
import { signingKey } from '../test/support/signing';
import { startDevServer } from '../worker/dev-server';
import { fillLargeValues, fillMixed, LARGE_VALUE_SIZE, populateSmallKeys } from './datasets';
import {
  cleanup,
  cpuDelta,
  machineBusySeconds,
  cpuTimes,
  installSignalHandlers,
  kill,
  memory,
  onCleanup,
  resetPeak,
  round,
  run,
  sampleProcesses,
  track,
  type CpuSample,
  type CpuTimes,
} from './procs';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
if (!(SCALE > 0)) throw new Error(`BENCH_SCALE must be a positive number, not "${process.env.BENCH_SCALE}"`);
const MEMORY_MODE = process.env.BENCH_MEMORY === '1';
/** Memory mode: the RDB sizes to back up, in GB, each dataset growing the one before. */
const MEMORY_GB = (process.env.BENCH_MEMORY_GB ?? '1,4').split(',').map(Number);
if (MEMORY_GB.some((g) => !(g > 0))) throw new Error(`BENCH_MEMORY_GB must list positive numbers, not "${process.env.BENCH_MEMORY_GB}"`);
const WITH_GZIP = process.env.BENCH_GZIP !== '0' && !MEMORY_MODE;
const WITH_AGE = process.env.BENCH_AGE !== '0' && !MEMORY_MODE;
const WITH_SEEDS = !MEMORY_MODE;
const ONLY = process.env.BENCH_SHAPES?.split(',').map((s) => s.trim());
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;
const KEEP = process.env.BENCH_KEEP === '1';
/** More node options for the worker, e.g. --trace-gc or --perf-basic-prof (its log is in the temp dir). */
const WORKER_NODE_ARGS = process.env.BENCH_WORKER_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [];
const TMP = process.env.BENCH_TMPDIR ?? os.tmpdir();
/** A failed `runbook backup` is recorded and run again, at most this many times in all. */
const BACKUP_TRIES = Math.max(1, Number(process.env.BENCH_BACKUP_TRIES ?? 3));
/**
 * A `runbook backup` still running after this long is killed and its workflow terminated (and counted
 * as a failed run). Default: 60 s + 20 times the shape's redis-cli time, at least 120 s.
 */
const BACKUP_TIMEOUT_S = process.env.BENCH_BACKUP_TIMEOUT_S ? Number(process.env.BENCH_BACKUP_TIMEOUT_S) : undefined;

/**
 * The code measured: the commit, and whether the work tree differed from it. BENCH_GIT_COMMIT, when
 * set, is taken as it is and git is not run (outside a clone, or where git must not touch the index).
 */
function codeVersion(): { commit: string; dirty: boolean | null } {
  if (process.env.BENCH_GIT_COMMIT) return { commit: process.env.BENCH_GIT_COMMIT, dirty: null };
  try {
    const git = (...args: string[]) =>
      execFileSync('git', args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim();
    return { commit: git('rev-parse', 'HEAD'), dirty: git('status', '--porcelain', '--untracked-files=no').length > 0 };
  } catch {
    return { commit: process.env.BENCH_GIT_COMMIT ?? 'unknown', dirty: null };
  }
}

const MB = 1e6;
const MiB = 1024 * 1024;
const t0 = Date.now();
const log = (msg: string) => process.stderr.write(`[bench +${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);

interface Shape {
  name: string;
  description: string;
  keys: number;
  fill(client: Redis, port: number): Promise<void>;
  /** The next shape adds to this one's keys: not flushed after it (memory mode). */
  grows?: boolean;
  /** What it needs, for the free-space check: Redis's memory and the disk its backups take. */
  needs?: { memoryBytes: number; diskBytes: number };
}

const progress = (name: string, total: number) => {
  let next = 0;
  return (done: number) => {
    if (done >= next) {
      log(`  ${name}: filled ${done}/${total}`);
      next += Math.ceil(total / 4);
    }
  };
};

const allShapes: Shape[] = [
  {
    name: 'small-keys',
    description: 'DEBUG POPULATE N key 200 (200-byte values)',
    keys: Math.max(1, Math.round(4_000_000 * SCALE)),
    fill(client) {
      return populateSmallKeys(client, this.keys, 200);
    },
  },
  {
    name: 'large-values',
    description: `${LARGE_VALUE_SIZE}-byte values of seeded pseudo-random data, partly compressible`,
    keys: Math.max(1, Math.round(20_000 * SCALE)),
    fill(client) {
      return fillLargeValues(client, this.keys, progress(this.name, this.keys));
    },
  },
  {
    name: 'mixed',
    description:
      'every type (strings, integers, hashes, lists, sets, sorted sets, streams), db 0 and db 1, 1 key in 10 with a TTL; 40-200-byte records, no two alike (~140 B of RDB a key)',
    keys: Math.max(1, Math.round(2_000_000 * SCALE)),
    fill(_client, port) {
      return fillMixed(toolPath('redis-cli'), port, this.keys, { onProgress: progress(this.name, this.keys) });
    },
  },
  {
    name: 'mixed-large',
    description: 'the same types and databases, 40-60 KB a key (one value, or 80-160 elements), records no two alike (~40 KB of RDB a key)',
    keys: Math.max(1, Math.round(12_000 * SCALE)),
    fill(_client, port) {
      return fillMixed(toolPath('redis-cli'), port, this.keys, { large: true, onProgress: progress(this.name, this.keys) });
    },
  },
];

/** Memory mode: large values growing from one size to the next; each adds keys to the one before. */
const memoryShapes: Shape[] = MEMORY_GB.map((gb, i) => {
  const keys = Math.round((gb * 1e9) / LARGE_VALUE_SIZE);
  return {
    name: `huge-${gb}g`,
    description: `${keys} values of ${LARGE_VALUE_SIZE} bytes (large-values data), ~${gb} GB of RDB`,
    keys,
    grows: i < MEMORY_GB.length - 1,
    // used_memory is ~1.13x the data; stored ~0.4x the RDB (zstd -1 on this data), kept twice at most
    // (the backup and its temp file are one; the previous run's is removed first).
    needs: { memoryBytes: gb * 1.2e9, diskBytes: gb * 0.5e9 },
    async fill(client) {
      const from = await client.dbsize(); // blob:N keys, all in db 0
      await fillLargeValues(client, keys, progress(this.name, keys), from);
    },
  };
});

const shapes = MEMORY_MODE ? memoryShapes : allShapes.filter((s) => !ONLY || ONLY.includes(s.name));

/**
 * How busy the whole machine was during a measurement: the CPU-seconds of every process, and of those
 * outside this bench (other users' jobs). On 2 cores, foreign load distorts the numbers.
 */
interface MachineLoad {
  busyCpuSeconds: number;
  foreignCpuSeconds: number;
}

interface ClientRun {
  seconds: number;
  rdbBytes: number;
  mbps: number;
  exitCode: number | null;
  storedBytes?: number;
  cpu: { client: CpuTimes; redisFork: CpuTimes };
  /** Redis's threads and fork, sampled (the client's CPU is cpu.client, exact). */
  cpuSampled: CpuSample;
  machine: MachineLoad;
}

interface BackupRun {
  compression: 'zstd' | 'gzip' | 'zstd+age';
  seconds: number;
  mbps: number;
  rdbBytes: number;
  storedBytes: number;
  ratio: number;
  captureMs: number;
  captureMbps: number;
  workflowMs: number;
  /** Wall time outside the workflow's steps: the CLI's start, starting the workflow, waiting for its result. */
  outsideStepsMs: number;
  steps: Record<string, number>;
  worker: {
    peakRssMiB: number;
    peakResetBeforeRun: boolean;
    /** RSS just before the run: the peak minus this is what the backup itself added. */
    rssBeforeMiB: number;
    sampledMaxRssMiB: number;
    sampledMaxTreeRssMiB: number;
    childPeakRssMiB: Record<string, number>;
    cpu: CpuTimes;
  };
  redisForkCpu: CpuTimes;
  /** The worker's threads and children, Redis's threads and fork, sampled during the run. */
  cpuSampled: CpuSample;
  machine: MachineLoad;
  backupId: string;
  /** Activity attempts from the workflow history (1 = no retry), and the failures that caused retries. */
  attempts: Record<string, number>;
  retryFailures: string[];
  /** Every activity attempt that failed during this run, from the worker's log (with how long it ran). */
  failedActivityAttempts: FailedAttempt[];
  /** `runbook backup` calls that failed before this one succeeded (each retried by the bench). */
  failedRuns: FailedRun[];
}

interface FailedRun {
  seconds: number;
  error: string;
  failedActivityAttempts: FailedAttempt[];
  /** For a run that hung: its pending activities when the bench gave up on it. */
  pending?: string[];
}

/** Every one of BACKUP_TRIES `runbook backup` runs failed. */
interface BackupFailed {
  compression: 'zstd' | 'gzip' | 'zstd+age';
  failed: true;
  failedRuns: FailedRun[];
}

type BackupOutcome = BackupRun | BackupFailed;
const succeeded = (o: BackupOutcome | undefined): o is BackupRun => !!o && !('failed' in o);

interface FailedAttempt {
  activity: string;
  attempt: number;
  durationMs: number;
  error: string;
}

interface ShapeResult {
  shape: string;
  description: string;
  keys: number;
  dbsize: number;
  usedMemoryBytes: number;
  fillSeconds: number;
  rdbBytes: number;
  a: ClientRun;
  /** Absent in memory mode. */
  b?: ClientRun;
  c: BackupOutcome;
  d?: BackupOutcome;
  /** (e) zstd, then age encryption: what encryption at rest costs. */
  e?: BackupOutcome;
}

async function main() {
  const loadAtStart = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  mkdirSync(TMP, { recursive: true });
  const root = mkdtempSync(path.join(TMP, 'rr-bench-'));
  installSignalHandlers(() => {
    if (!KEEP) rmSync(root, { recursive: true, force: true });
  });
  log(
    `scale ${SCALE}; temp dir ${root}${KEEP ? ' (kept)' : ''}; ${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM; load average ${loadAtStart}`,
  );

  // ---- Redis -----------------------------------------------------------------------------------
  const redisDir = path.join(root, 'redis');
  mkdirSync(redisDir);
  // startRedis gives: 127.0.0.1, a free port, --save '', --appendonly no, --repl-diskless-sync-delay 0,
  // --enable-debug-command yes.
  const redis = await startRedis({ dir: redisDir });
  track(redis.process, false);
  onCleanup(() => redis.stop());
  const redisPid = redis.process.pid!;
  const client = redis.client();
  const redisVersion = /redis_version:(\S+)/.exec(await client.info('server'))?.[1] ?? 'unknown';
  log(`redis-server ${redisVersion} on port ${redis.port}`);

  const waitIdle = async () => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const info = (await client.info('persistence')) + (await client.info('replication'));
      if (/rdb_bgsave_in_progress:0/.test(info) && /connected_slaves:0/.test(info)) return;
      if (Date.now() > deadline) throw new Error('redis did not become idle (a fork or replica still running)');
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  // ---- Temporal and the worker -----------------------------------------------------------------
  const temporalPort = await freePort();
  const server = await startDevServer({
    dbFile: path.join(root, 'temporal', 'temporal.sqlite'),
    port: temporalPort,
    uiPort: await freePort(),
  });
  track(server.process, false);
  onCleanup(() => server.stop());
  log(`Temporal dev server at ${server.address}`);

  const storePath = path.join(root, 'store');
  const configFile = path.join(root, 'runbook.yaml');
  const url = `redis://127.0.0.1:${redis.port}`;
  writeFileSync(
    configFile,
    [
      'temporal:',
      `  address: "${server.address}"`,
      `  taskQueue: bench-${process.pid}`,
      signingKey(root).yaml.trimEnd(),
      'storage:',
      '  bench:',
      '    type: local',
      `    path: ${JSON.stringify(storePath)}`,
      'targets:',
      `  warmup: { url: "${url}", destinations: [bench] }`,
      `  bench-zstd: { url: "${url}", destinations: [bench], compression: zstd }`,
      `  bench-gzip: { url: "${url}", destinations: [bench], compression: gzip }`,
      `  bench-age: { url: "${url}", destinations: [bench], compression: zstd, encrypt: bench }`,
      'encryption:',
      '  keys: { bench: env:BENCH_AGE_KEY }',
      '',
    ].join('\n'),
  );

  const workerLog = path.join(root, 'worker.log');
  const fd = openSync(workerLog, 'a');
  if (CPU_PROF_DIR) mkdirSync(CPU_PROF_DIR, { recursive: true });
  const worker = track(
    spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        ...(CPU_PROF_DIR ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF_DIR] : []),
        ...WORKER_NODE_ARGS,
        'cli/index.ts',
        '--config',
        configFile,
        'worker',
      ],
      { cwd: repoRoot, detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, BENCH_AGE_KEY: generateIdentity() } },
    ),
    true,
  );
  closeSync(fd);
  const workerPid = worker.pid!;
  onCleanup(async () => {
    // SIGTERM to the node process alone: the worker shuts down and (with --cpu-prof) writes its profile.
    const exited = new Promise((r) => worker.once('exit', r));
    kill(worker, 'SIGTERM', false);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    kill(worker, 'SIGKILL', true);
  });
  const workerTail = () => readFileSync(workerLog, 'utf8').trim().split('\n').slice(-15).join('\n');
  const startDeadline = Date.now() + 180_000;
  while (!readFileSync(workerLog, 'utf8').includes('worker serving')) {
    if (worker.exitCode !== null || worker.signalCode !== null || Date.now() > startDeadline) {
      throw new Error(`the worker did not start:\n${workerTail()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const workerStart = memory(workerPid);
  log(
    `worker pid ${workerPid} ready after ${((Date.now() - t0) / 1000).toFixed(1)}s: RSS ${mib(workerStart.rss)} MiB, peak so far ${mib(workerStart.hwm)} MiB (workflow bundling)`,
  );

  /** CPU-seconds used so far by this bench's own processes (itself, Redis, Temporal, the worker, their children). */
  const ownCpu = () =>
    [process.pid, redisPid, server.process.pid!, workerPid].reduce((n, pid) => {
      const t = cpuTimes(pid);
      return n + t.self + t.children;
    }, 0);
  const loadMeter = () => {
    const busy0 = machineBusySeconds();
    const own0 = ownCpu();
    return (): MachineLoad => {
      const busy = machineBusySeconds() - busy0;
      return { busyCpuSeconds: round(busy, 2), foreignCpuSeconds: round(Math.max(0, busy - (ownCpu() - own0)), 2) };
    };
  };

  const connection = await Connection.connect({ address: server.address });
  onCleanup(() => connection.close());
  const temporal = new Client({ connection });
  /** Retries do not show in a report: the history's ActivityTaskStarted events carry attempt and last failure. */
  const activityAttempts = async (workflowId: string) => {
    const history = await temporal.workflow.getHandle(workflowId).fetchHistory();
    const names = new Map<string, string>();
    const attempts: Record<string, number> = {};
    const retryFailures: string[] = [];
    for (const e of history.events ?? []) {
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled) names.set(String(e.eventId), scheduled.activityType?.name ?? '?');
      const started = e.activityTaskStartedEventAttributes;
      if (started) {
        const name = names.get(String(started.scheduledEventId)) ?? '?';
        attempts[name] = Math.max(attempts[name] ?? 0, started.attempt ?? 1);
        if (started.lastFailure?.message) retryFailures.push(`${name}: ${started.lastFailure.message}`);
      }
    }
    return { attempts, retryFailures };
  };

  const cli = (opts: { timeoutMs?: number }, ...args: string[]) =>
    run(process.execPath, ['--import', 'tsx', 'cli/index.ts', '--config', configFile, ...args], { cwd: repoRoot, ...opts });

  // What starting the CLI costs, paid again by every `runbook backup` call.
  const version = await cli({ timeoutMs: 60_000 }, '--version');
  if (version.code !== 0) throw new Error(`runbook --version failed: ${version.stderr}`);
  const cliStartSeconds = round(version.seconds, 2);

  // ---- the measurements --------------------------------------------------------------------------
  const measureRedisCli = async (mode: 'a' | 'b'): Promise<ClientRun> => {
    await waitIdle();
    const redisCli = toolPath('redis-cli');
    const out = path.join(root, 'seed.rdb.gz');
    const cpu0 = { client: cpuTimes(process.pid), redis: cpuTimes(redisPid) };
    const load = loadMeter();
    const sampler = sampleProcesses([{ pid: redisPid, label: 'redis' }], 200);
    const r =
      mode === 'a'
        ? await run(redisCli, ['-h', '127.0.0.1', '-p', String(redis.port), '--rdb', '/dev/null'])
        : await run('sh', ['-c', `"$0" -p ${redis.port} --rdb - | gzip > "$1"`, redisCli, out]);
    await waitIdle(); // the fork child is reaped: its CPU time is in redis's cutime
    const cpuSampled = sampler.stop().cpu;
    const machine = load();
    const cpu = { client: cpuDelta(cpu0.client, cpuTimes(process.pid)), redisFork: cpuDelta(cpu0.redis, cpuTimes(redisPid)) };
    const text = r.stdout + r.stderr;
    const bytes = Number(/Transfer finished with success after (\d+) bytes/.exec(text)?.[1] ?? NaN);
    const fsyncOnly = mode === 'a' && r.code === 1 && /Fail to fsync '\/dev\/null'/.test(text);
    if (!Number.isFinite(bytes) || (r.code !== 0 && !fsyncOnly)) {
      throw new Error(`(${mode}) redis-cli --rdb failed (exit ${r.code ?? r.signal}): ${text.trim().slice(-600)}`);
    }
    let storedBytes: number | undefined;
    if (mode === 'b') {
      storedBytes = statSync(out).size;
      unlinkSync(out);
    }
    return {
      seconds: round(r.seconds, 3),
      rdbBytes: bytes,
      mbps: round(bytes / MB / r.seconds, 1),
      exitCode: r.code,
      storedBytes,
      cpu,
      cpuSampled,
      machine,
    };
  };

  /** The activity failures the worker logged from byte `from` of its log on. */
  const failedAttempts = (from: number): FailedAttempt[] => {
    const text = readFileSync(workerLog).subarray(from).toString('utf8');
    const out: FailedAttempt[] = [];
    const re = /\[WARN\] Activity failed \{([\s\S]*?)\n\}/g;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      const block = m[1]!;
      out.push({
        activity: /activityType: '([^']+)'/.exec(block)?.[1] ?? '?',
        attempt: Number(/attempt: (\d+)/.exec(block)?.[1] ?? 0),
        durationMs: Number(/durationMs: (\d+)/.exec(block)?.[1] ?? 0),
        error: /error: ([^\n]*)/.exec(block)?.[1]?.trim() ?? '?',
      });
    }
    return out;
  };

  /** A hung run: what its workflows were waiting for, then terminate them (the bench moves on). */
  const terminateRunning = async (): Promise<string[]> => {
    const out: string[] = [];
    for await (const w of temporal.workflow.list({ query: `ExecutionStatus="Running" AND WorkflowType="backupRedis"` })) {
      const handle = temporal.workflow.getHandle(w.workflowId, w.runId);
      const d = await handle.describe();
      for (const a of d.raw.pendingActivities ?? []) {
        const beat = a.lastHeartbeatTime?.seconds ? `${Math.round(Date.now() / 1000 - Number(a.lastHeartbeatTime.seconds))}s ago` : 'never';
        out.push(
          `${w.workflowId}: ${a.activityType?.name} attempt ${a.attempt}, state ${a.state}, last heartbeat ${beat}, last failure: ${a.lastFailure?.message ?? 'none'}`,
        );
      }
      await handle.terminate('bench: run timed out').catch(() => {});
    }
    return out;
  };

  const backup = async (target: string, compression: 'zstd' | 'gzip' | 'zstd+age', timeoutS: number): Promise<BackupOutcome> => {
    const failedRuns: FailedRun[] = [];
    for (let i = 1; ; i++) {
      const r = await backupOnce(target, compression, timeoutS);
      if ('report' in r) return { ...r.report, failedRuns };
      failedRuns.push(r.failure);
      log(
        `  ${target}: runbook backup FAILED after ${r.failure.seconds}s (${r.failure.error}); ${r.failure.failedActivityAttempts.length} failed activity attempt(s): ${r.failure.failedActivityAttempts.map((f) => `${f.activity}#${f.attempt} ${f.durationMs}ms ${f.error}`).join(' | ')}`,
      );
      if (r.failure.pending) log(`  pending when it was stopped: ${r.failure.pending.join(' | ') || 'nothing'}`);
      if (i >= BACKUP_TRIES) {
        log(`  ${target}: giving up after ${i} failed run(s); last lines of the worker log:\n${workerTail()}`);
        return { compression, failed: true, failedRuns };
      }
    }
  };

  const backupOnce = async (
    target: string,
    compression: 'zstd' | 'gzip' | 'zstd+age',
    timeoutS: number,
  ): Promise<{ report: Omit<BackupRun, 'failedRuns'> } | { failure: FailedRun }> => {
    await waitIdle();
    const rssBefore = memory(workerPid).rss;
    const peakReset = resetPeak(workerPid);
    const cpu0 = { worker: cpuTimes(workerPid), redis: cpuTimes(redisPid) };
    const load = loadMeter();
    const sampler = sampleProcesses(
      [
        { pid: workerPid, label: 'worker' },
        { pid: redisPid, label: 'redis' },
      ],
      200,
    );
    const logFrom = statSync(workerLog).size;
    const r = await cli({ timeoutMs: timeoutS * 1000 }, '--json', 'backup', target, '--wait');
    const pending = r.timedOut ? await terminateRunning() : undefined;
    const { memory: mem, cpu: cpuSampled } = sampler.stop();
    const hwm = memory(workerPid).hwm;
    await waitIdle();
    const cpu = { worker: cpuDelta(cpu0.worker, cpuTimes(workerPid)), redis: cpuDelta(cpu0.redis, cpuTimes(redisPid)) };
    const machine = load();
    const failedActivityAttempts = failedAttempts(logFrom);
    if (r.code !== 0) {
      const error = r.timedOut ? `no result after ${timeoutS}s: killed` : `exit ${r.code ?? r.signal}: ${r.stderr.trim().split('\n')[0]}`;
      return { failure: { seconds: round(r.seconds, 3), error, failedActivityAttempts, pending } };
    }
    const report = JSON.parse(r.stdout) as BackupReport;
    const m = report.manifest;
    const { attempts, retryFailures } = await activityAttempts(m.workflow.workflowId);
    if (retryFailures.length) log(`  ${target}: activities were retried: ${retryFailures.join(' | ')}`);
    const result: Omit<BackupRun, 'failedRuns'> = {
      compression,
      seconds: round(r.seconds, 3),
      mbps: round(m.rdb.size / MB / r.seconds, 1),
      rdbBytes: m.rdb.size,
      storedBytes: m.artifact.size,
      ratio: round(m.rdb.size / m.artifact.size, 2),
      captureMs: m.capture.durationMs,
      captureMbps: round(m.rdb.size / MB / (m.capture.durationMs / 1000), 1),
      workflowMs: report.steps.reduce((n, s) => n + s.durationMs, 0),
      outsideStepsMs: Math.round(r.seconds * 1000 - report.steps.reduce((n, s) => n + s.durationMs, 0)),
      steps: Object.fromEntries(report.steps.map((s) => [s.name, s.durationMs])),
      worker: {
        peakRssMiB: mib(Math.max(hwm, mem.maxRss)),
        peakResetBeforeRun: peakReset,
        rssBeforeMiB: mib(rssBefore),
        sampledMaxRssMiB: mib(mem.maxRss),
        sampledMaxTreeRssMiB: mib(mem.maxTreeRss),
        childPeakRssMiB: Object.fromEntries(Object.entries(mem.maxByCommand).map(([k, v]) => [k, mib(v)])),
        cpu: cpu.worker,
      },
      redisForkCpu: cpu.redis,
      cpuSampled,
      machine,
      backupId: report.backupId,
      attempts,
      retryFailures,
      failedActivityAttempts,
    };
    return { report: result };
  };

  // Warm-up: a tiny backup, so that the measured ones do not pay first-use costs.
  await client.call('DEBUG', 'POPULATE', '1000', 'warm', '100');
  const warm = await backup('warmup', 'zstd', 120);
  if (!succeeded(warm)) throw new Error('the warm-up backup failed');
  log(`warm-up backup: ${warm.seconds}s (CLI start alone: ${cliStartSeconds}s)`);
  await client.flushall();

  const results: ShapeResult[] = [];
  for (const shape of shapes) {
    if (shape.needs) checkRoom(shape.name, shape.needs, root);
    log(`${shape.name}: filling ${shape.keys} keys (${shape.description})`);
    const fillStart = Date.now();
    await shape.fill(client, redis.port);
    const fillSeconds = round((Date.now() - fillStart) / 1000, 1);
    // Keys in every database (DBSIZE counts only the selected one).
    const dbsize = [...(await client.info('keyspace')).matchAll(/^db\d+:keys=(\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    const usedMemoryBytes = Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1] ?? 0);
    log(`${shape.name}: ${dbsize} keys, used_memory ${mib(usedMemoryBytes)} MiB, filled in ${fillSeconds}s`);

    const a = await measureRedisCli('a');
    log(`${shape.name} (a) redis-cli --rdb /dev/null: ${a.seconds}s, ${(a.rdbBytes / MB).toFixed(1)} MB, ${a.mbps} MB/s`);
    let b: ClientRun | undefined;
    if (WITH_SEEDS) {
      b = await measureRedisCli('b');
      log(`${shape.name} (b) redis-cli --rdb - | gzip: ${b.seconds}s, ${b.mbps} MB/s`);
    }
    const timeoutS = BACKUP_TIMEOUT_S ?? Math.max(120, Math.round(60 + 20 * a.seconds));
    const describe = (o: BackupOutcome) =>
      succeeded(o)
        ? `${o.seconds}s, ${o.mbps} MB/s, capture ${o.captureMs} ms, peak RSS ${o.worker.peakRssMiB} MiB`
        : `FAILED ${o.failedRuns.length} time(s)`;
    const c = await backup('bench-zstd', 'zstd', timeoutS);
    log(`${shape.name} (c) runbook backup (zstd): ${describe(c)}`);
    let d: BackupOutcome | undefined;
    if (WITH_GZIP) {
      d = await backup('bench-gzip', 'gzip', timeoutS);
      log(`${shape.name} (d) runbook backup (gzip): ${describe(d)}`);
    }
    let e: BackupOutcome | undefined;
    if (WITH_AGE) {
      e = await backup('bench-age', 'zstd+age', timeoutS);
      log(`${shape.name} (e) runbook backup (zstd, age-encrypted): ${describe(e)}`);
    }
    results.push({
      shape: shape.name,
      description: shape.description,
      keys: shape.keys,
      dbsize,
      usedMemoryBytes,
      fillSeconds,
      rdbBytes: a.rdbBytes,
      a,
      b,
      c,
      d,
      e,
    });
    if (!shape.grows) await client.flushall();
    // Drop this shape's backups: the destination would otherwise hold GBs until the end.
    rmSync(storePath, { recursive: true, force: true });
  }

  const totalSeconds = round((Date.now() - t0) / 1000, 1);
  process.stdout.write(render(results, { cliStartSeconds, workerStart, totalSeconds, redisVersion, loadAtStart }));

  const resultsDir = path.join(repoRoot, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const stamp = new Date()
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '');
  const file = path.join(
    resultsDir,
    `backup-${MEMORY_MODE ? 'memory-' : ''}${stamp}${SCALE === 1 || MEMORY_MODE ? '' : `-scale${SCALE}`}.json`,
  );
  const json = {
    benchmark: 'backup',
    date: new Date().toISOString(),
    scale: MEMORY_MODE ? null : SCALE,
    memoryModeGB: MEMORY_MODE ? MEMORY_GB : null,
    code: codeVersion(),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memoryGiB: round(os.totalmem() / 2 ** 30, 1),
      node: process.version,
      redis: redisVersion,
      tmpDir: TMP,
      loadAverageAtStart: loadAtStart,
    },
    notes: [
      "(a) redis-cli --rdb /dev/null exits 1 (fsync of /dev/null fails after the transfer): accepted when it printed 'Transfer finished with success'",
      '(b) the seeds\' pipeline: sh -c "redis-cli -p PORT --rdb - | gzip > FILE" (gzip -6, no fsync), FILE in the temp dir',
      '(c)/(d) wall time of `runbook --json backup <target> --wait` (CLI start, preflight, capture, verify, manifest, retention, report); local destination in the temp dir, fsynced',
      'MB = 10^6 bytes; throughput = RDB bytes / wall time; RSS in MiB',
      'machine.foreignCpuSeconds: CPU used during the measurement by processes outside the bench (other jobs); large values mean the numbers are distorted',
      'cpuSampled: CPU-seconds per thread group and child process, sampled from /proc every 200 ms (timeline: per interval); exact totals in cpu/worker.cpu/redisForkCpu',
    ],
    cliStartSeconds,
    worker: {
      startRssMiB: mib(workerStart.rss),
      startPeakRssMiB: mib(workerStart.hwm),
      cpuProfileDir: CPU_PROF_DIR ?? null,
      nodeArgs: WORKER_NODE_ARGS,
    },
    warmup: warm,
    shapes: results,
    totalSeconds,
  };
  writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
  log(`results written to ${path.relative(repoRoot, file)}`);
}

const mib = (bytes: number) => round(bytes / MiB, 1);

/** Refuses a shape the machine has no room for: Redis's memory, and the disk its backups take. */
function checkRoom(name: string, needs: { memoryBytes: number; diskBytes: number }, dir: string): void {
  const fs = statfsSync(dir);
  const freeDisk = fs.bavail * fs.bsize;
  const available = Number(/^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024;
  const gb = (n: number) => (n / 1e9).toFixed(1);
  log(
    `${name}: needs ~${gb(needs.memoryBytes)} GB of memory (${gb(available)} available), ~${gb(needs.diskBytes)} GB of disk in ${dir} (${gb(freeDisk)} free)`,
  );
  // Half of what is free at most: other jobs share this machine.
  if (needs.diskBytes > freeDisk / 2)
    throw new Error(`${name}: not enough free disk in ${dir} (set BENCH_TMPDIR or lower BENCH_MEMORY_GB)`);
  if (needs.memoryBytes > available / 2) throw new Error(`${name}: not enough free memory (lower BENCH_MEMORY_GB)`);
}

function table(rows: string[][], rightAlignFrom = 1): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => r.map((cell, i) => (i >= rightAlignFrom ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  '))
    .join('\n');
}

/** Capture attempts of the run that succeeded, and how many `runbook backup` runs failed before it. */
function tries(c: BackupRun): string {
  const failedAttempts = c.failedRuns.reduce((n, r) => n + r.failedActivityAttempts.length, 0) + c.failedActivityAttempts.length;
  return `${c.attempts.capture ?? 1}${c.failedRuns.length ? ` +${c.failedRuns.length} failed run(s)` : ''}${failedAttempts ? ` (${failedAttempts} failed attempt(s))` : ''}`;
}

/** Sampled CPU-seconds of the groups whose name matches. */
function cpuOf(c: CpuSample, match: RegExp): number {
  return Object.entries(c.byGroup).reduce((n, [k, v]) => (match.test(k) ? n + v : n), 0);
}

function render(
  results: ShapeResult[],
  meta: {
    cliStartSeconds: number;
    workerStart: { rss: number; hwm: number };
    totalSeconds: number;
    redisVersion: string;
    loadAtStart: string;
  },
): string {
  const f = (n: number, d = 1) => n.toFixed(d);
  const rows: string[][] = [
    [
      'shape',
      'keys',
      'RDB MB',
      'a s',
      'a MB/s',
      'b s',
      'b MB/s',
      'c',
      'c s',
      'c MB/s',
      'c/a',
      'b/c',
      'stored MB',
      'ratio',
      'b stored MB',
      'peak RSS MiB (+run)',
      'tries',
    ],
  ];
  const steps: string[][] = [
    [
      'shape',
      'c',
      'preflight',
      'capture',
      'verify',
      'manifest',
      'retention',
      'report',
      'sum',
      'outside',
      'capture MB/s',
      'a/capture',
      'tree RSS MiB',
      'foreign CPU s a/b/c',
    ],
  ];
  const cpu: string[][] = [
    [
      'shape',
      'run',
      'wall s',
      'worker main',
      'worker helpers',
      'zstd',
      'check',
      'age',
      'children exact',
      'redis main',
      'redis fork',
      'client',
      'other',
      'busy cores',
    ],
  ];
  for (const r of results) {
    const b = r.b;
    const seeds = (cells: (number | undefined)[], d = 1) => cells.map((n) => (n === undefined ? '-' : f(n, d)));
    const limit = r.a;
    cpu.push([
      r.shape,
      'a (limit)',
      f(limit.seconds, 2),
      '-',
      '-',
      '-',
      '-',
      '-',
      '-',
      f(cpuOf(limit.cpuSampled, /^redis (main|bg)/)),
      f(limit.cpu.redisFork.children),
      f(limit.cpu.client.children),
      f(
        Math.max(
          0,
          limit.machine.busyCpuSeconds -
            cpuOf(limit.cpuSampled, /^redis (main|bg)/) -
            limit.cpu.redisFork.children -
            limit.cpu.client.children,
        ),
      ),
      f(limit.machine.busyCpuSeconds / limit.seconds, 2),
    ]);
    for (const c of [r.c, r.d, r.e]) {
      if (!c) continue;
      const head = [
        r.shape,
        String(r.dbsize),
        f(r.rdbBytes / MB),
        f(r.a.seconds, 2),
        f(r.a.mbps),
        ...seeds([b?.seconds], 2),
        ...seeds([b?.mbps]),
      ];
      if (!succeeded(c)) {
        rows.push([
          ...head,
          c.compression,
          'FAILED',
          '-',
          '-',
          '-',
          '-',
          '-',
          ...seeds([b?.storedBytes !== undefined ? b.storedBytes / MB : undefined]),
          '-',
          `${c.failedRuns.length} failed run(s)`,
        ]);
        steps.push([r.shape, c.compression, ...Array<string>(12).fill('-')]);
        continue;
      }
      rows.push([
        ...head,
        c.compression,
        f(c.seconds, 2),
        f(c.mbps),
        f(r.a.seconds / c.seconds, 2),
        ...seeds([b ? b.seconds / c.seconds : undefined], 2),
        f(c.storedBytes / MB),
        f(c.ratio, 2),
        ...seeds([b?.storedBytes !== undefined ? b.storedBytes / MB : undefined]),
        `${f(c.worker.peakRssMiB)} (+${f(c.worker.peakRssMiB - c.worker.rssBeforeMiB)})`,
        tries(c),
      ]);
      const ms = (k: string) => String(c.steps[k] ?? '-');
      steps.push([
        r.shape,
        c.compression,
        ms('preflight'),
        ms('capture'),
        ms('verify'),
        ms('manifest'),
        ms('retention'),
        ms('report'),
        String(c.workflowMs),
        String(c.outsideStepsMs),
        f(c.captureMbps),
        f(r.a.seconds / (c.captureMs / 1000), 2),
        f(c.worker.sampledMaxTreeRssMiB),
        `${f(r.a.machine.foreignCpuSeconds)}/${b ? f(b.machine.foreignCpuSeconds) : '-'}/${f(c.machine.foreignCpuSeconds)}`,
      ]);
      const s = c.cpuSampled;
      const attributed = c.worker.cpu.self + c.worker.cpu.children + cpuOf(s, /^redis (main|bg)/) + c.redisForkCpu.children;
      cpu.push([
        r.shape,
        c.compression,
        f(c.seconds, 2),
        f(cpuOf(s, /^worker main$/)),
        f(cpuOf(s, /^worker (?!main$|child )/)),
        f(cpuOf(s, /^worker child zstd$/)),
        f(cpuOf(s, /^worker child (redis-check-rdb|cat|sh)$/)),
        f(cpuOf(s, /^worker child age$/)),
        f(c.worker.cpu.children),
        f(cpuOf(s, /^redis (main|bg)/)),
        f(c.redisForkCpu.children),
        '-',
        f(Math.max(0, c.machine.busyCpuSeconds - attributed)),
        f(c.machine.busyCpuSeconds / c.seconds, 2),
      ]);
    }
  }
  const targets = results.flatMap((r) =>
    [r.c, r.d, r.e]
      .filter((c): c is BackupOutcome => !!c)
      .map((c) => {
        if (!succeeded(c)) return `  ${r.shape} ${c.compression}: FAILED (${c.failedRuns.map((fr) => fr.error).join('; ')})`;
        const ratio = r.a.seconds / c.seconds;
        return `  ${r.shape} ${c.compression}: c/a ${ratio.toFixed(2)} ${ratio >= 0.8 ? 'ok' : 'BELOW 0.8'}; peak RSS ${c.worker.peakRssMiB} MiB ${c.worker.peakRssMiB < 256 ? 'ok' : 'ABOVE 256'}`;
      }),
  );
  // Encryption at rest costs the throughput lost from (c) to (e): aim at most 15%.
  for (const r of results) {
    if (r.e && succeeded(r.e) && succeeded(r.c)) {
      const cost = 1 - r.c.seconds / r.e.seconds;
      targets.push(`  ${r.shape} encryption cost: ${(cost * 100).toFixed(1)}% of backup throughput ${cost <= 0.15 ? 'ok' : 'ABOVE 15%'}`);
    }
  }
  // Memory mode: the worker's peak must not grow with the RDB.
  const memory = results.filter((r) => r.shape.startsWith('huge-') && succeeded(r.c));
  if (memory.length > 1) {
    const peaks = memory.map((r) => (r.c as BackupRun).worker);
    const growth = peaks[peaks.length - 1]!.peakRssMiB - peaks[0]!.peakRssMiB;
    targets.push(
      `  worker peak RSS against RDB size: ${memory.map((r, i) => `${f(r.rdbBytes / 1e9, 2)} GB -> ${f(peaks[i]!.peakRssMiB)} MiB (+${f(peaks[i]!.peakRssMiB - peaks[i]!.rssBeforeMiB)}; tree ${f(peaks[i]!.sampledMaxTreeRssMiB)})`).join(', ')}: ${growth < 32 ? 'flat' : `GROWS by ${f(growth)} MiB`}`,
    );
  }
  const failures = results.flatMap((r) =>
    [r.c, r.d, r.e]
      .filter((c): c is BackupOutcome => !!c)
      .flatMap((c) => [
        ...c.failedRuns.map(
          (fr) =>
            `  ${r.shape} ${c.compression}: a whole run failed after ${fr.seconds}s: ${fr.error}${fr.pending?.length ? ` (pending: ${fr.pending.join(' | ')})` : ''}`,
        ),
        ...[...c.failedRuns.flatMap((fr) => fr.failedActivityAttempts), ...(succeeded(c) ? c.failedActivityAttempts : [])].map(
          (f) => `  ${r.shape} ${c.compression}: ${f.activity} attempt ${f.attempt} failed after ${f.durationMs} ms: ${f.error}`,
        ),
      ]),
  );
  return [
    '',
    `Backup benchmark, scale ${SCALE}${MEMORY_MODE ? ' (memory mode)' : ''}${WORKER_NODE_ARGS.length ? `, worker node ${WORKER_NODE_ARGS.join(' ')}` : ''}: ${os.cpus().length} CPUs, redis ${meta.redisVersion}, node ${process.version}; MB = 10^6 bytes, throughput = RDB bytes / wall time`,
    '(a) redis-cli --rdb /dev/null   (b) redis-cli --rdb - | gzip > FILE   (c) runbook backup --wait (row per compression)',
    'c/a = a_time / c_time (c throughput relative to the limit); b/c = b_time / c_time; ratio = RDB / stored',
    '',
    table(rows, 1),
    '',
    'Steps of (c), in ms (from the report); outside = wall time outside the steps (CLI start, workflow start, waiting for the result);',
    'capture MB/s and a/capture use the manifest capture.durationMs:',
    table(steps, 2),
    '',
    'CPU-seconds per process during each run, sampled from /proc every 200 ms (a process that exits loses up to 200 ms):',
    "worker helpers = the worker's other threads (V8's GC, libuv's file I/O); check = redis-check-rdb (and a cat feeding it",
    'where no FIFO could be made); children exact = the worker',
    "children's total from its cutime; redis fork = Redis's cutime (exact); client = redis-cli; other = the machine's",
    'busy CPU less all of these (the CLI, Temporal, this bench, other jobs); busy cores = machine busy CPU / wall (2 = saturated).',
    table(cpu, 2),
    '',
    `runbook CLI start alone (--version): ${meta.cliStartSeconds}s; worker at start: RSS ${mib(meta.workerStart.rss)} MiB, peak ${mib(meta.workerStart.hwm)} MiB (bundling; reset before each backup)`,
    `foreign CPU = CPU-seconds used during a measurement by processes outside this bench (other jobs on the machine; 0 on a quiet machine); load average at start ${meta.loadAtStart}`,
    'targets (c/a >= 0.8, worker peak RSS < 256 MiB):',
    ...targets,
    ...(failures.length
      ? [
          'failures (Temporal retried failed activity attempts within a run, and c includes that time; the bench re-ran failed runs):',
          ...failures,
        ]
      : []),
    `total ${meta.totalSeconds}s`,
    '',
  ].join('\n');
}

try {
  await main();
} catch (err) {
  process.stderr.write(`[bench] failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
// Nothing must keep the process alive after cleanup (ioredis sockets, timers).
process.exit(process.exitCode ?? 0);
