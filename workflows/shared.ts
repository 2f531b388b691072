// What the runbooks' workflows share: activity option sets by latency class, and reading a failure.
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { PERMANENT } from '../common/errors';

export const retry = { nonRetryableErrorTypes: [...PERMANENT] as string[], maximumInterval: '10s' };

/** Reads, small writes, pauses, notifications. */
export const quick = proxyActivities<Activities>({ startToCloseTimeout: '2m', retry: { ...retry, maximumAttempts: 5 } });

/** Fetching, loading and checking whole backups: as long as it takes; a silent worker is caught by the heartbeat. */
export const heavy = proxyActivities<Activities>({
  startToCloseTimeout: '6h',
  heartbeatTimeout: '30s',
  retry: { ...retry, maximumAttempts: 2 },
});

/** The innermost message of a failure: what went wrong, not the layers it travelled through. */
export function messageOf(err: unknown): string {
  let e = err as { message?: string; cause?: unknown };
  while (e?.cause && (e as { cause?: { message?: string } }).cause?.message) e = e.cause as typeof e;
  return e?.message ?? String(err);
}
