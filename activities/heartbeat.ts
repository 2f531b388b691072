// The one heartbeat of every long activity: it beats only while work moves. When nothing moved for
// `stallMs` the work is aborted and the activity fails as STALLED, which Temporal retries: a stalled
// download or a hung server holds a runbook for a minute, not for its 6 h limit. (Were the beats just
// to stop, the server would time the attempt out, but the worker would never hear of it and the
// stalled attempt would hold its slot and its files.)
// The beats also carry what people see (`runbook backup --wait`): the latest detail, stamped with the
// time it was true, so that a rate is measured on the worker's clock. The worker sends them twice a
// second (HEARTBEAT_THROTTLE in worker/index.ts); beating twice as often keeps them fresh.
import { Context } from '@temporalio/activity';
import { RunbookError } from '../common/errors';
import type { Progress } from '../domain/progress';

export const DEFAULT_STALL_MS = 60_000;
const BEAT_MS = 250;

export async function whileMoving<T>(work: (p: Progress & { signal: AbortSignal }) => Promise<T>, stallMs = DEFAULT_STALL_MS): Promise<T> {
  const ctx = Context.current();
  const stall = new AbortController();
  const signal = AbortSignal.any([ctx.cancellationSignal, stall.signal]);
  let moved = Date.now();
  let busy = 0;
  let detail: unknown;
  let detailAt = 0;
  const beat = setInterval(
    () => {
      if (busy > 0 || Date.now() - moved < stallMs) {
        return ctx.heartbeat(detail && typeof detail === 'object' ? { ...detail, at: detailAt } : detail);
      }
      stall.abort(
        new RunbookError(
          'STALLED',
          `nothing moved for ${Math.round(stallMs / 1000)} s`,
          'tried again; if it keeps stalling, check the network path to the destination or the target',
        ),
      );
    },
    Math.min(BEAT_MS, stallMs / 2),
  );
  try {
    return await work({
      signal,
      moved(d) {
        moved = Date.now();
        if (d !== undefined) [detail, detailAt] = [d, moved];
      },
      async alive(p) {
        busy++;
        try {
          return await p;
        } finally {
          busy--;
          moved = Date.now();
        }
      },
    });
  } catch (err) {
    if (stall.signal.aborted && !ctx.cancellationSignal.aborted) throw stall.signal.reason;
    throw err;
  } finally {
    clearInterval(beat);
  }
}
