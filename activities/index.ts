// The activities the worker serves: thin adapters over the domain library (domain/), one file per runbook.
import { asFailure } from '../common/errors';
import { createBackupActivities } from './backup';
import { buildDeps, type ActivityDeps } from './deps';
import { createDrillActivities } from './drill';
import { createRecordActivities } from './records';
import { createRecoverActivities } from './recover';
import { createRestoreActivities } from './restore';

export type { ActivityDeps } from './deps';

export function createActivities(given: ActivityDeps) {
  const deps = buildDeps(given);
  return reportingFailures({
    ...createBackupActivities(deps),
    ...createRestoreActivities(deps),
    ...createDrillActivities(deps),
    ...createRecoverActivities(deps),
    ...createRecordActivities(deps),
  });
}

/** Every activity's errors leave it as failures that carry their hint (common/errors.ts). */
function reportingFailures<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  const wrap = <F extends (...args: never[]) => Promise<unknown>>(fn: F) =>
    (async (...args: Parameters<F>) => fn(...args).catch((err: unknown) => Promise.reject(asFailure(err)))) as F;
  return Object.fromEntries(Object.entries(activities).map(([name, fn]) => [name, wrap(fn)])) as T;
}

export type Activities = ReturnType<typeof createActivities>;
