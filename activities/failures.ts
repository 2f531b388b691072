// How an activity's failure leaves it: the retry policy by error class, in one place.
//  - Permanent (bad credentials, a full disk, a missing bucket, an RDB the target cannot load, a failed
//    verification: the codes in PERMANENT): not retried.
//  - Transient (everything else: a server restarting, a connection refused or reset, a stalled
//    stream, S3 5xx and throttling): retried with exponential backoff (the workflows' policies) for the
//    target's `retryFor` (default 5m), then given up, naming how long it tried.
//  - Undos (resuming writers, CLIENT UNPAUSE, the rollback to the safety backup): never given up.
import { ApplicationFailure } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import type { Config } from '../common/config';
import { durationMs } from '../common/duration';
import { asFailure } from '../common/errors';

export const DEFAULT_RETRY_FOR = '5m';

/** Activities that undo: retried until they succeed, whatever the budget. */
const UNTIL_DONE = new Set(['resumeWriter', 'unpauseClientWrites']);

const targetOf = (arg: unknown): string | undefined =>
  typeof arg === 'string' ? arg : typeof arg === 'object' && arg !== null ? ((arg as { target?: unknown }).target as string) : undefined;

export function retryBudgetMs(config: Config, target: string | undefined): number {
  return durationMs((target && config.targets[target]?.retryFor) || DEFAULT_RETRY_FOR);
}

/** The failure an activity's error leaves it as, once the budget of its retries is counted. */
export function leaving(config: Config, activity: string, args: unknown[], err: unknown): unknown {
  const failure = asFailure(err);
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return failure; // called outside an activity (a test of the function itself)
  }
  if (ctx.cancellationSignal.aborted) return failure;
  if (failure instanceof ApplicationFailure && failure.nonRetryable) return failure;
  const first = args[0] as { undo?: boolean } | undefined;
  if (UNTIL_DONE.has(activity) || first?.undo === true) return failure;
  const budget = retryBudgetMs(config, targetOf(first));
  const { attempt, scheduledTimestampMs } = ctx.info;
  if (Date.now() - scheduledTimestampMs < budget) return failure;
  const message = (failure as Error)?.message ?? String(failure);
  const type = failure instanceof ApplicationFailure ? failure.type : (failure as Error)?.name;
  return ApplicationFailure.create({
    type: type ?? 'Error',
    message: `${message} (gave up after ${attempt} attempts over ${Math.round((Date.now() - scheduledTimestampMs) / 1000)} s)`,
    nonRetryable: true,
    details: failure instanceof ApplicationFailure ? (failure.details ?? undefined) : undefined,
  });
}
