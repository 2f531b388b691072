// Reconciling schedules is a diff between what the config wants and what Temporal has; the diff is
// pure so that it can be tested without a server.
import { createHash } from 'node:crypto';
import type { Config } from './config';

export const MANAGED_BY = 'redis-runbooks';

export interface DesiredSchedule {
  scheduleId: string;
  workflowType: 'backupRedis' | 'drillRedis';
  target: string;
  name: string;
  cron: string;
  timezone: string;
  catchupWindow: string;
  /** The run's whole lifetime, retries included (Temporal's workflow execution timeout). */
  deadline: string;
  paused: boolean;
  taskQueue: string;
  /** Changes whenever anything that defines the schedule changes. */
  specHash: string;
}

export interface ExistingSchedule {
  scheduleId: string;
  managedBy?: string;
  specHash?: string;
}

export interface SchedulePlan {
  create: DesiredSchedule[];
  update: DesiredSchedule[];
  remove: string[];
  unchanged: string[];
}

export const scheduleIdOf = (target: string, name: string) => `backup/${target}/${name}`;
export const drillScheduleIdOf = (target: string) => `drill/${target}`;

export function desiredSchedules(config: Config): DesiredSchedule[] {
  const desired = (
    scheduleId: string,
    workflowType: DesiredSchedule['workflowType'],
    target: string,
    s: {
      name: string;
      cron: string;
      timezone: string;
      catchupWindow: string;
      paused: boolean;
      deadline?: string;
    },
  ): DesiredSchedule => {
    const spec = {
      workflowType,
      target,
      cron: s.cron,
      timezone: s.timezone,
      catchupWindow: s.catchupWindow,
      deadline: s.deadline ?? (workflowType === 'backupRedis' ? '12h' : '6h'),
      paused: s.paused,
      taskQueue: config.temporal.taskQueue,
    };
    const specHash = createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
    return { scheduleId, name: s.name, ...spec, specHash };
  };
  return Object.entries(config.targets).flatMap(([target, t]) => [
    ...t.schedules.map((s) => desired(scheduleIdOf(target, s.name), 'backupRedis', target, s)),
    // A drill missed while the server was down runs when it is back, within a day.
    ...(t.drill?.cron
      ? [desired(drillScheduleIdOf(target), 'drillRedis', target, { name: 'drill', catchupWindow: '1d', ...t.drill, cron: t.drill.cron })]
      : []),
  ]);
}

/** Schedules not made by us are never touched. */
export function planSchedules(desired: DesiredSchedule[], existing: ExistingSchedule[]): SchedulePlan {
  const ours = new Map(existing.filter((e) => e.managedBy === MANAGED_BY).map((e) => [e.scheduleId, e]));
  const plan: SchedulePlan = { create: [], update: [], remove: [], unchanged: [] };
  for (const d of desired) {
    const e = ours.get(d.scheduleId);
    if (!e) plan.create.push(d);
    else if (e.specHash !== d.specHash) plan.update.push(d);
    else plan.unchanged.push(d.scheduleId);
  }
  const wanted = new Set(desired.map((d) => d.scheduleId));
  plan.remove = [...ours.keys()].filter((id) => !wanted.has(id)).sort();
  return plan;
}
