// Restore drills on real servers: a Temporal dev server, redis-server, versitygw (the off-site copy)
// and a webhook receiver. A drill fetches a stored copy, loads it into a sandbox on the worker,
// verifies it and measures RTO/RPO; it never touches the target and always removes its sandbox.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity } from '../../domain/crypto/age';
import { listDrillReports } from '../../domain/drill-store';
import { restoreWorkDir } from '../../domain/restore/local-rdb';
import { storeRegistry } from '../../domain/storage';
import type { DrillReport } from '../../common/drill-types';
import { OUTCOME_ATTR, RTO_ATTR } from '../../common/search-attributes';
import { artifactKeys, type BackupReport } from '../../common/types';
import { createMetrics } from '../../worker/metrics';
import { fillDataset } from '../support/dataset';
import { runCli } from '../support/cli';
import { startRedis, type RedisProcess } from '../support/redis';
import { startRestoreEnv, type RestoreEnv } from '../support/restore-env';
import { startS3, type S3Server } from '../support/s3';
import { startWebhook, type WebhookServer } from '../support/webhook';
import { decide } from '../support/approvals';

let t: RestoreEnv;
let redis: RedisProcess;
let wide: RedisProcess;
let s3: S3Server;
let hook: WebhookServer;
let flaky: WebhookServer & { refused: number };
let seq = 0;

beforeAll(async () => {
  // A temp dir of this file's own: other files' restores run their scratch servers meanwhile.
  process.env.TMPDIR = mkdtempSync(path.join(os.tmpdir(), 'rr-drill-tmp-'));
  redis = await startRedis();
  const c = redis.client();
  await fillDataset(c, { keys: 2000 });
  await c.set('test_key', 'test_value');
  for (let i = 0; i < 100; i++) await c.set(`task:${i}`, `t${i}`);
  await c.set('project:1', 'p1');
  c.disconnect();
  // A server with more than Redis's default 16 databases, keys in db 20.
  wide = await startRedis({ args: ['--databases', '32'] });
  const w = wide.client();
  await w.select(20);
  await w.set('far:away', 'in db 20');
  w.disconnect();
  s3 = await startS3();
  await s3.createBucket('offsite');
  hook = await startWebhook();
  flaky = await startWebhook({ refuse: 1 });
  process.env.DRILL_TEST_FLAKY_WEBHOOK = flaky.url;
  process.env.DRILL_TEST_S3_KEY = s3.accessKeyId;
  process.env.DRILL_TEST_S3_SECRET = s3.secretAccessKey;
  process.env.DRILL_TEST_WEBHOOK = hook.url;
  process.env.DRILL_TEST_AGE_KEY = generateIdentity();
  t = await startRestoreEnv(
    'drill-test',
    () => `
  main:
    url: ${redis.url}
    destinations: [disk, offsite]
    rpo: 1h
    rto: 10m
    smoke: { exists: ["task:*", "project:*", "test_key"], get: { test_key: test_value } }
    drill: { rpoWindow: 1d }
    notify: [{ webhook: ops }]
    restore: { approvers: [alice] }
  wide:
    url: ${wide.url}
    destinations: [disk]
  sealed:
    url: ${redis.url}
    destinations: [disk, offsite]
    encrypt: drillkey
  twohooks:
    url: ${redis.url}
    destinations: [disk]
    notify: [{ webhook: ops, events: [drill-failed] }, { webhook: flaky, events: [drill-failed] }]
  gone:
    url: redis://127.0.0.1:1
    destinations: [disk]
    retryFor: 2s
    notify: [{ webhook: ops, events: [backup-failed] }]
  strict:
    url: ${redis.url}
    destinations: [disk]
    rpo: 1ms
    smoke: { get: { test_key: another_value } }
    notify: [{ webhook: ops, events: [drill-failed, objective-missed] }]
  laggard:
    url: ${redis.url}
    destinations: [disk]
    rpo: 1ms
    notify: [{ webhook: ops, events: [objective-missed] }]
`,
    {
      storage: `  offsite: { type: s3, bucket: offsite, endpoint: "${s3.endpoint}", forcePathStyle: true, accessKeyId: env:DRILL_TEST_S3_KEY, secretAccessKey: env:DRILL_TEST_S3_SECRET }`,
      top: `webhooks:\n  ops: { url: env:DRILL_TEST_WEBHOOK }\n  flaky: { url: env:DRILL_TEST_FLAKY_WEBHOOK }\nencryption:\n  keys: { drillkey: env:DRILL_TEST_AGE_KEY }`,
    },
  );
});

afterAll(async () => {
  await t?.close();
  await redis?.stop();
  await wide?.stop();
  await s3?.stop();
  await hook?.close();
  await flaky?.close();
  rmSync(process.env.TMPDIR!, { recursive: true, force: true });
});

const drill = (args: Record<string, unknown>) =>
  t.env.client.workflow.execute('drillRedis', {
    taskQueue: t.taskQueue,
    workflowId: `drill/test/${++seq}-${Date.now()}`,
    args: [{ requestedBy: 'test', ...args }],
  }) as Promise<DrillReport>;

/** The report a failed drill carries in its failure. */
async function failedDrill(args: Record<string, unknown>): Promise<DrillReport> {
  const err = await drill(args).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  expect((cause as ApplicationFailure).type).toBe('DRILL_FAILED');
  return (cause as ApplicationFailure).details![0] as DrillReport;
}

/** redis-server processes working in this file's restore folder (sandboxes and scratch servers). */
const redisServers = () =>
  readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return (
          readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('redis-server') && readlinkSync(`/proc/${p}/cwd`).startsWith(restoreWorkDir())
        );
      } catch {
        return false;
      }
    }).length;

const sandboxDirs = () => (existsSync(restoreWorkDir()) ? readdirSync(restoreWorkDir()).filter((d) => /^(drill-|scratch-)/.test(d)) : []);

const fileOf = (target: string, r: BackupReport) => artifactKeys(target, r.backupId).data(r.manifest.artifact.file);

describe('drillRedis', () => {
  let good: BackupReport;

  it('passes on a good backup fetched from the off-site copy, with RTO and RPO measured, without touching the target', async () => {
    good = await t.backup('main');
    const watcher = redis.client();
    const stats = async () => {
      const info = await watcher.info('stats');
      return Number(/total_connections_received:(\d+)/.exec(info)![1]) + Number(/total_commands_processed:(\d+)/.exec(info)![1]);
    };
    const serversBefore = redisServers();
    const before = await stats();
    const report = await drill({ target: 'main' });
    // Only the watcher's own INFO commands: no connection and no other command reached the target.
    expect((await stats()) - before).toBe(1);
    watcher.disconnect();

    expect(report.outcome).toBe('passed');
    expect(report.backup).toMatchObject({ backupId: good.backupId, destination: 'offsite' });
    expect(report.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        'stored copy',
        'redis-check-rdb',
        'loaded',
        'key count',
        'keys per db',
        'prefixes',
        'exists task:*',
        'get test_key',
      ]),
    );
    expect(report.checks.every((c) => c.ok)).toBe(true);
    expect(report.phases.map((p) => p.name)).toEqual(expect.arrayContaining(['fetch', 'redis-check-rdb', 'load', 'verify']));
    expect(report.rto.measuredMs).toBeGreaterThan(0);
    expect(report.rto.met).toBe(true);
    expect(report.rpo.newestAgeMs).toBeGreaterThanOrEqual(0);
    expect(report.rpo.maxGapMs).toBeGreaterThanOrEqual(report.rpo.newestAgeMs!);
    expect(report.rpo.met).toBe(true);
    expect(report.objectivesMet).toBe(true);

    // The sandbox and the fetched copy are gone.
    expect(sandboxDirs()).toEqual([]);
    expect(redisServers()).toBe(serversBefore);

    // Stored next to the backups, in JSON and Markdown, in both destinations.
    const stored = await listDrillReports(t.config, storeRegistry(t.config), 'main');
    expect(stored[0]).toMatchObject({ drillId: report.drillId, outcome: 'passed' });
    const md = readFileSync(path.join(t.dir, 'backups', 'main', 'drills', `${report.drillId}.md`), 'utf8');
    expect(md).toContain(`Restore drill ${report.drillId}`);
    expect(md).toContain('| load |');

    // Searchable in Temporal.
    const handle = t.env.client.workflow.getHandle(report.workflowId);
    const d = await handle.describe();
    expect(d.typedSearchAttributes.get(OUTCOME_ATTR)).toBe('passed');
    expect(d.typedSearchAttributes.get(RTO_ATTR)).toBeCloseTo(report.rto.measuredMs! / 1000, 3);

    // The worker's metrics show the backup and the drill.
    const metrics = createMetrics(t.config, storeRegistry(t.config));
    const served = await metrics.serve(0);
    try {
      const text = await (await fetch(`http://127.0.0.1:${served.port}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name}\\{target="main"\\} (\\S+)$`, 'm').exec(text)?.[1]);
      expect(value('runbook_last_verified_backup_timestamp_seconds')).toBe(Date.parse(good.manifest.createdAt) / 1000);
      expect(value('runbook_last_backup_rdb_bytes')).toBe(good.manifest.rdb.size);
      expect(value('runbook_last_drill_success')).toBe(1);
      expect(value('runbook_last_drill_rto_seconds')).toBeCloseTo(report.rto.measuredMs! / 1000, 3);
      expect(value('runbook_last_drill_rpo_seconds')).toBeCloseTo(Math.max(report.rpo.newestAgeMs!, report.rpo.maxGapMs!) / 1000, 3);
    } finally {
      await served.close();
    }
  });

  it('decrypts an encrypted off-site copy with the key named in its manifest', async () => {
    const r = await t.backup('sealed');
    expect(r.manifest.artifact.encryption?.keyId).toBe('drillkey');
    const report = await drill({ target: 'sealed' });
    expect(report).toMatchObject({ outcome: 'passed', backup: { backupId: r.backupId, destination: 'offsite' } });
    expect(report.checks.find((c) => c.name === 'key count')?.ok).toBe(true);
    expect(JSON.stringify(report)).not.toContain(process.env.DRILL_TEST_AGE_KEY);
  });

  it('loads a backup with keys in a database beyond the default 16', async () => {
    await t.backup('wide');
    const report = await drill({ target: 'wide' });
    expect(report.outcome).toBe('passed');
    expect(report.checks.find((c) => c.name === 'keys per db')?.detail).toContain('db20=1');
  });

  it('fails on a flipped byte in the stored copy, says why, and alerts', async () => {
    const r = await t.backup('main');
    const file = path.join(t.dir, 'backups', fileOf('main', r));
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0x40;
    writeFileSync(file, bytes);
    const since = hook.received.length;
    const report = await failedDrill({ target: 'main', from: 'disk', backupId: r.backupId });
    expect(report.outcome).toBe('failed');
    expect(report.reason).toMatch(/checksum mismatch|zstd|decompress/i);
    expect(report.rto.measuredMs).toBeNull();
    const alert = await hook.waitFor('drill-failed', since);
    expect(alert.text).toContain(r.backupId);
    expect(alert.metadata.event_payload).toMatchObject({ target: 'main', outcome: 'failed' });
    expect(JSON.stringify(hook.received)).not.toContain('secret-token');
    expect(sandboxDirs()).toEqual([]);
  });

  it('fails on a truncated stored copy', async () => {
    const r = await t.backup('main');
    const file = path.join(t.dir, 'backups', fileOf('main', r));
    truncateSync(file, Math.floor(readFileSync(file).length / 3));
    const since = hook.received.length;
    const report = await failedDrill({ target: 'main', from: 'disk', backupId: r.backupId });
    expect(report.reason).toMatch(/no copy of .* checks out/);
    await hook.waitFor('drill-failed', since);
    expect(sandboxDirs()).toEqual([]);
  });

  it('fails when a smoke check fails, and names the check', async () => {
    await t.backup('strict');
    const since = hook.received.length;
    const report = await failedDrill({ target: 'strict' });
    expect(report.backup?.destination).toBe('disk');
    expect(report.reason).toContain('get test_key: holds another value');
    expect(report.reason).not.toContain('test_value');
    expect(report.checks.find((c) => c.name === 'key count')?.ok).toBe(true);
    const alert = await hook.waitFor('drill-failed', since);
    expect(alert.text).toContain('FAILED');
    expect(sandboxDirs()).toEqual([]);
  });

  it('picks among the newest backups with --random, and drills a named one', async () => {
    const { listBackups } = await import('../../domain/catalog');
    const newestTwo = (await listBackups(t.config, storeRegistry(t.config), 'main')).slice(0, 2).map((e) => e.backupId);
    for (let i = 0; i < 4; i++) {
      const r = await drill({ target: 'main', random: 2 });
      expect(r.backup?.among).toBe(2);
      expect(newestTwo).toContain(r.backup!.backupId);
    }
    const named = await drill({ target: 'main', backupId: good.backupId });
    expect(named.backup).toMatchObject({ backupId: good.backupId, among: 1 });
  });

  it('passes but reports a missed objective, and alerts', async () => {
    await t.backup('laggard');
    const since = hook.received.length;
    const report = await drill({ target: 'laggard' });
    expect(report.outcome).toBe('passed');
    expect(report.rpo).toMatchObject({ objectiveMs: 1, met: false });
    expect(report.rto.met).toBe(true);
    expect(report.objectivesMet).toBe(false);
    const alert = await hook.waitFor('objective-missed', since);
    expect(alert.text).toMatch(/RPO .* &gt; /); // Slack's escaping of >
    expect(alert.metadata.event_payload).toMatchObject({ target: 'laggard', objectivesMet: false });
  });
});

describe('drills from the command line and on a killed or cancelled run', () => {
  const cli = (...args: string[]) => runCli(t.configFile, ...args);

  it('runs a drill and prints its report; a failed drill prints it too and exits 6', async () => {
    const ok = await cli('drill', 'main', '--wait');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/^drill main-drill-\S+ of main: PASSED/);
    expect(ok.stdout).toContain('from offsite');
    const bad = await cli('drill', 'strict', '--wait');
    expect(bad.status).toBe(6);
    expect(bad.stdout).toContain('FAILED');
    expect(bad.stderr).toContain('[DRILL_FAILED]');
    const usage = await cli('drill', 'main', '--from', 'nowhere');
    expect(usage.status).toBe(2);
  });

  it('lists drills by target and outcome from Temporal', async () => {
    let rows: { workflowId: string; outcome: string; rtoSeconds: number | null }[] = [];
    // Visibility is eventually consistent: the drills above appear within moments.
    for (let i = 0; i < 20; i++) {
      const r = await cli('--json', 'drills', 'list', 'strict', '--outcome', 'failed');
      expect(r.status).toBe(0);
      rows = JSON.parse(r.stdout) as typeof rows;
      if (rows.length >= 2) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    expect(rows.length).toBeGreaterThanOrEqual(2);
    expect(rows.every((r) => r.outcome === 'failed' && r.rtoSeconds === null)).toBe(true);
    const passed = JSON.parse((await cli('--json', 'drills', 'list', 'main', '--outcome', 'passed')).stdout) as typeof rows;
    expect(passed.length).toBeGreaterThan(0);
    expect(passed.every((r) => r.outcome === 'passed' && r.rtoSeconds! > 0)).toBe(true);
  });

  it('leaves no sandbox when cancelled, and removes one a killed worker left behind', async () => {
    // What a worker killed mid-drill leaves: a drill folder owned by a process that no longer exists.
    const dead = spawnSync('true').pid!;
    const orphan = path.join(restoreWorkDir(), 'drill-orphan-test');
    mkdirSync(orphan, { recursive: true });
    writeFileSync(path.join(orphan, 'owner.json'), JSON.stringify({ worker: dead }));
    writeFileSync(path.join(orphan, 'dump.rdb'), 'REDIS0011');

    const handle = await t.env.client.workflow.start('drillRedis', {
      taskQueue: t.taskQueue,
      workflowId: `drill/test/cancel-${Date.now()}`,
      args: [{ target: 'main', requestedBy: 'test' }],
    });
    for (let i = 0; i < 200; i++) {
      const d = await handle.describe();
      if ((d.raw.pendingActivities ?? []).some((a) => a.activityType?.name === 'drillRestore')) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow();
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    for (let i = 0; i < 100 && sandboxDirs().length; i++) await new Promise((r) => setTimeout(r, 100));
    expect(sandboxDirs()).toEqual([]);
    expect(existsSync(orphan)).toBe(false);
  });
});

describe('notifications', () => {
  it('tells of a failed backup', async () => {
    const since = hook.received.length;
    await expect(t.backup('gone')).rejects.toThrow();
    const alert = await hook.waitFor('backup-failed', since);
    expect(alert.text).toContain('127.0.0.1:1');
    expect(alert.metadata.event_payload).toMatchObject({ target: 'gone' });
  });

  it('retries only the webhook that failed: the others get each event once', async () => {
    const since = hook.received.length;
    await failedDrill({ target: 'twohooks' }); // no backup yet
    await flaky.waitFor('drill-failed');
    expect(flaky.refused).toBe(1);
    await new Promise((r) => setTimeout(r, 500));
    const toOps = hook.received.slice(since).filter((b) => b.metadata.event_payload.target === 'twohooks');
    expect(toOps).toHaveLength(1);
  });

  it('tells approvers a restore waits for them, and everyone how it ended', async () => {
    const since = hook.received.length;
    const handle = await t.startRestore({ target: 'main', from: 'latest' });
    const waiting = await hook.waitFor('restore-awaiting-approval', since);
    expect(waiting.text).toContain(`runbook approve ${handle.workflowId}`);
    expect(waiting.text).toContain('approvers: alice');
    await decide(handle, t.people.alice, 'reject', { comment: 'only a test' });
    const done = await hook.waitFor('restore-done', since);
    expect(done.metadata.event_payload).toMatchObject({ target: 'main', outcome: 'rejected' });
    expect((await handle.result()).outcome).toBe('rejected');
  });
});
