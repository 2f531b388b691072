// The one heartbeat of every long activity: it beats only while work moves. When nothing moved for
// `stallMs` the beats stop, the activity's heartbeat timeout fires and Temporal retries it elsewhere:
// a stalled download or a hung server holds a runbook for minutes, not for its 6 h limit.
import { Context } from '@temporalio/activity';
import type { Progress } from '../domain/progress';

export const DEFAULT_STALL_MS = 60_000;

export async function whileMoving<T>(work: (p: Progress & { signal: AbortSignal }) => Promise<T>, stallMs = DEFAULT_STALL_MS): Promise<T> {
  const ctx = Context.current();
  let moved = Date.now();
  let busy = 0;
  let detail: unknown;
  const beat = setInterval(() => {
    if (busy > 0 || Date.now() - moved < stallMs) ctx.heartbeat(detail);
  }, 1_000);
  try {
    return await work({
      signal: ctx.cancellationSignal,
      moved(d) {
        moved = Date.now();
        if (d !== undefined) detail = d;
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
  } finally {
    clearInterval(beat);
  }
}
