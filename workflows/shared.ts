// What the runbooks' workflows share: activity option sets by latency class, and a step recorder.
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { PERMANENT } from '../common/errors';

export { messageOf } from '../common/failure';

// The retry policy by error class (activities/failures.ts): permanent codes are never retried;
// transient failures are retried with exponential backoff until the activity itself gives up, at its
// target's `retryFor`. The attempt cap is a backstop against a worker that dies at every attempt.
const backoff = {
  nonRetryableErrorTypes: [...PERMANENT] as string[],
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval: '30s',
} as const;
const retry = { ...backoff, maximumAttempts: 50 };

/** Reads, small writes, pauses. */
export const quick = proxyActivities<Activities>({ startToCloseTimeout: '2m', retry });

/** Notifications and audit records: told promptly or reported as not told, never holding a runbook for minutes. */
export const records = proxyActivities<Activities>({
  startToCloseTimeout: '1m',
  retry: { ...retry, maximumInterval: '10s', maximumAttempts: 5 },
});

/** What is worth nothing late (renewing CLIENT PAUSE before it lapses): a few quick tries, then reported. */
export const prompt = proxyActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { ...retry, maximumInterval: '1s', maximumAttempts: 3 },
});

/**
 * A backup's capture and proof: as long as the copy takes. A capture that stops heartbeating for 20 s
 * (a worker killed) is presumed dead and tried again, elsewhere if need be.
 */
export const copying = proxyActivities<Activities>({ startToCloseTimeout: '6h', heartbeatTimeout: '20s', retry });

/** Fetching, loading and checking whole backups: as long as it takes; a silent worker is caught by the heartbeat. */
export const heavy = proxyActivities<Activities>({ startToCloseTimeout: '6h', heartbeatTimeout: '30s', retry });

/**
 * Undos: resuming writers, CLIENT UNPAUSE, the rollback to the safety backup. Retried until they
 * succeed (a rollback waits for a target that is down to come back); only a permanent failure stops one.
 */
export const undo = proxyActivities<Activities>({
  startToCloseTimeout: '6h',
  heartbeatTimeout: '30s',
  retry: backoff, // no attempt cap: unlimited
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
