import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../common/config';
import {
  desiredSchedules,
  MANAGED_BY,
  planSchedules,
  scheduleIdOf,
  type DesiredSchedule,
  type ExistingSchedule,
  type SchedulePlan,
} from '../../common/schedule-plan';

interface Sched {
  name: string;
  cron: string;
  timezone?: string;
  catchupWindow?: string;
  paused?: boolean;
}

function desired(targets: Record<string, Sched[]>, taskQueue = 'redis-runbooks'): DesiredSchedule[] {
  const text = JSON.stringify({
    temporal: { taskQueue },
    storage: { disk: { type: 'local', path: '/backups' } },
    targets: Object.fromEntries(
      Object.entries(targets).map(([t, schedules]) => [t, { url: 'redis://127.0.0.1:6379', destinations: ['disk'], schedules }]),
    ),
  });
  return desiredSchedules(parseConfig(text, '/etc/runbook.yaml'));
}

/** What Temporal holds when it was last applied from `targets`. */
const appliedFrom = (targets: Record<string, Sched[]>, taskQueue?: string): ExistingSchedule[] =>
  desired(targets, taskQueue).map((d) => ({ scheduleId: d.scheduleId, managedBy: MANAGED_BY, specHash: d.specHash }));

const nightly: Sched = { name: 'nightly', cron: '0 2 * * *' };
const hourly: Sched = { name: 'hourly', cron: '15 * * * *' };

const ids = (plan: SchedulePlan) => ({
  create: plan.create.map((d) => d.scheduleId),
  update: plan.update.map((d) => d.scheduleId),
  remove: plan.remove,
  unchanged: plan.unchanged,
});

interface Case {
  name: string;
  config: Record<string, Sched[]>;
  existing: ExistingSchedule[];
  plan: Partial<ReturnType<typeof ids>>;
}

const cases: Case[] = [
  {
    name: 'creates every schedule when Temporal has none',
    config: { main: [nightly, hourly], cache: [nightly] },
    existing: [],
    plan: { create: ['backup/main/nightly', 'backup/main/hourly', 'backup/cache/nightly'] },
  },
  {
    name: 'creates only the schedules that are missing',
    config: { main: [nightly, hourly] },
    existing: appliedFrom({ main: [nightly] }),
    plan: { create: ['backup/main/hourly'], unchanged: ['backup/main/nightly'] },
  },
  {
    name: 'leaves every schedule unchanged when Temporal matches the config',
    config: { main: [nightly, hourly], cache: [nightly] },
    existing: appliedFrom({ main: [nightly, hourly], cache: [nightly] }),
    plan: { unchanged: ['backup/main/nightly', 'backup/main/hourly', 'backup/cache/nightly'] },
  },
  {
    name: 'updates a schedule whose cron changed',
    config: { main: [{ ...nightly, cron: '30 3 * * *' }, hourly] },
    existing: appliedFrom({ main: [nightly, hourly] }),
    plan: { update: ['backup/main/nightly'], unchanged: ['backup/main/hourly'] },
  },
  {
    name: 'updates a schedule whose timezone changed',
    config: { main: [{ ...nightly, timezone: 'Europe/Paris' }] },
    existing: appliedFrom({ main: [nightly] }),
    plan: { update: ['backup/main/nightly'] },
  },
  {
    name: 'updates a schedule that was paused in the config',
    config: { main: [{ ...nightly, paused: true }] },
    existing: appliedFrom({ main: [nightly] }),
    plan: { update: ['backup/main/nightly'] },
  },
  {
    name: 'updates a schedule whose catch-up window changed',
    config: { main: [{ ...nightly, catchupWindow: '6h' }] },
    existing: appliedFrom({ main: [nightly] }),
    plan: { update: ['backup/main/nightly'] },
  },
  {
    name: 'updates a schedule of ours whose spec hash cannot be read',
    config: { main: [nightly] },
    existing: [{ scheduleId: 'backup/main/nightly', managedBy: MANAGED_BY }],
    plan: { update: ['backup/main/nightly'] },
  },
  {
    name: 'removes schedules of ours that the config no longer has, in id order',
    config: { main: [nightly] },
    existing: appliedFrom({ main: [nightly, hourly], zeta: [nightly], alpha: [hourly] }),
    plan: { unchanged: ['backup/main/nightly'], remove: ['backup/alpha/hourly', 'backup/main/hourly', 'backup/zeta/nightly'] },
  },
  {
    name: 'removes all of ours when the config has no schedules',
    config: { main: [] },
    existing: appliedFrom({ main: [nightly, hourly] }),
    plan: { remove: ['backup/main/hourly', 'backup/main/nightly'] },
  },
  {
    name: 'a schedule renamed in the config is a create and a remove',
    config: { main: [{ ...nightly, name: 'night' }] },
    existing: appliedFrom({ main: [nightly] }),
    plan: { create: ['backup/main/night'], remove: ['backup/main/nightly'] },
  },
  {
    name: 'never touches schedules made by someone else',
    config: { main: [nightly] },
    existing: [
      ...appliedFrom({ main: [nightly] }),
      { scheduleId: 'nightly-report' },
      { scheduleId: 'backup/legacy/nightly' },
      { scheduleId: 'backup/other/hourly', managedBy: 'someone-else', specHash: 'abc' },
    ],
    plan: { unchanged: ['backup/main/nightly'] },
  },
];

describe('planSchedules', () => {
  it.each(cases)('$name', ({ config, existing, plan }) => {
    expect(ids(planSchedules(desired(config), existing))).toEqual({ create: [], update: [], remove: [], unchanged: [], ...plan });
  });

  it('neither updates nor removes a schedule of someone else that has the id of one of ours', () => {
    // Temporal will refuse the create; what matters is that the plan never overwrites or deletes it.
    const plan = planSchedules(desired({ main: [nightly] }), [{ scheduleId: 'backup/main/nightly', specHash: 'whatever' }]);
    expect(ids(plan)).toEqual({ create: ['backup/main/nightly'], update: [], remove: [], unchanged: [] });
  });

  it('passes the full desired schedule to be created or updated', () => {
    const [d] = desired({ main: [{ ...nightly, timezone: 'America/New_York', paused: true }] }, 'q1');
    const plan = planSchedules([d], []);
    expect(plan.create[0]).toBe(d);
    expect(d).toMatchObject({
      scheduleId: 'backup/main/nightly',
      target: 'main',
      name: 'nightly',
      cron: '0 2 * * *',
      timezone: 'America/New_York',
      catchupWindow: '1h',
      paused: true,
      taskQueue: 'q1',
    });
  });
});

describe('desiredSchedules', () => {
  const hashOf = (s: Sched, taskQueue?: string) => desired({ main: [s] }, taskQueue)[0].specHash;

  it('names each schedule backup/<target>/<schedule>', () => {
    expect(desired({ 'cache-eu': [nightly, hourly] }).map((d) => d.scheduleId)).toEqual([
      scheduleIdOf('cache-eu', 'nightly'),
      scheduleIdOf('cache-eu', 'hourly'),
    ]);
    expect(scheduleIdOf('cache-eu', 'nightly')).toBe('backup/cache-eu/nightly');
  });

  it('gives the same spec hash to the same schedule every time', () => {
    expect(hashOf(nightly)).toMatch(/^[0-9a-f]{16}$/);
    expect(hashOf(nightly)).toBe(hashOf({ ...nightly }));
    // Defaults written out are the same schedule as defaults left out.
    expect(hashOf(nightly)).toBe(hashOf({ ...nightly, timezone: 'UTC', catchupWindow: '1h', paused: false }));
  });

  it.each<[string, Sched, string?]>([
    ['the cron', { ...nightly, cron: '0 3 * * *' }],
    ['the timezone', { ...nightly, timezone: 'Asia/Tokyo' }],
    ['pausing', { ...nightly, paused: true }],
    ['the catch-up window', { ...nightly, catchupWindow: '2h' }],
    ['the task queue', nightly, 'other-queue'],
  ])('changes the spec hash when %s changes', (_what, changed, taskQueue) => {
    expect(hashOf(changed, taskQueue)).not.toBe(hashOf(nightly));
  });

  it('gives the same schedule of two targets different spec hashes', () => {
    const [a, b] = desired({ a: [nightly], b: [nightly] });
    expect(a.specHash).not.toBe(b.specHash);
  });
});

describe('drill schedules', () => {
  const withDrill = (drill: Record<string, unknown> | undefined) =>
    desiredSchedules(
      parseConfig(
        JSON.stringify({
          storage: { disk: { type: 'local', path: '/backups' } },
          targets: { main: { url: 'redis://127.0.0.1:6379', destinations: ['disk'], schedules: [nightly], ...(drill ? { drill } : {}) } },
        }),
        '/etc/runbook.yaml',
      ),
    );

  it('adds one drill schedule per target whose drill has a cron, beside its backups', () => {
    const d = withDrill({ cron: '0 4 1 * *' });
    expect(d.map((s) => [s.scheduleId, s.workflowType])).toEqual([
      ['backup/main/nightly', 'backupRedis'],
      ['drill/main', 'drillRedis'],
    ]);
    expect(d[1]).toMatchObject({ cron: '0 4 1 * *', timezone: 'UTC', catchupWindow: '1d', paused: false });
  });

  it('has none for a drill run by hand only, and a new hash when the drill changes', () => {
    expect(withDrill({ interval: '30d' }).map((s) => s.scheduleId)).toEqual(['backup/main/nightly']);
    expect(withDrill(undefined).map((s) => s.scheduleId)).toEqual(['backup/main/nightly']);
    const a = withDrill({ cron: '0 4 1 * *' })[1]!;
    const b = withDrill({ cron: '0 4 1 * *', paused: true })[1]!;
    expect(a.specHash).not.toBe(b.specHash);
    expect(planSchedules([b], [{ scheduleId: a.scheduleId, managedBy: MANAGED_BY, specHash: a.specHash }]).update).toHaveLength(1);
  });
});
