// Faults of the target, on real servers: a target restarted mid-capture; a target killed during a
// restore's make-live and back after seconds or after a minute; a network partition between the worker
// and the target during a capture and during a make-live (a TCP proxy of ours that stops forwarding,
// then heals); CLIENT PAUSE that can no longer be renewed mid-restore; and a writer that writes through
// a restore. Each ends as the retry policy says: a backup completes with one valid copy listed; a
// restore ends restored or rolled back (never UNKNOWN) with the data of the backup or of before, and
// writes flow again; a lapsed pause fails the restore safe.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { listBackups } from '../../domain/catalog';
import { storeRegistry } from '../../domain/storage';
import { verifyCopy } from '../../domain/verify';
import type { RestoreReport, RestoreStatus } from '../../common/restore-types';
import { artifactKeys, type BackupReport } from '../../common/types';
import { runCli } from '../support/cli';
import { digestAll, fillDataset } from '../support/dataset';
import { partitionProxy, type PartitionProxy } from '../support/partition-proxy';
import { startRedis, type RedisProcess } from '../support/redis';
import { awaitingApproval, startRestoreEnv, type RestoreEnv } from '../support/restore-env';
import { activityAttempt } from '../support/history';
import { startWriter as startWriterProcess, type Writer } from '../support/writer';
import { decide } from '../support/approvals';

type ExpectFn = typeof import('vitest').expect;

const ACL_USER = 'runbook';
const ACL_PASSWORD = 'acl-fault-test-password';
const NAMES = ['restarted', 'killed', 'longdown', 'cutcap', 'cutlive', 'cutlost', 'acl', 'writes'] as const;
type Name = (typeof NAMES)[number];
/** Extra redis-server arguments, the same at every (re)start. */
const ARGS: Partial<Record<Name, string[]>> = {
  acl: ['--user', ACL_USER, 'on', `>${ACL_PASSWORD}`, '~*', '&*', '+@all'],
};
const BACKUP_FILES = ['dump.rdb', 'manifest.json', 'report.json', 'report.txt', 'run.json'];

let t: RestoreEnv;
const servers = {} as Record<Name, RedisProcess>;
const dataDirs = {} as Record<Name, string>;
let cutcap: PartitionProxy;
let cutlive: PartitionProxy;
let cutlost: PartitionProxy;
const opened: Redis[] = [];
const children: ChildProcess[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  await Promise.all(
    NAMES.map(async (name) => {
      // Their own data dir, kept across a restart: a target comes back with its dump.
      dataDirs[name] = mkdtempSync(path.join(os.tmpdir(), `rr-fault-${name}-`));
      servers[name] = await startRedis({ dir: dataDirs[name], args: ARGS[name] });
    }),
  );
  [cutcap, cutlive, cutlost] = await Promise.all((['cutcap', 'cutlive', 'cutlost'] as const).map((n) => partitionProxy(servers[n].port)));
  process.env.FAULTS_TARGET_ACL_PASSWORD = ACL_PASSWORD;
  t = await startRestoreEnv(
    'faults-target',
    (dir) => `
  restarted:
    url: ${servers.restarted.url}
    destinations: [disk]
    compression: none
    retryFor: 60s
    captureIdleTimeout: 5s
  killed:
    url: ${servers.killed.url}
    destinations: [disk]
    retryFor: 60s
    restore: { approvers: [alice] }
  longdown:
    url: ${servers.longdown.url}
    destinations: [disk]
    # Shorter than the outage: make-live gives up, and the rollback waits for the target.
    retryFor: 20s
    restore: { approvers: [alice] }
  cutcap:
    url: ${cutcap.url}
    destinations: [disk]
    compression: none
    retryFor: 60s
    captureIdleTimeout: 3s
  cutlive:
    url: ${cutlive.url}
    destinations: [disk]
    retryFor: 60s
    restore: { approvers: [alice] }
  cutlost:
    url: ${cutlost.url}
    destinations: [disk]
    retryFor: 60s
    restore: { approvers: [alice] }
  acl:
    url: ${servers.acl.url}
    username: ${ACL_USER}
    password: env:FAULTS_TARGET_ACL_PASSWORD
    destinations: [disk]
    retryFor: 60s
    restore: { approvers: [alice], pauseLimit: 3s }
  writes:
    url: ${servers.writes.url}
    destinations: [disk]
    restore:
      approvers: [alice]
      writers:
        - type: command
          name: app
          pause: ${JSON.stringify(`kill -STOP $(cat ${dir}/writes.pid) && sleep 0.05 && echo "pause $(date +%s%3N)" >> ${dir}/writes.events`)}
          resume: ${JSON.stringify(`echo "resume $(date +%s%3N)" >> ${dir}/writes.events && kill -CONT $(cat ${dir}/writes.pid)`)}
          timeout: 20s
`,
  );
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const c of opened) c.disconnect();
  // The proxies first: a connection they hold must not keep an activity (and the worker's shutdown) waiting.
  await Promise.all([cutcap?.close(), cutlive?.close(), cutlost?.close()]);
  await t?.close();
  await Promise.all(NAMES.map((n) => servers[n]?.stop()));
  for (const d of Object.values(dataDirs)) rmSync(d, { recursive: true, force: true });
});

// ---- helpers ----

/** A client of the target's server itself (never through a proxy), as its default user; quiet while it is down. */
function connect(name: Name): Redis {
  // No ready check: ioredis's would hold every command while the server loads.
  const c = new Redis({
    host: '127.0.0.1',
    port: servers[name].port,
    enableReadyCheck: false,
    maxRetriesPerRequest: 1,
    retryStrategy: () => 100,
  });
  c.on('error', () => {});
  opened.push(c);
  return c;
}

/** One question to the server as it is now (after a restart, a new connection). */
async function ask<T>(name: Name, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = new Redis({
    host: '127.0.0.1',
    port: servers[name].port,
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  c.on('error', () => {});
  try {
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (
    !(await Promise.resolve()
      .then(probe)
      .catch(() => false))
  ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** SIGKILL of the target's server. */
async function kill(name: Name): Promise<void> {
  await servers[name].stop();
}

/** A redis-server again on the same port and data dir: it loads the dump it finds there, if any. */
async function startAgain(name: Name): Promise<void> {
  servers[name] = await startRedis({ port: servers[name].port, dir: dataDirs[name], args: ARGS[name] });
}

/** Loading an RDB takes ~260 keys x `ms`: a make-live of seconds, during which the target answers INFO. */
async function slowLoad(c: Redis, ms: number): Promise<void> {
  await c.config('SET', 'key-load-delay', String(ms * 1000));
  await c.config('SET', 'loading-process-events-interval-bytes', '1024');
}

async function seed(c: Redis, marker: string): Promise<Record<string, string>> {
  await fillDataset(c, { keys: 200 });
  await c.set('marker', marker);
  return digestAll(c);
}

/** Changes made after the backup: a restore takes them away, a rollback brings them back. */
async function changeAfterBackup(c: Redis): Promise<Record<string, string>> {
  await c.set('marker', 'changed after the backup');
  await c.set('added:after', 'x');
  await c.del('user:7');
  return digestAll(c);
}

const stepOf = async (h: WorkflowHandle) => (await h.query<RestoreStatus>('status')).step;

async function approvedRestore(target: Name, backupId: string): Promise<WorkflowHandle> {
  const handle = await t.startRestore({ target, from: backupId });
  await awaitingApproval(handle);
  await decide(handle, t.people.alice, 'approve');
  return handle;
}

/** Waits until the target loads the backup as a replica in the restore's make-live. */
async function loadingInMakeLive(handle: WorkflowHandle, name: Name): Promise<void> {
  await until(
    'the target to load the backup in make-live',
    async () => (await stepOf(handle)) === 'make live' && /^loading:1/m.test(await ask(name, (c) => c.info('persistence'))),
    60_000,
  );
}

interface Ending {
  report: RestoreReport;
  type?: string;
  message?: string;
}

/** How a restore ended: its report, and its failure's type and message if it failed. */
async function ending(handle: WorkflowHandle, expect: ExpectFn): Promise<Ending> {
  try {
    return { report: (await handle.result()) as RestoreReport };
  } catch (err) {
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    return { report: cause.details?.[0] as RestoreReport, type: cause.type ?? undefined, message: cause.message };
  }
}

/** What a write to the target comes to within `ms`: "ok", "held" (by a CLIENT PAUSE), or the error it got. */
function writeOutcome(name: Name, ms: number): Promise<string> {
  return ask(name, (c) =>
    Promise.race([
      c.set('fault:write-probe', String(Date.now())).then(
        () => 'ok',
        (err: Error) => err.message,
      ),
      sleep(ms).then(() => 'held'),
    ]),
  );
}

/** A write to the target returns at once: no CLIENT PAUSE is left on it; and it is a master. */
async function expectWritesFlow(name: Name, expect: ExpectFn): Promise<void> {
  expect(await writeOutcome(name, 2000), 'a write returns within 2 s: CLIENT PAUSE is lifted').toBe('ok');
  expect(await ask(name, (c) => c.info('replication'))).toMatch(/^role:master/m);
}

/** Restored with the backup's data, or rolled back to the data of before; never UNKNOWN; writes flow. */
async function expectRestoredOrRolledBack(
  name: Name,
  e: Ending,
  data: { backup: Record<string, string>; before: Record<string, string> },
  expect: ExpectFn,
): Promise<void> {
  expect(e.report.targetState).not.toMatch(/UNKNOWN/);
  if (e.report.outcome === 'restored') {
    expect(e.report.targetState).toBe(`restored from ${e.report.plan.backup.backupId} and verified; writers resumed`);
    expect(e.report.verification?.every((v) => v.ok)).toBe(true);
    expect(await ask(name, digestAll)).toEqual(data.backup);
  } else {
    expect(e.type, e.message).toBe('RESTORE_FAILED');
    expect(e.report.outcome).toBe('failed');
    expect(e.report.targetState).toBe(`rolled back to its pre-restore data (safety backup ${e.report.safetyBackupId})`);
    expect(e.report.compensations.every((c) => c.ok)).toBe(true);
    expect(e.message).toMatch(/Writers resumed\.$/);
    expect(await ask(name, digestAll)).toEqual(data.before);
  }
  await expectWritesFlow(name, expect);
  // Listed: the backup restored from and the safety backup, nothing partial.
  const listed = await listBackups(t.config, storeRegistry(t.config), name);
  expect(listed.map((b) => b.backupId).sort()).toEqual([e.report.plan.backup.backupId, e.report.safetyBackupId].sort());
  expect(folders(name).sort()).toEqual(listed.map((b) => b.backupId).sort());
}

function folders(name: Name): string[] {
  const d = path.join(t.dir, 'backups', name);
  return existsSync(d) ? readdirSync(d).filter((f) => f !== 'audit') : [];
}

/**
 * ~2.4 MiB that nothing compresses, for a capture that moves bytes all along: saved at `delayMs` a key
 * (rdb-key-save-delay), it takes seconds to cut.
 */
async function bulk(c: Redis, delayMs: number): Promise<void> {
  const p = c.pipeline();
  for (let i = 0; i < 300; i++) p.set(`doc:${i}`, randomBytes(8192));
  await p.exec();
  await c.config('SET', 'rdb-key-save-delay', String(delayMs * 1000));
}

/** Waits until the capture has stored a good part of the RDB (its unfinished file on disk grows). */
async function captureUnderWay(name: Name): Promise<void> {
  const partial = () => {
    const dir = path.join(t.dir, 'backups', name);
    let bytes = 0;
    for (const id of existsSync(dir) ? readdirSync(dir) : []) {
      const sub = path.join(dir, id);
      for (const f of statSync(sub).isDirectory() ? readdirSync(sub) : []) {
        if (f.includes('.partial-')) bytes += statSync(path.join(sub, f), { throwIfNoEntry: false })?.size ?? 0;
      }
    }
    return bytes;
  };
  await until('the capture to store 512 KiB', () => partial() > 512 * 1024);
}

const lastAttempt = (workflowId: string, activity: string) => activityAttempt(t.env.client, workflowId, activity, 'first');

/** The backup's stored copy is whole, and loaded into a redis-server it is exactly `expected` (DEBUG DIGEST). */
async function expectBackupHolds(name: Name, report: BackupReport, expected: Record<string, string>, expect: ExpectFn) {
  const stores = storeRegistry(t.config);
  const key = artifactKeys(name, report.backupId).data(report.manifest.artifact.file);
  const check = await verifyCopy(stores('disk'), key, { ...report.manifest.artifact, rdb: report.manifest.rdb }, {});
  expect(check.ok, check.detail).toBe(true);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rr-fault-load-'));
  copyFileSync(path.join(t.dir, 'backups', name, report.backupId, 'dump.rdb'), path.join(dir, 'dump.rdb'));
  const loaded = await startRedis({ dir });
  try {
    expect(await digestAll(loaded.client())).toEqual(expected);
  } finally {
    await loaded.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function startWriter(name: Name): Writer {
  const w = startWriterProcess(t.dir, name, servers[name].port);
  children.push(w.child);
  return w;
}

// ---- the faults ----

// Three lanes side by side: the minute-long outage, the lossy partition, and the other faults one after the other.
describe.concurrent('a target down for a minute', () => {
  it.sequential(
    'waits with the rollback for a target killed during make-live and down for a minute, saying what it waits for, and rolls back once it is back',
    { timeout: 150_000 },
    async ({ expect }) => {
      const c = connect('longdown');
      const backupData = await seed(c, 'backed up');
      const backup = await t.backup('longdown');
      const before = await changeAfterBackup(c);
      await slowLoad(c, 15);
      const handle = await approvedRestore('longdown', backup.backupId);
      await loadingInMakeLive(handle, 'longdown');
      await kill('longdown');
      const downAt = Date.now();

      // Make-live gives up after the target's retryFor (20 s); the rollback then waits for the target, saying so.
      await until(
        'the rollback to wait for the target',
        async () => /^compensating: roll back to the safety backup \S+ \(since \d{4}-\d\d-\d\dT[\d:.]+Z\)$/.test(await stepOf(handle)),
        60_000,
      );
      await sleep(3000);
      expect(await stepOf(handle)).toMatch(/^compensating: roll back to the safety backup /);
      const status = await runCli(t.configFile, 'status', 'restore/longdown');
      expect(status.status, status.stderr).toBe(0);
      expect(status.stdout).toMatch(/RUNNING/);
      expect(status.stdout).toMatch(/step: compensating: roll back to the safety backup \S+ \(since /);
      expect(status.stdout).toMatch(/makeLive: attempt \d+, last failure: target longdown \(127\.0\.0\.1:\d+\) is unreachable/);

      await sleep(Math.max(0, downAt + 60_000 - Date.now()));
      await startAgain('longdown');
      const e = await ending(handle, expect);
      expect(e.report.outcome).toBe('failed');
      expect(e.report.error).toMatch(/gave up after \d+ attempts over \d+ s/);
      expect(e.report.compensations.map((x) => x.name)).toContain(`roll back to the safety backup ${e.report.safetyBackupId}`);
      await expectRestoredOrRolledBack('longdown', e, { backup: backupData, before }, expect);
    },
  );
});

describe.concurrent('a partition that loses what was in flight', () => {
  // Replica-promote's make-live speaks to the target in short commands, each with a 15 s timeout: a
  // connection that silently lost its bytes fails its attempt, and the next attempt, on a new
  // connection, goes on after the heal. (It once waited on such a connection until its 6 h limit.)
  it(
    'ends a restore whose connection to the target lost its bytes in an 8 s partition during make-live within 75 s of the heal',
    { timeout: 150_000 },
    async ({ expect }) => {
      const c = connect('cutlost');
      const backupData = await seed(c, 'backed up');
      const backup = await t.backup('cutlost');
      const before = await changeAfterBackup(c);
      await slowLoad(c, 15);
      const handle = await approvedRestore('cutlost', backup.backupId);
      await loadingInMakeLive(handle, 'cutlost');
      cutlost.partition({ lose: true });
      await sleep(8000);
      cutlost.heal();

      const ended = await Promise.race([ending(handle, expect), sleep(75_000).then(() => undefined)]);
      if (!ended) {
        const step = await stepOf(handle);
        const pending = ((await handle.describe()).raw.pendingActivities ?? [])
          .map((a) => `${a.activityType?.name} attempt ${a.attempt}${a.lastFailure ? ` (${a.lastFailure.message})` : ''}`)
          .join(', ');
        const write = await writeOutcome('cutlost', 2000);
        // The run must not outlive the test: the lost connections are closed (a firewall's RST at
        // last), the hung attempt fails and is tried again.
        const reset = cutlost.resetLost();
        const e = await ending(handle, expect);
        throw new Error(
          `the restore had not ended 75 s after the partition healed: step "${step}", pending ${pending || 'nothing'}; ` +
            `a write to the target: ${write}. Once the ${reset} lost connection(s) ` +
            `were closed it ended ${e.report.outcome}: ${e.report.targetState}${e.report.error ? ` (${e.report.error})` : ''}`,
        );
      }
      await expectRestoredOrRolledBack('cutlost', ended, { backup: backupData, before }, expect);
    },
  );
});

describe.concurrent('the other faults', () => {
  it.sequential(
    'completes a backup whose target restarted mid-capture, with the data the target came back with',
    { timeout: 90_000 },
    async ({ expect }) => {
      const c = connect('restarted');
      await seed(c, 'saved');
      await bulk(c, 0);
      await c.save();
      // Not in the dump: the killed server had it, the one that comes back does not.
      await c.set('lost:on:kill', 'x');
      // ~560 keys saved at 10 ms a key: a capture of about five seconds to kill the target in.
      await c.config('SET', 'rdb-key-save-delay', '10000');
      const workflowId = `backup/restarted/fault-${Date.now()}`;
      const handle = await t.env.client.workflow.start('backupRedis', {
        taskQueue: t.taskQueue,
        workflowId,
        args: [{ target: 'restarted' }],
      });
      await captureUnderWay('restarted');
      await kill('restarted');
      await sleep(6000);
      await startAgain('restarted');
      const cameBack = await ask('restarted', digestAll);
      expect(await ask('restarted', (r) => r.exists('lost:on:kill'))).toBe(0);

      const report = (await handle.result()) as BackupReport;
      expect(report.ok).toBe(true);
      const listed = await listBackups(t.config, storeRegistry(t.config), 'restarted');
      expect(listed.map((b) => b.backupId)).toEqual([report.backupId]);
      expect(folders('restarted')).toEqual([report.backupId]);
      expect(readdirSync(path.join(t.dir, 'backups', 'restarted', report.backupId)).sort()).toEqual(BACKUP_FILES);
      await expectBackupHolds('restarted', report, cameBack, expect);
      // The capture was cut by the restart and tried again.
      const capture = await lastAttempt(workflowId, 'capture');
      expect(capture.attempt).toBeGreaterThan(1);
      expect(capture.lastFailure).toMatch(/^target restarted \(127\.0\.0\.1:\d+\) is unreachable: connect ECONNREFUSED/);
    },
  );

  it.sequential(
    'ends a restore whose target was killed during make-live and back 6 s later restored or rolled back, never UNKNOWN',
    { timeout: 120_000 },
    async ({ expect }) => {
      const c = connect('killed');
      const backupData = await seed(c, 'backed up');
      const backup = await t.backup('killed');
      const before = await changeAfterBackup(c);
      // What a restart brings back if the target has not replaced its dump by then.
      await c.save();
      await slowLoad(c, 15);
      const handle = await approvedRestore('killed', backup.backupId);
      await loadingInMakeLive(handle, 'killed');
      await kill('killed');
      await sleep(6000);
      await startAgain('killed');

      const e = await ending(handle, expect);
      await expectRestoredOrRolledBack('killed', e, { backup: backupData, before }, expect);
      expect((await lastAttempt(handle.workflowId, 'makeLive')).attempt).toBeGreaterThan(1);
    },
  );

  it.sequential(
    'completes a backup partitioned from its target mid-capture for 8 s, with one valid copy listed',
    { timeout: 90_000 },
    async ({ expect }) => {
      const c = connect('cutcap');
      await seed(c, 'partitioned');
      await bulk(c, 10);
      const data = await digestAll(c);
      const workflowId = `backup/cutcap/fault-${Date.now()}`;
      const handle = await t.env.client.workflow.start('backupRedis', { taskQueue: t.taskQueue, workflowId, args: [{ target: 'cutcap' }] });
      await captureUnderWay('cutcap');
      cutcap.partition();
      // The next capture need not be slow (the one under way keeps its delay).
      await c.config('SET', 'rdb-key-save-delay', '0');
      await sleep(8000);
      cutcap.heal();

      // retryFor (60 s) outlasts the partition: the policy says the backup completes.
      const report = (await handle.result()) as BackupReport;
      expect(report.ok).toBe(true);
      const listed = await listBackups(t.config, storeRegistry(t.config), 'cutcap');
      expect(listed.map((b) => b.backupId)).toEqual([report.backupId]);
      expect(folders('cutcap')).toEqual([report.backupId]);
      expect(readdirSync(path.join(t.dir, 'backups', 'cutcap', report.backupId)).sort()).toEqual(BACKUP_FILES);
      await expectBackupHolds('cutcap', report, data, expect);
      // The capture went silent mid-transfer, was given up after captureIdleTimeout (3 s) and tried again.
      const capture = await lastAttempt(workflowId, 'capture');
      expect(capture.attempt).toBeGreaterThan(1);
      expect(capture.lastFailure).toMatch(/^stalled: nothing from 127\.0\.0\.1:\d+ for 3000 ms after \d+ bytes/);
    },
  );

  it.sequential(
    'ends a restore partitioned from its target during make-live for 8 s restored or rolled back, with writes flowing',
    { timeout: 120_000 },
    async ({ expect }) => {
      const c = connect('cutlive');
      const backupData = await seed(c, 'backed up');
      const backup = await t.backup('cutlive');
      const before = await changeAfterBackup(c);
      await slowLoad(c, 15);
      const handle = await approvedRestore('cutlive', backup.backupId);
      await loadingInMakeLive(handle, 'cutlive');
      cutlive.partition();
      await sleep(8000);
      cutlive.heal();

      const e = await ending(handle, expect);
      await expectRestoredOrRolledBack('cutlive', e, { backup: backupData, before }, expect);
    },
  );

  it.sequential(
    'fails safe when CLIENT PAUSE can no longer be renewed mid-restore: WRITER_FAILED "lapsed", rolled back, writes flowing',
    { timeout: 120_000 },
    async ({ expect }) => {
      const c = connect('acl');
      const backupData = await seed(c, 'backed up');
      const backup = await t.backup('acl');
      const before = await changeAfterBackup(c);
      // A make-live of ~12 s: the renewals (every second, pauseLimit 3s, three quick tries each) fail
      // well before it ends, even on a loaded machine; the right is taken once the target is loading.
      await slowLoad(c, 60);
      const handle = await approvedRestore('acl', backup.backupId);
      await loadingInMakeLive(handle, 'acl');
      await c.call('ACL', 'SETUSER', ACL_USER, '-client');

      await until('the restore to fail safe', async () => (await stepOf(handle)).startsWith('compensating'), 60_000);
      await c.config('SET', 'key-load-delay', '0');
      // CLIENT UNPAUSE needs the right taken away: it waits for it, saying so, and is done once it is back.
      await until('CLIENT UNPAUSE to wait', async () => /^compensating: CLIENT UNPAUSE \(since /.test(await stepOf(handle)), 60_000);
      await c.call('ACL', 'SETUSER', ACL_USER, '+client');

      const e = await ending(handle, expect);
      expect(e.type).toBe('RESTORE_FAILED');
      expect(e.report.outcome).toBe('failed');
      expect(e.report.error).toMatch(
        /^CLIENT PAUSE on acl lapsed: it could not be renewed \(.*NOPERM.*\); writes may have reached the target$/,
      );
      expect(e.report.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/^renewing CLIENT PAUSE failed: .*NOPERM/)]));
      expect(e.report.compensations.map((x) => [x.name, x.ok])).toEqual([
        [`roll back to the safety backup ${e.report.safetyBackupId}`, true],
        ['CLIENT UNPAUSE', true],
      ]);
      await expectRestoredOrRolledBack('acl', e, { backup: backupData, before }, expect);
      expect(e.report.targetState).toMatch(/^rolled back/);
    },
  );

  it.sequential(
    'holds a continuous writer through a restore: nothing acknowledged while paused, every write acknowledged after the resume kept',
    { timeout: 90_000 },
    async ({ expect }) => {
      const c = connect('writes');
      await fillDataset(c, { keys: 100 });
      const w = startWriter('writes');
      await until('the first writes', () => w.acked().length > 5);
      const backup = await t.backup('writes');
      await sleep(300);
      const handle = await approvedRestore('writes', backup.backupId);
      const report = (await handle.result()) as RestoreReport;
      expect(report.outcome).toBe('restored');
      expect(w.state()).not.toBe('T');
      const windows = w.windows();
      expect(windows).toHaveLength(1);
      const [pausedAt, resumedAt] = windows[0]!;
      expect(resumedAt).not.toBe(Infinity);
      await until('writes after the resume', async () => w.acked().filter((ms) => ms > resumedAt).length > 20);
      w.child.kill('SIGKILL');
      await new Promise((r) => (w.child.exitCode !== null || w.child.signalCode !== null ? r(null) : w.child.once('exit', r)));

      const acked = w.acked();
      const onTarget = new Set((await c.lrange('log', 0, -1)).map(Number));
      const inside = (ms: number) => ms >= pausedAt && ms <= resumedAt;
      expect(acked.filter(inside)).toEqual([]);
      expect([...onTarget].filter(inside)).toEqual([]);
      const after = acked.filter((ms) => ms > resumedAt);
      expect(after.filter((ms) => !onTarget.has(ms))).toEqual([]);
      await expectWritesFlow('writes', expect);
    },
  );
});
