// Faults of the orchestration itself, on real servers: the Temporal server killed (SIGKILL) and started
// again on its SQLite file in the middle of a backup's capture, a restore's make-live and a drill; the
// worker killed (SIGKILL) in the middle of a restore's safety backup, verification and resumption of
// writers, or while a restore waits for approval; two workers on one queue; the CLI with Temporal
// down or no worker polling; a backup retrying against a target that is down.
//
// Three groups run side by side (each waits mostly on timers: heartbeat timeouts, outages), each on
// servers of its own: the restarts on Temporal "A" (restarted, so nothing else runs on it), every other
// fault on Temporal "B", each test on a task queue of its own.
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createActivities } from '../../activities';
import { isBackupId } from '../../common/backup-id';
import { parseConfig, type Config } from '../../common/config';
import type { DrillReport } from '../../common/drill-types';
import type { RestoreReport, RestoreStatus } from '../../common/restore-types';
import { OUTCOME_ATTR } from '../../common/search-attributes';
import { artifactKeys, type BackupReport } from '../../common/types';
import { listBackups } from '../../domain/catalog';
import { inStateDir } from '../../domain/state-dir';
import { storeRegistry } from '../../domain/storage';
import { verifyCopy } from '../../domain/verify';
import { runCli } from '../support/cli';
import { digestAll, fillDataset } from '../support/dataset';
import { failureOf } from '../support/failure';
import { startRedis, type RedisProcess } from '../support/redis';
import { startS3, type S3Server } from '../support/s3';
import { signingKey } from '../support/signing';
import { decide } from '../support/approvals';
import { makePeople, peopleYaml } from '../support/people';
import { workflowBundle } from '../support/temporal';
import { startRestartableTemporal, type RestartableTemporal } from '../support/temporal-server';
import { throttledProxy, type ThrottledProxy } from '../support/throttled-proxy';

const ROOT = path.resolve(import.meta.dirname, '../..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// A temp dir of this file's own (and of the workers it starts): other files' restores run their
// scratch servers meanwhile, and this file kills workers that leave theirs behind.
const dir = mkdtempSync(path.join(os.tmpdir(), 'rr-faults-orch-'));
const signing = signingKey(dir);
const people = makePeople(dir, ['requester', 'alice']);
process.env.TMPDIR = path.join(dir, 'tmp');
mkdirSync(process.env.TMPDIR);
process.env.FAULT_ORCH_S3_KEY = 'runbook-test';
process.env.FAULT_ORCH_S3_SECRET = 'test-s3-secret';

try {
  // Failures the tests provoke on purpose (and the worker's retries while Temporal is down) would
  // otherwise fill the output with warnings.
  Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } });
} catch {
  // installed already in this process
}

/** The files a finished zstd backup leaves in its folder, and nothing else. */
const BACKUP_FILES = ['dump.rdb.zst', 'manifest.json', 'report.json', 'report.txt', 'run.json'];

let temporalA: RestartableTemporal;
let temporalB: RestartableTemporal;
let clientA: Client;
let clientB: Client;
const redises: RedisProcess[] = [];
const children: ChildProcess[] = [];
const workers: { worker: Worker; running: Promise<void>; connection: NativeConnection }[] = [];

const servers: Record<string, RedisProcess> = {};
let downPort: number;
let s3: S3Server;
let proxy: ThrottledProxy;

/** The config of every target of this file, on one Temporal and task queue. */
function configText(address: string, taskQueue: string): string {
  const url = (name: string) => servers[name]!.url;
  return `
temporal: { address: "${address}", taskQueue: ${taskQueue} }
${signing.yaml}${peopleYaml(people)}storage:
  disk: { type: local, path: ${dir}/backups }
  offsite:
    type: s3
    bucket: offsite
    endpoint: http://127.0.0.1:${proxy.port}
    forcePathStyle: true
    accessKeyId: env:FAULT_ORCH_S3_KEY
    secretAccessKey: env:FAULT_ORCH_S3_SECRET
targets:
  capture:
    url: ${url('capture')}
    destinations: [disk]
  live:
    url: ${url('live')}
    destinations: [disk]
    restore: { approvers: [alice] }
  drilled:
    url: ${url('drilled')}
    destinations: [offsite]
    compression: none
  safety:
    url: ${url('safety')}
    destinations: [disk]
    restore: { approvers: [alice] }
  verified:
    url: ${url('verified')}
    destinations: [disk]
    restore:
      approvers: [alice]
      # The application's check after make-live leaves the target busy for a few seconds (DEBUG SLEEP):
      # verification, which follows, is under way long enough to kill its worker in the middle of it.
      afterMakeLive: "redis-cli -p ${servers.verified!.port} DEBUG SLEEP 4 >/dev/null 2>&1 & sleep 0.2"
  resumed:
    url: ${url('resumed')}
    destinations: [disk]
    restore:
      approvers: [alice]
      writers:
        - type: command
          name: app
          pause: "echo pause >> ${dir}/app.events && kill -STOP $(cat ${dir}/app.pid)"
          # Slow on purpose: the worker is killed while it runs.
          resume: "echo resume-start >> ${dir}/app.events && sleep 2 && kill -CONT $(cat ${dir}/app.pid) && echo resumed >> ${dir}/app.events"
          timeout: 20s
  twins:
    url: ${url('twins')}
    destinations: [disk]
  gate:
    url: ${url('gate')}
    destinations: [disk]
    restore: { approvers: [alice] }
  idle:
    url: ${url('gate')}
    destinations: [disk]
    restore: { approvers: [alice] }
  down:
    url: redis://127.0.0.1:${downPort}
    destinations: [disk]
    retryFor: 15s
`;
}

interface Setup {
  config: Config;
  configFile: string;
  taskQueue: string;
}

/** A config file for a task queue of its own on one of the two servers. */
function setup(temporal: RestartableTemporal, taskQueue: string): Setup {
  const text = configText(temporal.address, taskQueue);
  const configFile = path.join(dir, `${taskQueue}.yaml`);
  writeFileSync(configFile, text);
  return { config: parseConfig(text, configFile), configFile, taskQueue };
}

/** A worker in this process (it lives through a restart of its Temporal: its connection reconnects). */
async function inProcessWorker(temporal: RestartableTemporal, client: Client, s: Setup): Promise<() => Promise<void>> {
  const connection = await NativeConnection.connect({ address: temporal.address });
  const worker = await Worker.create({
    connection,
    taskQueue: s.taskQueue,
    workflowBundle: await workflowBundle(),
    activities: createActivities({ config: s.config, stores: storeRegistry(s.config), temporal: client }),
  });
  const entry = { worker, running: worker.run(), connection };
  workers.push(entry);
  return async () => {
    worker.shutdown();
    await entry.running;
    await connection.close();
    workers.splice(workers.indexOf(entry), 1);
  };
}

interface WorkerProcess {
  /** SIGKILL, of the worker alone or of its whole process group (its running commands too: the host died). */
  kill(group?: boolean): Promise<void>;
}

/** `runbook worker` as a process of its own group; resolves once it serves its task queue. */
async function workerProcess(s: Setup): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/runbook.js'), '--config', s.configFile, 'worker'], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-8000)));
  const exited = new Promise((r) => child.once('exit', r));
  await until(`runbook worker on ${s.taskQueue} to serve`, () => {
    if (child.exitCode !== null) throw new Error(`runbook worker exited with ${child.exitCode}: ${err}`);
    return err.includes('worker serving');
  });
  return {
    async kill(group = false) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      process.kill(group ? -child.pid! : child.pid!, 'SIGKILL');
      await exited;
    },
  };
}

async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function seeded(name: string): Promise<RedisProcess> {
  const r = await startRedis();
  redises.push(r);
  servers[name] = r;
  const c = r.client();
  await fillDataset(c, { keys: 2000 });
  c.disconnect();
  return r;
}

function backup(client: Client, s: Setup, target: string): Promise<BackupReport> {
  return client.workflow.execute('backupRedis', {
    taskQueue: s.taskQueue,
    workflowId: `backup/${target}/fault-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
    args: [{ target }],
  });
}

/** Starts a restore and signs its request as requester once it has a plan (in the background, as a person would). */
async function startRestore(client: Client, s: Setup, target: string, from: string): Promise<WorkflowHandle> {
  const handle = await client.workflow.start('restoreRedis', {
    taskQueue: s.taskQueue,
    workflowId: `restore/${target}`,
    args: [{ target, from, reason: 'fault test' }],
  });
  decide(handle, people.requester, 'request').catch(() => undefined);
  return handle;
}

async function step(handle: WorkflowHandle): Promise<string> {
  return (await handle.query<RestoreStatus>('status')).step;
}

async function awaitingApproval(handle: WorkflowHandle): Promise<void> {
  await until('the approval gate', async () => (await step(handle)) === 'awaiting approval', 60_000);
}

/** The activity a worker runs now for a workflow, if any (scheduled but not yet taken does not count). */
async function pendingActivity(client: Client, workflowId: string): Promise<string | undefined> {
  const d = await client.workflow.getHandle(workflowId).describe();
  const a = d.raw.pendingActivities?.[0];
  return a?.state === proto.temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    ? (a.activityType?.name ?? undefined)
    : undefined;
}

/**
 * Is the target writing an RDB for a replica (a capture under way)? Heartbeat details would not tell:
 * the worker sends them to the server at most every 80 % of the heartbeat timeout.
 */
async function saving(c: Redis): Promise<boolean> {
  return /^rdb_bgsave_in_progress:1\r?$/m.test(await c.info('persistence'));
}

/** How long a write takes: at once when no CLIENT PAUSE holds writes. */
async function writeMs(c: Redis): Promise<number> {
  const started = Date.now();
  await c.set('fault:probe', '1');
  const ms = Date.now() - started;
  await c.del('fault:probe');
  return ms;
}

/** The keys of every database. */
async function keyCount(c: Redis): Promise<number> {
  const info = await c.info('keyspace');
  return [...info.matchAll(/^db\d+:keys=(\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

/** The backup folders of a target on the local destination, finished or not (not its audit trail). */
const folders = (target: string) =>
  existsSync(path.join(dir, 'backups', target)) ? readdirSync(path.join(dir, 'backups', target)).filter(isBackupId) : [];

/** How many times each activity was started, as the history records it (a retried one: once, with its attempt). */
async function activityStarts(client: Client, workflowId: string, activity: string): Promise<number[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, string>();
  const attempts: number[] = [];
  for (const e of history.events ?? []) {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (name) scheduled.set(String(e.eventId), name);
    const started = e.activityTaskStartedEventAttributes;
    if (started && scheduled.get(String(started.scheduledEventId)) === activity) attempts.push(started.attempt ?? 1);
  }
  return attempts;
}

/**
 * The "down" target's port, held by a listener that drops every connection: no other test's server can
 * take the port meanwhile (a port merely found free could be, and then answer as that server).
 */
let downListener: net.Server;

beforeAll(async () => {
  downListener = net.createServer((socket) => socket.destroy());
  await new Promise<void>((r) => downListener.listen(0, '127.0.0.1', r));
  downPort = (downListener.address() as net.AddressInfo).port;
  const started = await Promise.all([
    startRestartableTemporal(path.join(dir, 'temporal-a.sqlite')),
    startRestartableTemporal(path.join(dir, 'temporal-b.sqlite')),
    startS3(process.env.FAULT_ORCH_S3_SECRET),
    ...['capture', 'live', 'drilled', 'safety', 'verified', 'resumed', 'twins', 'gate'].map(seeded),
    workflowBundle(),
  ]);
  [temporalA, temporalB, s3] = started as unknown as [RestartableTemporal, RestartableTemporal, S3Server];
  await s3.createBucket('offsite');
  proxy = await throttledProxy(Number(new URL(s3.endpoint).port));
  clientA = new Client({ connection: await Connection.connect({ address: temporalA.address }) });
  clientB = new Client({ connection: await Connection.connect({ address: temporalB.address }) });
});

afterAll(async () => {
  downListener?.close();
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    try {
      process.kill(-c.pid!, 'SIGKILL'); // a worker and what it runs
    } catch {
      c.kill('SIGKILL'); // not the leader of a group of its own
    }
  }
  // The scratch servers of the workers killed here, which outlive them.
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('redis-server') && inStateDir(cwd)) {
        process.kill(Number(pid), 'SIGKILL');
      }
    } catch {
      // gone, or not ours to read
    }
  }
  for (const w of [...workers]) {
    w.worker.shutdown();
    await w.running.catch(() => undefined);
    await w.connection.close().catch(() => undefined);
  }
  await clientA?.connection.close();
  await clientB?.connection.close();
  await Promise.all([temporalA?.stop(), temporalB?.stop(), s3?.stop(), proxy?.close(), ...redises.map((r) => r.stop())]);
  rmSync(dir, { recursive: true, force: true });
});

describe.concurrent('the orchestration under faults', () => {
  describe('a Temporal server killed and restarted', () => {
    let s: Setup;
    let stopWorker: () => Promise<void>;
    beforeAll(async () => {
      s = setup(temporalA, 'fault-restarts');
      stopWorker = await inProcessWorker(temporalA, clientA, s);
    });
    afterAll(() => stopWorker?.());

    /** SIGKILL, down for `outageMs`, started again on the same database. */
    async function outage(outageMs: number): Promise<void> {
      await temporalA.kill('SIGKILL');
      await sleep(outageMs);
      await temporalA.start();
    }

    it.sequential(
      'finishes a backup whose Temporal server was killed mid-capture, with exactly one valid copy',
      { timeout: 90_000 },
      async ({ expect }) => {
        const c = servers.capture!.client();
        // ~2,400 keys saved at 4 ms a key: a capture of about ten seconds, to kill Temporal in.
        await c.config('SET', 'rdb-key-save-delay', '4000');
        const workflowId = `backup/capture/fault-${Date.now()}`;
        const handle = await clientA.workflow.start('backupRedis', { taskQueue: s.taskQueue, workflowId, args: [{ target: 'capture' }] });
        await until(
          'the capture to be under way',
          async () => (await pendingActivity(clientA, workflowId)) === 'capture' && (await saving(c)),
        );

        await outage(6_000);
        const report = (await handle.result()) as BackupReport;
        await c.config('SET', 'rdb-key-save-delay', '0');
        expect(report.ok).toBe(true);
        expect(report.manifest.rdb.keys).toBe(await keyCount(c));

        const listed = await listBackups(s.config, storeRegistry(s.config), 'capture');
        expect(listed.map((b) => b.backupId)).toEqual([report.backupId]);
        expect(folders('capture')).toEqual([report.backupId]);
        expect(readdirSync(path.join(dir, 'backups', 'capture', report.backupId)).sort()).toEqual(BACKUP_FILES);
        const key = artifactKeys('capture', report.backupId).data(report.manifest.artifact.file);
        const check = await verifyCopy(storeRegistry(s.config)('disk'), key, { ...report.manifest.artifact, rdb: report.manifest.rdb }, {});
        expect(check.ok, check.detail).toBe(true);
        // The capture ran once: the outage did not make Temporal start a second one beside it.
        expect(await activityStarts(clientA, workflowId, 'capture')).toEqual([1]);
      },
    );

    it.sequential(
      "completes a restore whose Temporal server was restarted during make-live, with the backup's data",
      { timeout: 120_000 },
      async ({ expect }) => {
        const c = servers.live!.client();
        const before = await digestAll(c);
        const taken = await backup(clientA, s, 'live');
        await c.set('user:1', 'changed');
        await c.set('added:after', 'x');
        // Loading the backup as a replica takes ~2,400 keys x 2 ms: a make-live of seconds, during which
        // the target keeps answering.
        await c.config('SET', 'key-load-delay', '2000');
        await c.config('SET', 'loading-process-events-interval-bytes', '1024');

        const handle = await startRestore(clientA, s, 'live', taken.backupId);
        await awaitingApproval(handle);
        await decide(handle, people.alice, 'approve');
        await until(
          'the target to load the backup',
          async () => (await step(handle)) === 'make live' && (await c.info('replication')).includes('role:slave'),
          60_000,
        );
        await outage(6_000);
        const report = (await handle.result()) as RestoreReport;
        await c.config('SET', 'key-load-delay', '0');

        expect(report.outcome).toBe('restored');
        expect(report.warnings ?? []).toEqual([]);
        expect(report.targetState).toBe(`restored from ${taken.backupId} and verified; writers resumed`);
        expect(report.compensations).toEqual([]);
        expect(report.verification?.every((v) => v.ok)).toBe(true);
        expect(await digestAll(c)).toEqual(before);
        expect((await c.info('replication')).includes('role:master')).toBe(true);
        expect(await writeMs(c)).toBeLessThan(1000);
        const listed = await listBackups(s.config, storeRegistry(s.config), 'live');
        expect(listed.map((b) => b.backupId).sort()).toEqual([taken.backupId, report.safetyBackupId].sort());
      },
    );

    it.sequential(
      'passes a drill whose Temporal server was restarted while it fetched the backup',
      { timeout: 90_000 },
      async ({ expect }) => {
        proxy.setRate(Infinity);
        await servers.drilled!.client().set('random:blob', randomBytes(4 << 20));
        const taken = await backup(clientA, s, 'drilled');
        // ~4 MiB that nothing compresses, fetched at 512 KiB/s: a fetch of about eight seconds.
        proxy.setRate(512 * 1024);
        const sentBefore = proxy.sent();
        const workflowId = `drill/drilled/fault-${Date.now()}`;
        const handle = await clientA.workflow.start('drillRedis', {
          taskQueue: s.taskQueue,
          workflowId,
          args: [{ target: 'drilled', requestedBy: 'fault test' }],
        });
        await until('the drill to fetch', () => proxy.sent() - sentBefore > 256 * 1024, 30_000);
        await outage(6_000);
        const report = (await handle.result()) as DrillReport;
        proxy.setRate(Infinity);

        expect(report.outcome).toBe('passed');
        expect(report.backup?.backupId).toBe(taken.backupId);
        expect(report.backup?.destination).toBe('offsite');
        expect(report.checks.length).toBeGreaterThan(0);
        expect(report.checks.every((x) => x.ok)).toBe(true);
        expect(report.objectivesMet).toBe(true);
        // What `runbook drills list` reads was recorded on the restarted server.
        expect((await handle.describe()).typedSearchAttributes.get(OUTCOME_ATTR)).toBe('passed');
        // The backup was fetched about once: the drill was not started over from the top.
        expect(proxy.sent() - sentBefore).toBeLessThan(taken.manifest.artifact.size * 1.5);
      },
    );
  });

  describe('a worker killed', () => {
    it(
      "during a restore's safety backup: another worker completes the restore, with one whole safety backup",
      { timeout: 150_000 },
      async ({ expect }) => {
        const s = setup(temporalB, 'fault-safety');
        const c = servers.safety!.client();
        let w = await workerProcess(s);
        const before = await digestAll(c);
        const taken = await backup(clientB, s, 'safety');
        await c.set('user:1', 'changed');
        await c.set('added:after', 'x');
        const changed = await digestAll(c);
        // The safety backup's capture: ~2,400 keys saved at 3 ms a key, seconds to kill its worker in.
        await c.config('SET', 'rdb-key-save-delay', '3000');

        const handle = await startRestore(clientB, s, 'safety', taken.backupId);
        await awaitingApproval(handle);
        await decide(handle, people.alice, 'approve');
        // The safety copy is captured before writers pause (its seal, with them paused, takes the writes since).
        await until('the safety copy to capture', async () => {
          if ((await step(handle)) !== 'safety capture') return false;
          const pending = (await handle.describe()).raw.pendingActivities ?? [];
          const capturing = pending.some(
            (a) =>
              a.activityType?.name === 'captureSafetyCopy' &&
              a.state === proto.temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
          );
          return capturing && (await saving(c));
        });
        await w.kill();
        expect(await listBackups(s.config, storeRegistry(s.config), 'safety')).toHaveLength(1);
        w = await workerProcess(s);
        const report = (await handle.result()) as RestoreReport;
        await c.config('SET', 'rdb-key-save-delay', '0');

        expect(report.outcome).toBe('restored');
        expect(report.warnings ?? []).toEqual([]);
        expect(report.targetState).toBe(`restored from ${taken.backupId} and verified; writers resumed`);
        expect(await digestAll(c)).toEqual(before);
        expect(await writeMs(c)).toBeLessThan(1000);
        // Two backups, whole: the one restored and one safety backup of the data it replaced.
        const listed = await listBackups(s.config, storeRegistry(s.config), 'safety');
        expect(listed.map((b) => b.backupId).sort()).toEqual([taken.backupId, report.safetyBackupId].sort());
        const safety = listed.find((b) => b.backupId === report.safetyBackupId)!;
        expect(safety.manifest.tags).toEqual(['pre-restore']);
        expect(folders('safety').sort()).toEqual([taken.backupId, report.safetyBackupId].sort());
        expect(readdirSync(path.join(dir, 'backups', 'safety', report.safetyBackupId!)).sort()).toEqual(BACKUP_FILES);
        const key = artifactKeys('safety', safety.backupId).data(safety.manifest.artifact.file);
        const check = await verifyCopy(storeRegistry(s.config)('disk'), key, { ...safety.manifest.artifact, rdb: safety.manifest.rdb }, {});
        expect(check.ok, check.detail).toBe(true);
        // The safety backup holds the data the restore replaced: a rollback would have brought it back.
        expect(safety.manifest.rdb.keys).toBe(taken.manifest.rdb.keys + 1);
        expect(changed).not.toEqual(before);
        await w.kill();
      },
    );

    it('during verification: another worker completes the restore', { timeout: 150_000 }, async ({ expect }) => {
      const s = setup(temporalB, 'fault-verify');
      const c = servers.verified!.client();
      let w = await workerProcess(s);
      const before = await digestAll(c);
      const taken = await backup(clientB, s, 'verified');
      await c.set('user:1', 'changed');

      const handle = await startRestore(clientB, s, 'verified', taken.backupId);
      await awaitingApproval(handle);
      await decide(handle, people.alice, 'approve');
      await until('verification', async () => (await pendingActivity(clientB, handle.workflowId)) === 'verifyRestore', 60_000);
      await w.kill();
      w = await workerProcess(s);
      const report = (await handle.result()) as RestoreReport;

      expect(report.outcome).toBe('restored');
      expect(report.warnings ?? []).toEqual([]);
      expect(report.targetState).toBe(`restored from ${taken.backupId} and verified; writers resumed`);
      expect(report.verification?.map((v) => [v.name, v.ok])).toEqual([
        ['loaded', true],
        ['role', true],
        ['aof', true],
        ['save', true],
        ['key count', true],
        ['sample', true],
      ]);
      expect(report.compensations).toEqual([]);
      expect(await digestAll(c)).toEqual(before);
      expect(await writeMs(c)).toBeLessThan(1000);
      // Verification was started again on the other worker.
      expect((await activityStarts(clientB, handle.workflowId, 'verifyRestore')).at(-1)).toBeGreaterThan(1);
      await w.kill();
    });

    it(
      'while it resumes the writers: another worker completes the restore and the writer is not left paused',
      { timeout: 150_000 },
      async ({ expect }) => {
        const s = setup(temporalB, 'fault-resume');
        const c = servers.resumed!.client();
        // The application's writer: a process the writer controller stops and continues.
        const app = spawn('sleep', ['600'], { stdio: 'ignore' });
        children.push(app);
        writeFileSync(path.join(dir, 'app.pid'), String(app.pid));
        const events = () =>
          existsSync(path.join(dir, 'app.events')) ? readFileSync(path.join(dir, 'app.events'), 'utf8').trim().split('\n') : [];
        const appState = () =>
          readFileSync(`/proc/${app.pid}/stat`, 'utf8')
            .replace(/^.*\) /s, '')
            .split(' ')[0];

        let w = await workerProcess(s);
        const before = await digestAll(c);
        const taken = await backup(clientB, s, 'resumed');
        await c.set('user:1', 'changed');

        const handle = await startRestore(clientB, s, 'resumed', taken.backupId);
        await awaitingApproval(handle);
        await decide(handle, people.alice, 'approve');
        await until('the writer to be resumed', () => events().includes('resume-start'), 60_000);
        expect(appState()).toBe('T');
        // The host of the worker dies: the worker and the resume command it runs.
        await w.kill(true);
        expect(appState()).toBe('T');
        w = await workerProcess(s);
        const report = (await handle.result()) as RestoreReport;

        expect(report.outcome).toBe('restored');
        expect(report.warnings ?? []).toEqual([]);
        expect(report.targetState).toBe(`restored from ${taken.backupId} and verified; writers resumed`);
        expect(report.compensations).toEqual([]);
        expect(await digestAll(c)).toEqual(before);
        expect(await writeMs(c)).toBeLessThan(1000);
        // Paused once, resumed (again, by the other worker) and running.
        const seen = events();
        expect(seen.filter((e) => e === 'pause')).toHaveLength(1);
        expect(seen.filter((e) => e === 'resume-start').length).toBeGreaterThanOrEqual(2);
        expect(seen.at(-1)).toBe('resumed');
        expect(appState()).not.toBe('T');
        await w.kill();
        app.kill('SIGKILL');
      },
    );

    it(
      'while a restore waits for approval: approved after the restart, the restore completes',
      { timeout: 120_000 },
      async ({ expect }) => {
        const s = setup(temporalB, 'fault-gate');
        const c = servers.gate!.client();
        let w = await workerProcess(s);
        const before = await digestAll(c);
        const taken = await backup(clientB, s, 'gate');
        await c.set('user:1', 'changed');

        const handle = await startRestore(clientB, s, 'gate', taken.backupId);
        await awaitingApproval(handle);
        await w.kill();
        w = await workerProcess(s);
        // The killed worker still counts as a poller, and the workflow sits in its sticky cache: Temporal
        // hands the approval's query and update to the new worker once the old one missed its polls (~10 s).
        const approved = await runCli(s.configFile, 'approve', 'restore/gate', '--key', people.alice.keyFile, '--yes');
        expect(approved.status, approved.stderr).toBe(0);
        expect(approved.stdout).toMatch(/approved restore\/gate as alice \(key SHA256:/);
        const report = (await handle.result()) as RestoreReport;

        expect(report.outcome).toBe('restored');
        expect(report.warnings ?? []).toEqual([]);
        expect(report.decisions.map((d) => `${d.decision}:${d.approver}`)).toEqual(['approve:alice']);
        expect(report.targetState).toBe(`restored from ${taken.backupId} and verified; writers resumed`);
        expect(await digestAll(c)).toEqual(before);
        expect(await writeMs(c)).toBeLessThan(1000);
        await w.kill();
      },
    );
  });

  describe('workers, the CLI and retries', () => {
    it('runs backups on two workers of one queue without a duplicate artifact', { timeout: 90_000 }, async ({ expect }) => {
      const s = setup(temporalB, 'fault-twins');
      const stops = [await inProcessWorker(temporalB, clientB, s), await inProcessWorker(temporalB, clientB, s)];
      try {
        const ids = Array.from({ length: 4 }, (_, i) => `backup/twins/fault-${Date.now()}-${i}`);
        const reports = await Promise.all(
          ids.map(
            (workflowId) =>
              clientB.workflow.execute('backupRedis', {
                taskQueue: s.taskQueue,
                workflowId,
                args: [{ target: 'twins' }],
              }) as Promise<BackupReport>,
          ),
        );
        expect(reports.every((r) => r.ok)).toBe(true);
        const backupIds = reports.map((r) => r.backupId).sort();
        expect(new Set(backupIds).size).toBe(4);
        const listed = await listBackups(s.config, storeRegistry(s.config), 'twins');
        expect(listed.map((b) => b.backupId).sort()).toEqual(backupIds);
        expect(folders('twins').sort()).toEqual(backupIds);
        for (const id of backupIds) expect(readdirSync(path.join(dir, 'backups', 'twins', id)).sort()).toEqual(BACKUP_FILES);
        // Each capture ran once, on one worker.
        for (const id of ids) expect(await activityStarts(clientB, id, 'capture')).toEqual([1]);
      } finally {
        for (const stop of stops) await stop();
      }
    });

    it('exits 4 with TEMPORAL_UNAVAILABLE, quickly, when the worker cannot reach Temporal', { timeout: 30_000 }, async ({ expect }) => {
      const nobody = downPort; // held, dropping every connection: no Temporal answers there
      const configFile = path.join(dir, 'down-temporal.yaml');
      writeFileSync(configFile, configText(`127.0.0.1:${nobody}`, 'fault-unreachable'));
      const started = Date.now();
      const run = await runCli(configFile, 'worker');
      expect(run.status, run.stderr).toBe(4);
      expect(run.stderr).toMatch(/^error \[TEMPORAL_UNAVAILABLE\]: cannot reach Temporal at 127\.0\.0\.1:\d+/);
      expect(Date.now() - started).toBeLessThan(15_000);
    });

    it(
      'says NO_WORKER (exit 11) within seconds for approve and status when no worker polls the queue, naming it',
      { timeout: 60_000 },
      async ({ expect }) => {
        // A queue no worker ever polled: the restore is started directly, and nothing runs it.
        const s = setup(temporalB, `fault-never-polled-${Date.now()}`);
        const handle = await startRestore(clientB, s, 'idle', 'latest');
        try {
          // One after the other: each says so within its own ~5 s of looking for a worker, plus its start.
          const timed = async (...args: string[]) => {
            const started = Date.now();
            return { ...(await runCli(s.configFile, ...args)), ms: Date.now() - started };
          };
          const approve = await timed('approve', 'restore/idle', '--key', people.alice.keyFile, '--yes');
          const status = await timed('status', 'restore/idle');
          expect(approve.status, approve.stderr).toBe(11);
          expect(approve.stderr).toMatch(/\[NO_WORKER\]/);
          expect(approve.stderr).toContain(`no worker polls the task queue ${s.taskQueue}`);
          expect(approve.ms).toBeLessThan(12_000);

          expect(status.status, status.stderr).toBe(11);
          expect(status.stdout).toMatch(/^restore\/idle \(restoreRedis\): RUNNING$/m);
          expect(status.stdout).toMatch(new RegExp(`^  warning: no worker polls the task queue ${s.taskQueue} `, 'm'));
          expect(status.ms).toBeLessThan(12_000);
          // No worker answers the query of its step: none is shown, and nothing waits for one.
          expect(status.stdout).not.toMatch(/step:/);
          expect((await handle.describe()).status.name).toBe('RUNNING');
        } finally {
          await handle.terminate('fault test done');
        }
      },
    );

    it(
      "shows each attempt's cause in status while a backup retries against a target that is down, then gives up cleanly",
      { timeout: 90_000 },
      async ({ expect }) => {
        const s = setup(temporalB, 'fault-down');
        const stop = await inProcessWorker(temporalB, clientB, s);
        try {
          const workflowId = `backup/down/fault-${Date.now()}`;
          const started = Date.now();
          const handle = await clientB.workflow.start('backupRedis', { taskQueue: s.taskQueue, workflowId, args: [{ target: 'down' }] });
          await until('a third attempt', async () => ((await handle.describe()).raw.pendingActivities?.[0]?.attempt ?? 0) >= 3, 30_000);
          const status = await runCli(s.configFile, 'status', workflowId);
          expect(status.status, status.stderr).toBe(0);
          expect(status.stdout).toMatch(/: RUNNING$/m);
          expect(status.stdout).toMatch(/^ {2}step: preflight$/m);
          const line = status.stdout.split('\n').find((l) => l.startsWith('  preflight: attempt '));
          expect(line, status.stdout).toBeDefined();
          expect(Number(/attempt (\d+)/.exec(line!)![1])).toBeGreaterThanOrEqual(3);
          expect(line).toMatch(new RegExp(`last failure: target down \\(127\\.0\\.0\\.1:${downPort}\\) is unreachable`));

          const f = await failureOf(handle.result());
          expect(f.type).toBe('TARGET_UNREACHABLE');
          expect(f.message).toMatch(new RegExp(`^target down \\(127\\.0\\.0\\.1:${downPort}\\) is unreachable: `));
          expect(f.message).toMatch(/\(gave up after \d+ attempts over 1[5-9] s\)$/);
          expect(Date.now() - started).toBeLessThan(40_000);
          expect(await listBackups(s.config, storeRegistry(s.config), 'down')).toEqual([]);
          expect(folders('down')).toEqual([]);
        } finally {
          await stop();
        }
      },
    );
  });
});
