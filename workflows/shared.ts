// What the runbooks' workflows share: activity option sets by latency class, and a step recorder.
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { PERMANENT } from '../common/errors';

export { messageOf } from '../common/failure';

const retry = { nonRetryableErrorTypes: [...PERMANENT] as string[], maximumInterval: '10s' };

/** Reads, small writes, pauses, notifications. */
export const quick = proxyActivities<Activities>({ startToCloseTimeout: '2m', retry: { ...retry, maximumAttempts: 5 } });

/**
 * A backup's capture and proof: as long as the copy takes. A capture that stops heartbeating for 20 s
 * (a worker killed, a stream stalled) is presumed dead and tried again, elsewhere if need be.
 */
export const copying = proxyActivities<Activities>({
  startToCloseTimeout: '6h',
  heartbeatTimeout: '20s',
  retry: { ...retry, maximumAttempts: 3 },
});

/** Fetching, loading and checking whole backups: as long as it takes; a silent worker is caught by the heartbeat. */
export const heavy = proxyActivities<Activities>({
  startToCloseTimeout: '6h',
  heartbeatTimeout: '30s',
  retry: { ...retry, maximumAttempts: 2 },
});

export interface StepRecord {
  name: string;
  startedAt: string;
  durationMs: number;
}

/** Runs a named step: the status query shows it while it runs, the report records how long it took. */
export function stepper(status: { step: string }, steps: StepRecord[]) {
  return async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    status.step = name;
    const startedAt = new Date();
    const out = await fn();
    steps.push({ name, startedAt: startedAt.toISOString(), durationMs: Date.now() - startedAt.getTime() });
    return out;
  };
}
