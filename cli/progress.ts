// Live progress of a running runbook for `--wait`: what its activities say in their heartbeats (the
// bytes so far, of how many), read from the workflow's description twice a second. Workers send the
// heartbeats twice a second (worker/index.ts), so the line is about a second behind at most. On a
// terminal: one line redrawn in place. In a log (CI, a pipe): a plain line every 5 s. With --json: nothing.
import type { WorkflowHandle } from '@temporalio/client';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';
import type { BackupReport, PreflightResult } from '../common/types';

const POLL_MS = 500;
const PLAIN_EVERY_MS = 5_000;
/** MiB/s is measured over this much of the recent past: steady, yet quick to show a slowdown. */
const RATE_WINDOW_MS = 5_000;
const MiB = 1024 * 1024;

/** What a running step says of itself, from its activity's latest heartbeat. */
export interface StepProgress {
  /** As people name it: "capture", "drill: fetch", "safety backup: verify". */
  step: string;
  /** The attempt of the step it belongs to: the rate and the time taken start again when it changes. */
  key: string;
  attempt: number;
  bytes?: number;
  total?: number;
  /** The total is a guess (a capture's, from the target's used memory), not a stored size. */
  estimated?: boolean;
  /** When `bytes` was true, on the worker's clock (ms). */
  at?: number;
  /** A heartbeat in words: "restored 12000 keys". */
  note?: string;
}

export interface FollowOptions {
  /** The target the run backs up (a restore's: its safety backup): its last backup tells how large the RDB will be. */
  target?: string;
}

/** Follows a run to its end, showing its progress on `out` (none: quiet), and returns its result. */
export async function follow<T>(handle: WorkflowHandle, out?: NodeJS.WriteStream, opts: FollowOptions = {}): Promise<T> {
  const result = handle.result() as Promise<T>;
  if (!out) return result;
  let finished = false;
  void result.then(
    () => (finished = true),
    () => (finished = true),
  );
  const line = new ProgressLine(out);
  try {
    while (!finished) {
      const now = await progressOf(handle, opts).catch(() => undefined);
      if (!finished) line.show(now);
      await Promise.race([result.catch(() => {}), new Promise((r) => setTimeout(r, POLL_MS))]);
    }
  } finally {
    line.finish();
  }
  return result;
}

/** Renders progress for one output: redrawn in place on a terminal, a plain line every 5 s elsewhere. */
export class ProgressLine {
  private readonly meter = new Meter();
  private readonly tty: boolean;
  private drawn = false;
  private lastPlain: number;

  constructor(
    private readonly out: NodeJS.WriteStream,
    now = Date.now(),
  ) {
    // A terminal that cannot clear to the end of a line gets the plain lines.
    this.tty = out.isTTY === true && process.env.TERM !== 'dumb';
    this.lastPlain = now;
  }

  show(p: StepProgress | undefined, now = Date.now()): void {
    // Between steps nothing is pending: the last line stays until the next step says something.
    if (!p) return;
    const text = this.meter.render(p, now);
    if (this.tty) {
      // Wider than the terminal, the line would wrap, and \r would redraw only its last part.
      const width = Math.max(20, (this.out.columns || 80) - 1);
      this.out.write(`\r${text.slice(0, width)}\x1b[K`);
      this.drawn = true;
    } else if (now - this.lastPlain >= PLAIN_EVERY_MS) {
      this.out.write(`${text}\n`);
      this.lastPlain = now;
    }
  }

  /** The report comes next, on a clean line. */
  finish(): void {
    if (this.tty && this.drawn) this.out.write('\r\x1b[K');
    this.drawn = false;
  }
}

/** Turns a step's heartbeats into a line: bytes of the total, percentage, MiB/s over the last seconds, ETA. */
export class Meter {
  private key = '';
  private since = 0;
  private samples: { at: number; bytes: number; seen: number }[] = [];

  render(p: StepProgress, now = Date.now()): string {
    if (p.key !== this.key) {
      [this.key, this.since, this.samples] = [p.key, now, []];
    }
    const head = `${p.step}${p.attempt > 1 ? ` (attempt ${p.attempt})` : ''}${p.note ? `: ${p.note}` : ''}`;
    const elapsed = duration(now - this.since);
    if (p.bytes === undefined) return `${head}  ${elapsed}`;

    const last = this.samples.at(-1);
    const at = p.at ?? now;
    if (!last || last.bytes !== p.bytes || last.at !== at) this.samples.push({ at, bytes: p.bytes, seen: now });
    const newest = this.samples.at(-1)!;
    this.samples = this.samples.filter((s) => newest.at - s.at <= RATE_WINDOW_MS);
    const oldest = this.samples[0]!;
    // Nothing heard for a while: the rate is not known any more.
    const rate =
      newest.at - oldest.at >= 500 && now - newest.seen < RATE_WINDOW_MS
        ? ((newest.bytes - oldest.bytes) * 1000) / (newest.at - oldest.at)
        : undefined;

    const parts = [head];
    const { total } = p;
    // A guessed total that the bytes went past says nothing any more.
    const known = total !== undefined && total > 0 && !(p.estimated && p.bytes > total);
    if (known) {
      const percent = Math.min(p.estimated ? 99 : 100, Math.floor((p.bytes * 100) / total));
      parts.push(`${size(p.bytes)} of ${p.estimated ? '~' : ''}${size(total)}`, `${percent}%`);
    } else {
      parts.push(size(p.bytes));
    }
    if (rate !== undefined) parts.push(`${(rate / MiB).toFixed(1)} MiB/s`);
    parts.push(known && rate && p.bytes < total ? `ETA ${duration(((total - p.bytes) * 1000) / rate)}` : elapsed);
    return parts.join('  ');
  }
}

export function size(bytes: number): string {
  return bytes >= 1024 * MiB ? `${(bytes / 1024 / MiB).toFixed(2)} GiB` : `${(bytes / MiB).toFixed(1)} MiB`;
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Activity types as people name the steps. */
const STEP_NAMES: Record<string, string> = {
  verifyCopies: 'verify',
  writeManifest: 'manifest',
  applyRetention: 'retention',
  writeReport: 'report',
  drillRestore: 'drill',
  planRestore: 'plan',
  makeLive: 'make live',
  verifyRestore: 'verify',
  assessTarget: 'assess',
  chooseRecoveryPoint: 'choose the recovery point',
};
/** Phases that say no more than the step's name. */
const QUIET_PHASES = new Set(['transfer']);

/** The progress of the run's running step, or of its running child's (a restore's safety backup). */
export async function progressOf(
  handle: WorkflowHandle,
  opts: FollowOptions = {},
  prefix = '',
  depth = 0,
): Promise<StepProgress | undefined> {
  const d = await handle.describe();
  const pending = d.raw.pendingActivities ?? [];
  const a = pending.find((x) => x.heartbeatDetails?.payloads?.length) ?? pending[0];
  if (!a) {
    const child = d.raw.pendingChildren?.[0];
    if (!child?.workflowId || depth >= 2) return undefined;
    const name = child.workflowId.includes('/safety/') ? 'safety backup' : (child.workflowTypeName ?? 'child');
    return progressOf(handle.client.getHandle(child.workflowId, child.runId ?? undefined), opts, `${prefix}${name}: `, depth + 1);
  }
  const type = a.activityType?.name ?? 'step';
  const attempt = a.attempt ?? 1;
  const payloads = a.heartbeatDetails?.payloads;
  // Heartbeats go through the payload codec like everything else: decoded the client's way.
  const detail = payloads?.length
    ? await decodeFromPayloadsAtIndex<unknown>(handle.client.options.loadedDataConverter, 0, payloads)
    : undefined;
  const hb =
    typeof detail === 'object' && detail !== null ? (detail as { phase?: unknown; bytes?: unknown; total?: unknown; at?: unknown }) : {};
  const phase = typeof hb.phase === 'string' && !QUIET_PHASES.has(hb.phase) ? hb.phase : undefined;
  const p: StepProgress = {
    step: `${prefix}${STEP_NAMES[type] ?? type}${phase ? `: ${phase}` : ''}`,
    key: `${d.runId}/${a.activityId}/${attempt}/${phase ?? ''}`,
    attempt,
    ...(typeof detail === 'string' ? { note: detail } : {}),
    ...(typeof hb.bytes === 'number' ? { bytes: hb.bytes } : {}),
    ...(typeof hb.total === 'number' ? { total: hb.total } : {}),
    ...(typeof hb.at === 'number' && hb.at > 0 ? { at: hb.at } : {}),
  };
  if (type === 'capture' && p.bytes !== undefined && p.total === undefined) {
    const guess = await captureSize(handle, d.runId, opts.target);
    if (guess) Object.assign(p, { total: guess, estimated: true });
  }
  return p;
}

const lookups = new Map<string, { found: Promise<number | undefined>; done: boolean }>();
/** Looked up once per process, and not waited for beyond 2 s: a guess must not hold the line up. */
async function cached(key: string, find: () => Promise<number | undefined>): Promise<number | undefined> {
  let l = lookups.get(key);
  if (!l) {
    const entry = { found: find().catch(() => undefined), done: false };
    void entry.found.then(() => (entry.done = true));
    lookups.set(key, (l = entry));
  }
  if (l.done) return l.found;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 2_000)));
  return Promise.race([l.found, late]).finally(() => clearTimeout(timer));
}

/**
 * How large the RDB will be: the target's used memory now (from this run's preflight), times the ratio
 * of RDB to used memory of its last backup; without a last backup, the used memory itself (an RDB is
 * usually somewhat smaller than the data in memory).
 */
async function captureSize(handle: WorkflowHandle, runId: string, target?: string): Promise<number | undefined> {
  const [used, ratio] = await Promise.all([
    cached(`used/${runId}`, () => usedMemory(handle, runId)),
    target ? cached(`ratio/${target}`, () => lastRatio(handle, target)) : undefined,
  ]);
  return used && Math.round(used * (ratio ?? 1));
}

/** RDB size per byte of used memory in the target's newest completed backup, manual or scheduled (names need no quoting). */
async function lastRatio(handle: WorkflowHandle, target: string): Promise<number | undefined> {
  const query = `WorkflowType = 'backupRedis' AND ExecutionStatus = 'Completed' AND WorkflowId STARTS_WITH 'backup/${target}/'`;
  for await (const w of handle.client.list({ query, pageSize: 1 })) {
    const m = ((await handle.client.getHandle(w.workflowId, w.runId).result()) as BackupReport).manifest;
    return m.redis.usedMemory > 0 && m.rdb.size > 0 ? m.rdb.size / m.redis.usedMemory : undefined;
  }
  return undefined;
}

/** The target's used memory as the run's preflight saw it, from the run's history. */
async function usedMemory(handle: WorkflowHandle, runId: string): Promise<number | undefined> {
  const events = (await handle.client.getHandle(handle.workflowId, runId).fetchHistory()).events ?? [];
  const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'preflight')?.eventId;
  const done = events.find(
    (e) => scheduled != null && String(e.activityTaskCompletedEventAttributes?.scheduledEventId) === String(scheduled),
  )?.activityTaskCompletedEventAttributes?.result?.payloads;
  if (!done?.length) return undefined;
  const pre = await decodeFromPayloadsAtIndex<PreflightResult>(handle.client.options.loadedDataConverter, 0, done);
  return pre?.redis?.usedMemory || undefined;
}
