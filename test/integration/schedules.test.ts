// `runbook schedules apply|list` as a subprocess against a real Temporal dev server: the config is
// the truth, apply is idempotent, and schedules that are not ours are never touched.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/redis';
import { startTemporal } from '../support/temporal';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));

let env: TestWorkflowEnvironment;
let dir: string;
let configFile: string;

interface Sched {
  name: string;
  cron: string;
  extra?: string;
}

function configText(address: string, targets: Record<string, Sched[]>): string {
  const t = Object.entries(targets)
    .map(
      ([name, schedules], i) => `
  ${name}:
    url: redis://127.0.0.1:${16379 + i}
    destinations: [disk]
    schedules:
${schedules.map((s) => `      - { name: ${s.name}, cron: "${s.cron}"${s.extra ? `, ${s.extra}` : ''} }`).join('\n')}`,
    )
    .join('');
  return `
temporal: { address: "${address}", taskQueue: sched-test }
storage:
  disk: { type: local, path: backups }
targets:${t}
`;
}

const initial: Record<string, Sched[]> = {
  main: [
    { name: 'nightly', cron: '0 2 * * *', extra: 'catchupWindow: 6h' },
    { name: 'hourly', cron: '15 * * * *', extra: 'timezone: Europe/Paris' },
  ],
  cache: [{ name: 'nightly', cron: '30 3 * * *', extra: 'catchupWindow: 45m' }],
};

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(file: string, ...args: string[]): Promise<CliResult> {
  return run('npx', ['tsx', 'cli/index.ts', '--config', file, ...args], { cwd: root, env: process.env, timeout: 60_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

interface ApplySummary {
  dryRun: boolean;
  created: string[];
  updated: string[];
  deleted: string[];
  unchanged: string[];
}

async function apply(...extra: string[]): Promise<ApplySummary> {
  const r = await cli(configFile, '--json', 'schedules', 'apply', ...extra);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ApplySummary;
}

const sorted = (xs: string[]) => [...xs].sort();

const describeSchedule = (id: string) => env.client.schedule.getHandle(id).describe();

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rr-schedules-test-'));
  env = await startTemporal();
  configFile = path.join(dir, 'runbook.yaml');
  writeFileSync(configFile, configText(env.address, initial));
});

afterAll(async () => {
  await env?.teardown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// The steps build on each other: each starts from what the one before left in Temporal.
describe('runbook schedules apply', () => {
  it('creates a schedule for every schedule in the config', async () => {
    const s = await apply();
    expect(s.dryRun).toBe(false);
    expect(sorted(s.created)).toEqual(['backup/cache/nightly', 'backup/main/hourly', 'backup/main/nightly']);
    expect(s).toMatchObject({ updated: [], deleted: [], unchanged: [] });
  });

  it('creates schedules with the cron, timezone, overlap policy SKIP and catch-up window of the config', async () => {
    const nightly = await describeSchedule('backup/main/nightly');
    expect(nightly.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
    expect(nightly.policies.catchupWindow).toBe(6 * 3600_000);
    expect(nightly.memo).toEqual({ managedBy: 'redis-runbooks' });
    expect(nightly.state.paused).toBe(false);
    expect(nightly.action).toMatchObject({
      type: 'startWorkflow',
      workflowType: 'backupRedis',
      workflowId: 'backup/main/nightly',
      taskQueue: 'sched-test',
      args: [{ target: 'main', requestedBy: 'schedule:nightly' }],
    });
    for (const t of nightly.info.nextActionTimes) expect([t.getUTCHours(), t.getUTCMinutes()]).toEqual([2, 0]);

    const hourly = await describeSchedule('backup/main/hourly');
    expect(hourly.spec.timezone).toBe('Europe/Paris');
    expect(hourly.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
    expect(hourly.policies.catchupWindow).toBe(3600_000);
    expect(hourly.info.nextActionTimes.length).toBeGreaterThan(0);
    for (const t of hourly.info.nextActionTimes) expect(t.getUTCMinutes()).toBe(15);

    const cache = await describeSchedule('backup/cache/nightly');
    expect(cache.policies.catchupWindow).toBe(45 * 60_000);
  });

  it('changes nothing when applied again to an unchanged config', async () => {
    const s = await apply();
    expect(s).toMatchObject({ created: [], updated: [], deleted: [] });
    expect(sorted(s.unchanged)).toEqual(['backup/cache/nightly', 'backup/main/hourly', 'backup/main/nightly']);
  });

  it('leaves a schedule that someone else made in the same namespace untouched', async () => {
    await env.client.schedule.create({
      scheduleId: 'nightly-report',
      spec: { cronExpressions: ['0 6 * * *'] },
      action: { type: 'startWorkflow', workflowType: 'report', taskQueue: 'elsewhere' },
    });
    // Even one shaped like ours is not ours without the memo.
    await env.client.schedule.create({
      scheduleId: 'backup/legacy/nightly',
      spec: { cronExpressions: ['0 1 * * *'] },
      action: { type: 'startWorkflow', workflowType: 'backupRedis', taskQueue: 'elsewhere' },
      state: { note: 'redis-runbooks spec 0000000000000000' },
    });
    const s = await apply();
    expect(s).toMatchObject({ created: [], updated: [], deleted: [] });
    for (const id of ['nightly-report', 'backup/legacy/nightly']) {
      expect([...s.created, ...s.updated, ...s.deleted, ...s.unchanged]).not.toContain(id);
      const d = await describeSchedule(id);
      expect(d.memo ?? {}).toEqual({});
      expect(d.action).toMatchObject({ taskQueue: 'elsewhere' });
    }
  });

  it('updates a schedule whose cron changed and deletes one removed from the config, and --dry-run only shows it', async () => {
    writeFileSync(
      configFile,
      configText(env.address, {
        main: [{ name: 'nightly', cron: '0 4 * * *', extra: 'catchupWindow: 6h' }],
        cache: initial.cache,
      }),
    );
    const dry = await apply('--dry-run');
    expect(dry).toEqual({
      dryRun: true,
      created: [],
      updated: ['backup/main/nightly'],
      deleted: ['backup/main/hourly'],
      unchanged: ['backup/cache/nightly'],
    });
    expect((await describeSchedule('backup/main/hourly')).scheduleId).toBe('backup/main/hourly');

    const s = await apply();
    expect(s).toEqual({
      dryRun: false,
      created: [],
      updated: ['backup/main/nightly'],
      deleted: ['backup/main/hourly'],
      unchanged: ['backup/cache/nightly'],
    });
    await expect(describeSchedule('backup/main/hourly')).rejects.toThrow(/not found/i);
    const nightly = await describeSchedule('backup/main/nightly');
    expect(nightly.info.nextActionTimes.length).toBeGreaterThan(0);
    for (const t of nightly.info.nextActionTimes) expect([t.getUTCHours(), t.getUTCMinutes()]).toEqual([4, 0]);
    expect(nightly.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
    expect(nightly.policies.catchupWindow).toBe(6 * 3600_000);
    expect(nightly.memo).toEqual({ managedBy: 'redis-runbooks' });

    const again = await apply();
    expect(again).toMatchObject({ created: [], updated: [], deleted: [] });
    expect(sorted(again.unchanged)).toEqual(['backup/cache/nightly', 'backup/main/nightly']);
  });

  it('still leaves the schedules of someone else in place after deleting ours', async () => {
    expect((await describeSchedule('nightly-report')).scheduleId).toBe('nightly-report');
    expect((await describeSchedule('backup/legacy/nightly')).scheduleId).toBe('backup/legacy/nightly');
  });
});

describe('runbook schedules list', () => {
  it('lists the schedules the config manages, with their next run times, and no others', async () => {
    const r = await cli(configFile, '--json', 'schedules', 'list');
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as { scheduleId: string; paused: boolean; nextRuns: string[]; recentActions: string[] }[];
    expect(sorted(rows.map((x) => x.scheduleId))).toEqual(['backup/cache/nightly', 'backup/main/nightly']);
    const next = Object.fromEntries(rows.map((x) => [x.scheduleId, x.nextRuns]));
    expect(next['backup/main/nightly'].length).toBeGreaterThan(0);
    expect(next['backup/cache/nightly'].length).toBeGreaterThan(0);
    for (const t of next['backup/main/nightly']) {
      expect(new Date(t).getTime()).toBeGreaterThan(Date.now());
      expect(t).toMatch(/T04:00:00\.000Z$/);
    }
    for (const t of next['backup/cache/nightly']) expect(t).toMatch(/T03:30:00\.000Z$/);
    expect(rows.every((x) => x.paused === false)).toBe(true);
  });

  it('prints one line per schedule with its next run in text mode', async () => {
    const r = await cli(configFile, 'schedules', 'list');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^backup\/main\/nightly\n {2}next: \d{4}-\d\d-\d\dT04:00:00\.000Z$/m);
    expect(r.stdout).not.toContain('nightly-report');
  });
});

describe('runbook schedules apply fails clearly', () => {
  it('exits 3 and names the bad path when the config is invalid', async () => {
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, configText(env.address, { main: [{ name: 'nightly', cron: 'every day' }] }));
    const r = await cli(bad, 'schedules', 'apply');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('[CONFIG_INVALID]');
    expect(r.stderr).toContain(bad);
    expect(r.stderr).toContain('targets.main.schedules.0.cron: expected a five-field cron expression');
  });

  it('exits 3 and names the file when the config file does not exist', async () => {
    const missing = path.join(dir, 'missing.yaml');
    const r = await cli(missing, 'schedules', 'apply');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('[CONFIG_NOT_FOUND]');
    expect(r.stderr).toContain(missing);
  });

  it('exits 4 and names the address when Temporal cannot be reached', async () => {
    const closed = `127.0.0.1:${await freePort()}`;
    const unreachable = path.join(dir, 'unreachable.yaml');
    writeFileSync(unreachable, configText(closed, initial));
    const r = await cli(unreachable, 'schedules', 'apply');
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain('[TEMPORAL_UNAVAILABLE]');
    expect(r.stderr).toContain(closed);
  });
});

describe('drill schedules', () => {
  it('creates drill/<target> for a target whose drill has a cron, starting drillRedis monthly', async () => {
    const file = path.join(dir, 'drills.yaml');
    writeFileSync(
      file,
      configText(env.address, { main: [{ name: 'nightly', cron: '0 2 * * *' }] }).replace(
        'schedules:',
        "drill: { cron: '0 4 1 * *' }\n    schedules:",
      ),
    );
    const r = await cli(file, '--json', 'schedules', 'apply');
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as ApplySummary).created).toContain('drill/main');
    const drill = await describeSchedule('drill/main');
    expect(drill.action).toMatchObject({
      workflowType: 'drillRedis',
      workflowId: 'drill/main',
      args: [{ target: 'main', requestedBy: 'schedule:drill' }],
    });
    expect(drill.policies).toMatchObject({ overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: 86_400_000 });
    for (const t of drill.info.nextActionTimes) expect([t.getUTCDate(), t.getUTCHours(), t.getUTCMinutes()]).toEqual([1, 4, 0]);
  });
});
