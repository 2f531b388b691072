// Process plumbing for the benchmarks: children that are always cleaned up (on success, failure and
// Ctrl-C), timed runs, and /proc readings (RSS, peak RSS, CPU time) of a process and its descendants.
import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

// ---- cleanup -------------------------------------------------------------------------------------

interface Tracked {
  child: ChildProcess;
  /** Spawned detached (its own process group): killed as a group, so pipelines and grandchildren go too. */
  group: boolean;
}

const live = new Set<Tracked>();
const cleanups: (() => Promise<void> | void)[] = [];
let cleaning: Promise<void> | undefined;

export function track(child: ChildProcess, group: boolean): ChildProcess {
  const t = { child, group };
  live.add(t);
  child.once('exit', () => live.delete(t));
  return child;
}

function alive(c: ChildProcess): boolean {
  return c.exitCode === null && c.signalCode === null;
}

export function kill(child: ChildProcess, signal: NodeJS.Signals, group: boolean): void {
  if (!child.pid || !alive(child)) return;
  try {
    if (group) process.kill(-child.pid, signal);
    else child.kill(signal);
  } catch {
    // already gone
  }
}

function killAll(signal: NodeJS.Signals): void {
  for (const t of live) kill(t.child, signal, t.group);
}

/** Registers an async cleanup step; they run last-registered first. */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await Promise.race([fn(), new Promise((r) => setTimeout(r, 15_000))]);
      } catch (err) {
        process.stderr.write(`[bench] cleanup step failed: ${(err as Error).message}\n`);
      }
    }
    killAll('SIGKILL');
  })();
  return cleaning;
}

/** Ctrl-C / SIGTERM: clean up, then exit 130. A plain exit still SIGKILLs whatever is left. */
export function installSignalHandlers(lastResort: () => void): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n[bench] ${sig}: cleaning up\n`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  process.once('exit', () => {
    killAll('SIGKILL');
    lastResort();
  });
}

// ---- timed runs ----------------------------------------------------------------------------------

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
  /** Killed (with its process group) because it ran longer than timeoutMs. */
  timedOut: boolean;
}

/** Runs a command in its own process group and times it from spawn to the end of its output. */
export function run(command: string, args: string[], opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = track(spawn(command, args, { ...opts, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }), true);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          kill(child, 'SIGKILL', true);
        }, opts.timeoutMs)
      : undefined;
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, seconds: Number(process.hrtime.bigint() - t0) / 1e9, timedOut });
    });
  });
}

// ---- /proc -------------------------------------------------------------------------------------

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();
const PAGE = (() => {
  try {
    return Number(execFileSync('getconf', ['PAGESIZE']).toString().trim()) || 4096;
  } catch {
    return 4096;
  }
})();

function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)"; the first of them is field 3 (state).
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

export interface CpuTimes {
  /** The process's own user+system seconds. */
  self: number;
  /** User+system seconds of its children that it has waited for. */
  children: number;
}

export function cpuTimes(pid: number): CpuTimes {
  const f = statFields(pid);
  if (!f) return { self: 0, children: 0 };
  const n = (field: number) => Number(f[field - 3]);
  return { self: (n(14) + n(15)) / CLK_TCK, children: (n(16) + n(17)) / CLK_TCK };
}

export function cpuDelta(a: CpuTimes, b: CpuTimes): CpuTimes {
  return { self: round(b.self - a.self, 2), children: round(b.children - a.children, 2) };
}

/** CPU-seconds all CPUs of the machine have been busy (not idle or iowait) since boot. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!; // cpu  user nice system idle iowait irq softirq steal ...
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / CLK_TCK;
}

/** VmRSS and VmHWM (peak RSS) in bytes. */
export function memory(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

/** Resets a process's VmHWM to its current RSS (Linux >= 4.0); false when the kernel refuses. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Every process's parent pid. */
function parents(): Map<number, number> {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const f = statFields(Number(d));
    if (f) parent.set(Number(d), Number(f[1]));
  }
  return parent;
}

function descendants(root: number, parent = parents()): { pid: number; comm: string; rss: number }[] {
  const out: { pid: number; comm: string; rss: number }[] = [];
  const want = new Set([root]);
  // Parents are not always listed before their children: iterate until nothing new is found.
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (!want.has(pid) && want.has(ppid)) {
        want.add(pid);
        grew = true;
      }
    }
  }
  want.delete(root);
  for (const pid of want) {
    try {
      const rss = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * PAGE;
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      out.push({ pid, comm, rss });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

export interface MemorySample {
  /** Highest VmRSS of the process itself seen by sampling. */
  maxRss: number;
  /** Highest sum of the RSS of the process and all its descendants at one sample. */
  maxTreeRss: number;
  /** Highest RSS seen per descendant command name (zstd, redis-check-rdb, cat, sh...). */
  maxByCommand: Record<string, number>;
  samples: number;
}

/**
 * CPU-seconds used while sampling, per group: "<label> <thread>" for the roots' own threads (the
 * worker's main thread, its libuv pool, V8's helpers; Redis's main thread), "<label> child <command>"
 * for their descendants (zstd, redis-check-rdb, age; Redis's fork). A process that exits between two
 * samples loses what it used since the last one: exact totals come from the parents' cutime.
 */
export interface CpuSample {
  seconds: number;
  byGroup: Record<string, number>;
  /** Per sampling interval: the groups that used CPU in it, in CPU-seconds (pidstat-like). */
  timeline: { t: number; cpu: Record<string, number> }[];
}

function ticksOf(statFile: string): { comm: string; ticks: number } | undefined {
  try {
    const s = readFileSync(statFile, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined;
  }
}

/**
 * Thread names folded into groups: Node 20 names all its threads "node" (V8's GC and compiler helpers,
 * libuv's pool for file I/O), so they are one group; Redis's bio and I/O threads are another.
 */
function threadGroup(comm: string, main: boolean): string {
  if (main) return 'main';
  if (comm === 'node' || /^V8 |libuv/.test(comm)) return 'helpers';
  if (/^(bio|io_thd|jemalloc)/.test(comm)) return 'bg';
  return comm.replace(/\s+/g, '-').toLowerCase();
}

/**
 * Samples, every `everyMs` until stop() is called, the CPU of each root (its threads and its
 * descendants) and the memory of the first root's tree.
 */
export function sampleProcesses(
  roots: { pid: number; label: string }[],
  everyMs = 200,
): { stop(): { memory: MemorySample; cpu: CpuSample } } {
  const out: MemorySample = { maxRss: 0, maxTreeRss: 0, maxByCommand: {}, samples: 0 };
  const pid = roots[0]!.pid;
  // Ticks seen last, per thread or process; what existed at the first sample counts from there.
  const last = new Map<string, { group: string; ticks: number }>();
  const totals: Record<string, number> = {};
  const timeline: CpuSample['timeline'] = [];
  const t0 = Date.now();
  let first = true;
  const see = (id: string, group: string, ticks: number, interval: Record<string, number>) => {
    const prev = last.get(id);
    const base = prev ? prev.ticks : first ? ticks : 0;
    last.set(id, { group, ticks });
    const d = (ticks - base) / CLK_TCK;
    if (d > 0) {
      totals[group] = (totals[group] ?? 0) + d;
      interval[group] = round((interval[group] ?? 0) + d, 2);
    }
  };
  const tick = () => {
    const own = memory(pid).rss;
    let tree = own;
    const interval: Record<string, number> = {};
    const parent = parents();
    for (const root of roots) {
      let tids: string[] = [];
      try {
        tids = readdirSync(`/proc/${root.pid}/task`);
      } catch {
        // gone
      }
      for (const tid of tids) {
        const t = ticksOf(`/proc/${root.pid}/task/${tid}/stat`);
        if (t) see(`t${tid}`, `${root.label} ${threadGroup(t.comm, tid === String(root.pid))}`, t.ticks, interval);
      }
      for (const d of descendants(root.pid, parent)) {
        if (root.pid === pid) {
          tree += d.rss;
          out.maxByCommand[d.comm] = Math.max(out.maxByCommand[d.comm] ?? 0, d.rss);
        }
        const t = ticksOf(`/proc/${d.pid}/stat`);
        if (t) see(`p${d.pid}`, `${root.label} child ${d.comm}`, t.ticks, interval);
      }
    }
    if (!first) timeline.push({ t: round((Date.now() - t0) / 1000, 2), cpu: interval });
    first = false;
    out.maxRss = Math.max(out.maxRss, own);
    out.maxTreeRss = Math.max(out.maxTreeRss, tree);
    out.samples++;
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      const byGroup = Object.fromEntries(
        Object.entries(totals)
          .sort(([, a], [, b]) => b - a)
          .map(([k, v]) => [k, round(v, 2)]),
      );
      return { memory: out, cpu: { seconds: round((Date.now() - t0) / 1000, 2), byGroup, timeline } };
    },
  };
}

export const round = (n: number, digits = 2): number => Math.round(n * 10 ** digits) / 10 ** digits;
