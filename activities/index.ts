// The activities the worker serves: thin adapters over the domain library (domain/), one file per runbook.
import type { Config } from '../common/config';
import { leaving } from './failures';
import { createBackupActivities } from './backup';
import { buildDeps, type ActivityDeps } from './deps';
import { createDrillActivities } from './drill';
import { createRecordActivities } from './records';
import { createRecoverActivities } from './recover';
import { createRestoreActivities } from './restore';

export type { ActivityDeps } from './deps';

export function createActivities(given: ActivityDeps) {
  const deps = buildDeps(given);
  return reportingFailures(deps.config, {
    ...createBackupActivities(deps),
    ...createRestoreActivities(deps),
    ...createDrillActivities(deps),
    ...createRecoverActivities(deps),
    ...createRecordActivities(deps),
  });
}

/** Every activity's errors leave it as failures that carry their hint and its retry policy (failures.ts). */
function reportingFailures<T extends Record<string, (...args: never[]) => Promise<unknown>>>(config: Config, activities: T): T {
  const wrap = <F extends (...args: never[]) => Promise<unknown>>(name: string, fn: F) =>
    (async (...args: Parameters<F>) => fn(...args).catch((err: unknown) => Promise.reject(leaving(config, name, args, err)))) as F;
  return Object.fromEntries(Object.entries(activities).map(([name, fn]) => [name, wrap(name, fn)])) as T;
}

export type Activities = ReturnType<typeof createActivities>;
