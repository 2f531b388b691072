// `runbook check` and the worker's metrics against a real Temporal dev server and a real redis-server:
// both read what storage holds, so a real backup and stored drill reports are what they judge.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import { writeDrillReport } from '../../domain/drill-store';
import { storeRegistry, type StoreRegistry } from '../../domain/storage';
import { parseConfig, type Config } from '../../common/config';
import type { DrillReport } from '../../common/drill-types';
import type { RunbookEvent } from '../../common/events';
import type { BackupReport } from '../../common/types';
import { createMetrics, type MetricsServer, type RunbookMetrics } from '../../worker/metrics';
import { fillDataset } from '../support/dataset';
import { startRedis, type RedisProcess } from '../support/redis';
import { signingKey } from '../support/signing';
import { startTemporal, workflowBundle } from '../support/temporal';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const taskQueue = 'check-metrics-test';
const H = 3_600_000;

let env: TestWorkflowEnvironment;
let redis: RedisProcess;
let dir: string;
let config: Config;
let stores: StoreRegistry;
let metrics: RunbookMetrics;
let served: MetricsServer;
let worker: Worker;
let workerRun: Promise<void>;
let backup: BackupReport;
/** One signing key for every variant of the config: the worker's and the CLI's trust must agree. */
let signing: string | undefined;

/** The config with the target's settings varied; every variant shares the storage and the backups. */
function configText(targetExtra = '', temporal = `{ taskQueue: ${taskQueue} }`): string {
  return `
temporal: ${temporal}
${(signing ??= signingKey(dir).yaml)}storage:
  disk: { type: local, path: ${dir}/backups }
targets:
  main:
    url: ${redis.url}
    destinations: [disk]
${targetExtra
  .split('\n')
  .filter(Boolean)
  .map((l) => `    ${l}`)
  .join('\n')}
`;
}

function configFile(name: string, targetExtra = '', temporal?: string): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, configText(targetExtra, temporal));
  return file;
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'bin/runbook.js'), ...args],
      { cwd: ROOT, env: process.env, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

const check = (file: string, ...args: string[]) => cli(['--config', file, 'check', ...args]);

/** The problem codes of the text output's target line ("main: FAIL a, b"). */
function codesOf(out: string): string[] {
  const line = /^main: FAIL (.+)$/m.exec(out);
  return line ? line[1]!.split(', ') : [];
}

async function scrape(port = served.port): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** A sample's value, or undefined when the series is absent. */
function sample(text: string, name: string, labels = 'target="main"'): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

function drillReport(outcome: 'passed' | 'failed', finishedAt: Date): DrillReport {
  const passed = outcome === 'passed';
  return {
    drillId: `main-drill-${finishedAt.getTime()}`,
    target: 'main',
    workflowId: `drill/main/${finishedAt.getTime()}`,
    runId: 'run',
    requestedBy: 'test',
    startedAt: new Date(finishedAt.getTime() - 42_000).toISOString(),
    finishedAt: finishedAt.toISOString(),
    outcome,
    ...(passed ? {} : { reason: 'the sandbox refused the RDB' }),
    backup: {
      backupId: backup.backupId,
      createdAt: backup.manifest.createdAt,
      destination: 'disk',
      ageMs: 1000,
      rdbSize: backup.manifest.rdb.size,
      storedSize: backup.manifest.artifact.size,
    },
    phases: [],
    checks: [],
    rto: { measuredMs: passed ? 41_500 : null, objectiveMs: H, met: passed },
    rpo: { newestAgeMs: 90_000, maxGapMs: 2 * H, windowMs: 7 * 24 * H, backupsInWindow: 1, objectiveMs: 24 * H, met: true },
    objectivesMet: passed,
  };
}

function event(e: RunbookEvent['event']): RunbookEvent {
  return { event: e, target: 'main', at: new Date().toISOString(), title: `${e} on main`, text: 'test' };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rr-check-test-'));
  [env, redis] = await Promise.all([startTemporal(), startRedis()]);
  await fillDataset(redis.client(), { keys: 200 });
  config = parseConfig(configText(), path.join(dir, 'runbook.yaml'));
  stores = storeRegistry(config);
  metrics = createMetrics(config, stores);
  served = await metrics.serve(0);
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: createActivities({ config, stores, temporal: env.client, onEvent: metrics.onEvent }),
  });
  workerRun = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await workerRun;
  await served?.close();
  await Promise.all([env?.teardown(), redis?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('runbook check and the metrics, on one target through its life', () => {
  it('before any backup: exits 10 with no-backup, and the metrics hold no backup', async () => {
    const r = await check(configFile('plain'));
    expect(r.code, r.stderr).toBe(10);
    expect(codesOf(r.stdout)).toEqual(['no-backup']);
    expect(r.stdout).toContain('runbook backup main');

    const text = await scrape();
    expect(sample(text, 'runbook_backups')).toBe(0);
    expect(sample(text, 'runbook_last_verified_backup_timestamp_seconds')).toBeUndefined();
    expect(sample(text, 'runbook_rpo_objective_seconds')).toBe(24 * 3600);
    expect(sample(text, 'runbook_rto_objective_seconds')).toBe(3600);
    expect(sample(text, 'runbook_backup_failures_total')).toBe(0);
    expect(text).toMatch(/^runbook_process_cpu_seconds_total /m);
  });

  it('after a real backup: exits 0 without drills, and the gauges are the manifest', async () => {
    backup = await env.client.workflow.execute('backupRedis', {
      taskQueue,
      workflowId: `backup/main/check-${Date.now()}`,
      args: [{ target: 'main', requestedBy: 'test' }],
    });
    expect(backup.ok).toBe(true);

    const r = await check(configFile('plain'));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^main: OK \(newest verified backup .* old, never drilled\)$/m);

    // A successful backup raises no event: refresh() (or the next scrape after 30 s) reads it.
    await metrics.refresh();
    const text = await scrape();
    const m = backup.manifest;
    expect(sample(text, 'runbook_last_verified_backup_timestamp_seconds')).toBe(Date.parse(m.createdAt) / 1000);
    expect(sample(text, 'runbook_last_backup_rdb_bytes')).toBe(m.rdb.size);
    expect(sample(text, 'runbook_last_backup_stored_bytes')).toBe(m.artifact.size);
    expect(sample(text, 'runbook_last_backup_duration_seconds')).toBe(m.durationMs / 1000);
    expect(sample(text, 'runbook_backups')).toBe(1);
    expect(sample(text, 'runbook_last_drill_success')).toBeUndefined();
  });

  it('prints JSON with --json', async () => {
    const r = await check(configFile('plain'), '--json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      ok: boolean;
      targets: {
        target: string;
        ok: boolean;
        problems: unknown[];
        facts: { newestVerifiedBackup: { backupId: string }; disks: { usedFraction: number }[] };
      }[];
    };
    expect(out.ok).toBe(true);
    expect(out.targets).toHaveLength(1);
    expect(out.targets[0]).toMatchObject({ target: 'main', ok: true, problems: [] });
    expect(out.targets[0]!.facts.newestVerifiedBackup.backupId).toBe(backup.backupId);
    expect(out.targets[0]!.facts.disks[0]!.usedFraction).toBeGreaterThan(0);
  });

  it('with drills required and none run: exits 10 with drill-overdue', async () => {
    const r = await check(configFile('drills', 'drill: { interval: 35d }'));
    expect(r.code).toBe(10);
    expect(codesOf(r.stdout)).toEqual(['drill-overdue']);
    expect(r.stdout).toMatch(/never passed a drill/);
  });

  it('with an RPO of 1s and the backup older than that: exits 10 with backup-too-old', async () => {
    const wait = Date.parse(backup.manifest.createdAt) + 1_100 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const r = await check(configFile('tight', 'rpo: 1s'));
    expect(r.code).toBe(10);
    expect(codesOf(r.stdout)).toEqual(['backup-too-old']);
    expect(r.stdout).toContain(backup.backupId);
  });

  it('exits 3 for an unknown target', async () => {
    const r = await check(configFile('plain'), 'nope');
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/UNKNOWN_TARGET.*"nope"/);
  });

  it('counts the failures it hears of', async () => {
    metrics.onEvent(event('backup-failed'));
    const text = await scrape();
    expect(sample(text, 'runbook_backup_failures_total')).toBe(1);
    expect(sample(text, 'runbook_drill_failures_total')).toBe(0);
    expect(sample(text, 'runbook_notifications_total', 'event="backup-failed"')).toBe(1);
    expect(sample(text, 'runbook_notifications_total', 'event="drill-failed"')).toBe(0);
  });

  it('shows a passed drill: the gauges after refresh(), and check passes with drills required', async () => {
    const report = drillReport('passed', new Date());
    await writeDrillReport(config, stores, report, '# drill');
    await metrics.refresh();
    const text = await scrape();
    expect(sample(text, 'runbook_last_drill_success')).toBe(1);
    expect(sample(text, 'runbook_last_drill_rto_seconds')).toBe(41.5);
    expect(sample(text, 'runbook_last_drill_rpo_seconds')).toBe(7200);
    expect(sample(text, 'runbook_last_drill_timestamp_seconds')).toBe(Date.parse(report.finishedAt) / 1000);

    const r = await check(configFile('drills', 'drill: { interval: 35d }'));
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/last drill passed/);
  });

  it('with a failed drill stored: exits 10 with drill-failed, and a scrape right after the event shows it', async () => {
    const report = drillReport('failed', new Date(Date.now() + 1000));
    await writeDrillReport(config, stores, report, '# drill');
    metrics.onEvent(event('drill-failed'));
    const text = await scrape(); // no refresh(): the event refreshes the figures
    expect(sample(text, 'runbook_last_drill_success')).toBe(0);
    expect(sample(text, 'runbook_last_drill_rto_seconds')).toBeUndefined();
    expect(sample(text, 'runbook_drill_failures_total')).toBe(1);

    const r = await check(configFile('plain'));
    expect(r.code).toBe(10);
    expect(codesOf(r.stdout)).toEqual(['drill-failed']);
    expect(r.stdout).toContain('the sandbox refused the RDB');
  });
});

describe('the metrics endpoint', () => {
  it('answers 404 off /metrics', async () => {
    const res = await fetch(`http://127.0.0.1:${served.port}/`);
    expect(res.status).toBe(404);
  });

  it('keeps the last figures and counts the error when storage fails', async () => {
    let broken = false;
    const flaky: StoreRegistry = (name) => {
      const store = stores(name);
      return new Proxy(store, {
        get(t, p) {
          if (broken && (p === 'listDirs' || p === 'listFiles')) return () => Promise.reject(new Error('disk gone'));
          const v = Reflect.get(t, p) as unknown;
          return typeof v === 'function' ? v.bind(t) : v;
        },
      });
    };
    // maxAgeMs 0: every scrape reads storage again, as one 30 s later would.
    const m = createMetrics(config, flaky, { maxAgeMs: 0 });
    const s = await m.serve(0);
    try {
      const before = await scrape(s.port);
      expect(sample(before, 'runbook_backups')).toBe(1);
      expect(sample(before, 'runbook_metrics_refresh_errors_total')).toBe(0);
      broken = true;
      const after = await scrape(s.port);
      expect(sample(after, 'runbook_metrics_refresh_errors_total')).toBe(1);
      expect(sample(after, 'runbook_backups')).toBe(1);
      expect(sample(after, 'runbook_last_verified_backup_timestamp_seconds')).toBe(Date.parse(backup.manifest.createdAt) / 1000);
    } finally {
      await s.close();
    }
  });

  it('is served by `runbook worker --metrics-port`', async () => {
    const file = configFile('worker', 'drill: { interval: 35d }', `{ address: "${env.address}", taskQueue: check-metrics-cli }`);
    expect((await cli(['--config', file, 'worker', '--metrics-port', 'abc'])).code).toBe(2);

    const child = spawn(process.execPath, [path.join(ROOT, 'bin/runbook.js'), '--config', file, 'worker', '--metrics-port', '0'], {
      cwd: ROOT,
      env: process.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      let stderr = '';
      const url = await new Promise<string>((resolve, reject) => {
        child.stderr!.on('data', (b: Buffer) => {
          stderr += b.toString();
          const found = /metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(stderr);
          if (found) resolve(found[1]!);
        });
        child.once('exit', (code) => reject(new Error(`worker exited ${code}: ${stderr}`)));
      });
      const text = await (await fetch(url)).text();
      expect(sample(text, 'runbook_backups')).toBe(1);
      expect(sample(text, 'runbook_last_drill_success')).toBe(0);
      expect(sample(text, 'runbook_drill_interval_seconds')).toBe(35 * 86400);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    }
  });
});
