// Storage faults, on real servers: a backup rides out an S3 server killed mid-upload, a spell of 500s
// and 503 SlowDowns, and a slow uplink; it fails at once, naming the destination, on a full disk or a
// missing bucket; and it gives up cleanly, listing nothing, when S3 stays down past the target's retryFor.
// S3 is versitygw (started, killed and started again on its port by s3-restartable.ts), the faults are
// made by proxies in front of it and by a 1 MiB tmpfs; the data is ~6 MiB that nothing compresses.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFailure } from '../../common/failure';
import { artifactKeys, type BackupReport } from '../../common/types';
import { listBackups, listDestination } from '../../domain/catalog';
import { storeRegistry } from '../../domain/storage';
import { verifyCopy } from '../../domain/verify';
import { runCli } from '../support/cli';
import { digestAll } from '../support/dataset';
import { startRedis, type RedisProcess } from '../support/redis';
import { startRestoreEnv, type RestoreEnv } from '../support/restore-env';
import { startS3ErrorProxy, type S3ErrorProxy } from '../support/s3-error-proxy';
import { startRestartableS3, type RestartableS3 } from '../support/s3-restartable';
import { startThrottleProxy, type ThrottleProxy } from '../support/throttle-proxy';
import { activityAttempt } from '../support/history';

const BUCKET = 'faults';
/** The slow uplink: 128 KiB/s, so the ~6 MiB upload takes ~49 s, past the capture's stall and heartbeat timeouts. */
const SLOW_RATE = 128 * 1024;
const SLOW_IDLE_S = 3;

let t: RestoreEnv;
let redis: RedisProcess;
let s3: RestartableS3;
let erring: S3ErrorProxy;
let slow: ThrottleProxy;
let fullDir: string;
let mounted = false;
let direct: S3Client;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  [redis, s3] = await Promise.all([startRedis(), startRestartableS3()]);
  await s3.createBucket(BUCKET);
  direct = s3.client();
  erring = await startS3ErrorProxy(s3.port);
  slow = await startThrottleProxy(s3.port, { up: SLOW_RATE });
  // A real full disk: a 1 MiB tmpfs (root may mount one; elsewhere the full-disk test is skipped).
  fullDir = mkdtempSync(path.join(os.tmpdir(), 'rr-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', fullDir], { stdio: 'ignore' });
    mounted = true;
  } catch {
    mounted = false;
  }
  process.env.FAULTS_S3_KEY = s3.accessKeyId;
  process.env.FAULTS_S3_SECRET = s3.secretAccessKey;
  const s3dest = (name: string, endpoint: string, bucket = BUCKET) =>
    `  ${name}: { type: s3, bucket: ${bucket}, endpoint: "${endpoint}", forcePathStyle: true, partSizeMiB: 5, accessKeyId: env:FAULTS_S3_KEY, secretAccessKey: env:FAULTS_S3_SECRET }`;
  const target = (name: string, destination: string, more = '') => `
  ${name}:
    url: ${redis.url}
    destinations: [${destination}]
    compression: none${more}`;
  t = await startRestoreEnv(
    'storage-faults',
    () =>
      [
        target('outage', 'gw', '\n    retryFor: 2m'),
        target('erring', 'erring', '\n    retryFor: 2m'),
        target('slow', 'slow', `\n    captureIdleTimeout: ${SLOW_IDLE_S}s\n    retryFor: 30s`),
        target('cramped', 'full'),
        target('nobucket', 'nobucket'),
        target('down', 'gw', '\n    retryFor: 6s'),
      ].join(''),
    {
      storage: [
        s3dest('gw', s3.endpoint),
        s3dest('erring', erring.endpoint),
        s3dest('slow', slow.endpoint),
        s3dest('nobucket', s3.endpoint, 'no-such-bucket'),
        `  full: { type: local, path: ${fullDir} }`,
      ].join('\n'),
    },
  );
  // ~6 MiB that nothing compresses: 96 values of 64 KiB (more than one 5 MiB part), and a few others.
  const c = redis.client();
  const p = c.pipeline();
  for (let i = 0; i < 96; i++) p.set(`blob:${i}`, randomBytes(64 * 1024));
  p.hset('meta', { owner: 'faults', n: '96' });
  p.rpush('queue', 'a', 'b', 'c');
  await p.exec();
}, 120_000);

afterAll(async () => {
  // The proxies first: an upload still going through one ends, and the worker can stop.
  await Promise.all([erring?.close(), slow?.close()]);
  await t?.close();
  direct?.destroy();
  await Promise.all([redis?.stop(), s3?.stop()]);
  if (mounted) execFileSync('umount', [fullDir]);
  if (fullDir) rmSync(fullDir, { recursive: true, force: true });
});

let seq = 0;
function startBackup(target: string): Promise<WorkflowHandle> {
  return t.env.client.workflow.start('backupRedis', {
    taskQueue: t.taskQueue,
    workflowId: `backup/${target}/faults-${++seq}-${Date.now()}`,
    args: [{ target, requestedBy: 'fault-test' }],
  });
}

/** How a run that must fail failed, as a person reads it (the outermost failure, with its code). */
async function failureOfRun(handle: WorkflowHandle): Promise<{ code?: string; message: string }> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return readFailure(err);
}

const lastAttempt = (workflowId: string, activity: string) => activityAttempt(t.env.client, workflowId, activity);

/** The running activity of a run, as `runbook status` sees it: its attempt and last failure. */
async function pendingActivity(handle: WorkflowHandle): Promise<{ activity?: string; attempt: number; lastFailure?: string }> {
  const a = (await handle.describe()).raw.pendingActivities?.[0];
  return { activity: a?.activityType?.name ?? undefined, attempt: a?.attempt ?? 0, lastFailure: a?.lastFailure?.message ?? undefined };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe().catch(() => undefined);
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

/** Unfinished multipart uploads in the bucket under a target's folder. */
async function unfinishedUploads(target: string): Promise<{ key: string; uploadId: string }[]> {
  const res = await direct.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `${target}/` }));
  return (res.Uploads ?? []).map((u) => ({ key: u.Key!, uploadId: u.UploadId! }));
}

async function objectKeys(target: string): Promise<string[]> {
  const res = await direct.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${target}/` }));
  return (res.Contents ?? []).map((o) => o.Key!);
}

/** The listing of a destination: backups (with a manifest) and folders without one. */
async function catalog(target: string) {
  const stores = storeRegistry(t.config);
  const backups = await listBackups(t.config, stores, target);
  const [destination] = t.config.targets[target]!.destinations;
  const listing = await listDestination(t.config, stores, destination!, target);
  return { backups, withoutManifest: listing.withoutManifest };
}

/** Re-reads the stored copy and checks it against the manifest (size, sha256, the RDB's sha256). */
async function verifyStored(report: BackupReport, destination: string) {
  const m = report.manifest;
  const key = artifactKeys(report.target, report.backupId).data(m.artifact.file);
  return verifyCopy(storeRegistry(t.config)(destination), key, { ...m.artifact, rdb: m.rdb });
}

/** Loads the stored copy into a fresh redis-server and returns its digests. */
async function loadCopy(report: BackupReport, destination: string): Promise<Record<string, string>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rr-faults-load-'));
  const key = artifactKeys(report.target, report.backupId).data(report.manifest.artifact.file);
  const chunks: Buffer[] = [];
  for await (const chunk of await storeRegistry(t.config)(destination).read(key)) chunks.push(chunk as Buffer);
  writeFileSync(path.join(dir, 'dump.rdb'), Buffer.concat(chunks));
  const fresh = await startRedis({ dir });
  try {
    return await digestAll(fresh.client());
  } finally {
    await fresh.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function expectReportTrue(report: BackupReport, target: string, destination: string) {
  expect(report.ok).toBe(true);
  expect(report.manifest.artifact.size).toBe(report.manifest.rdb.size); // compression: none
  expect(report.manifest.rdb.size).toBeGreaterThan(6 << 20);
  expect(report.manifest.copies).toEqual([expect.objectContaining({ destination, size: report.manifest.artifact.size })]);
  expect(report.text).toContain(`backup ${report.backupId} of ${target}: OK`);
  expect(report.text).toMatch(new RegExp(`^  verified ${destination}: `, 'm'));
}

describe('an S3 server killed mid-upload', () => {
  it(
    'is ridden out: started again on its port 10 s later, the backup completes, verifies and leaves no folder without a manifest',
    { timeout: 120_000 },
    async () => {
      const c = redis.client();
      const expected = await digestAll(c);
      // 100 ms a key: the RDB takes ~10 s to come, so the upload is still going when the server dies
      // (its first 5 MiB part is sent after ~8 s, its last ~1.6 s later).
      await c.config('SET', 'rdb-key-save-delay', '100000');
      const handle = await startBackup('outage');
      let killedAt: number | undefined;
      try {
        // Mid-upload: the data's multipart upload exists (its first 5 MiB part is on its way or there).
        const inFlight = await until(
          'a multipart upload of the data',
          async () => {
            const open = await unfinishedUploads('outage');
            return open.length ? open : undefined;
          },
          30_000,
          50,
        );
        expect(inFlight.map((u) => u.key)).toEqual([expect.stringMatching(/^outage\/outage-[^/]+\/dump\.rdb$/)]);
        await s3.kill();
        killedAt = Date.now();
        await c.config('SET', 'rdb-key-save-delay', '0');
        // The run rides it out: the capture is retried, its last failure naming the destination.
        const retrying = await until(
          'the capture retried',
          async () => {
            const a = await pendingActivity(handle);
            return a.activity === 'capture' && a.attempt >= 2 ? a : undefined;
          },
          15_000,
        );
        expect(retrying.lastFailure).toMatch(/destination gw \(s3:\/\/faults\/outage\//);
        await sleep(killedAt + 10_000 - Date.now());
      } finally {
        await s3.start();
        await c.config('SET', 'rdb-key-save-delay', '0');
      }
      const report = (await handle.result()) as BackupReport;
      expectReportTrue(report, 'outage', 'gw');
      expect(new Date(report.manifest.completedAt).getTime()).toBeGreaterThan(killedAt! + 10_000);
      const capture = await lastAttempt(handle.workflowId, 'capture');
      expect(capture.attempt).toBeGreaterThanOrEqual(2);
      expect(capture.lastFailure).toMatch(/^destination gw \(s3:\/\/faults\/outage\/[^)]+\): [a-z ]+ failed: .*ECONNREFUSED/);

      // Listed, with its manifest; the copy verifies, through the CLI too, and loads with the same data.
      const { backups, withoutManifest } = await catalog('outage');
      expect(backups.map((b) => [b.backupId, b.destinations])).toEqual([[report.backupId, ['gw']]]);
      expect(withoutManifest).toEqual([]);
      expect(await verifyStored(report, 'gw')).toMatchObject({ ok: true });
      const cli = await runCli(t.configFile, 'backups', 'verify', report.backupId);
      expect(cli.stderr).toBe('');
      expect(cli.status).toBe(0);
      expect(cli.stdout).toMatch(/^ok {5}gw: /);
      expect(await loadCopy(report, 'gw')).toEqual(expected);
      // Retention ran (the backup's own step) and kept the one backup, clearing nothing.
      expect(report.retention.kept.map((k) => k.backupId)).toEqual([report.backupId]);
      expect(report.steps.map((s) => s.name)).toContain('retention');
      // The killed attempt's multipart upload is not left open. (lib-storage's own abort of it, with
      // leavePartsOnError: false, goes to the dead server and fails: the upload is still there when the
      // server comes back; the retried capture aborts what an earlier attempt of its run left.)
      expect(await unfinishedUploads('outage')).toEqual([]);
    },
  );
});

describe('S3 answering 500 InternalError and 503 SlowDown for 15 s', () => {
  it(
    'is ridden out: the capture is retried through the errors, said so by `runbook status`, and the backup completes',
    { timeout: 120_000 },
    async () => {
      erring.failFor(15_000);
      const handle = await startBackup('erring');
      const retrying = await until(
        'the capture retried',
        async () => {
          const a = await pendingActivity(handle);
          return a.activity === 'capture' && a.attempt >= 2 ? a : undefined;
        },
        15_000,
      );
      expect(retrying.lastFailure).toMatch(
        /^destination erring \(s3:\/\/faults\/erring\/[^)]+\): [a-z ]+ failed: (InternalError|SlowDown): /,
      );
      const status = await runCli(t.configFile, 'status', handle.workflowId);
      expect(status.status).toBe(0);
      expect(status.stdout).toContain(`${handle.workflowId} (backupRedis): RUNNING`);
      expect(status.stdout).toMatch(/^ {2}step: capture$/m);
      expect(status.stdout).toMatch(
        /^ {2}capture: attempt \d+, last failure: destination erring \(s3:\/\/faults\/erring\/.*(InternalError|SlowDown)/m,
      );

      const report = (await handle.result()) as BackupReport;
      // It completed after the window, having ridden out both kinds of errors.
      const window = erring.window();
      expect(new Date(report.manifest.completedAt).getTime()).toBeGreaterThan(window.until!);
      const counts = erring.counts();
      expect(counts[500]).toBeGreaterThan(0);
      expect(counts[503]).toBeGreaterThan(0);
      expectReportTrue(report, 'erring', 'erring');
      expect((await lastAttempt(handle.workflowId, 'capture')).attempt).toBeGreaterThanOrEqual(2);
      const { backups, withoutManifest } = await catalog('erring');
      expect(backups.map((b) => b.backupId)).toEqual([report.backupId]);
      expect(withoutManifest).toEqual([]);
      expect(await verifyStored(report, 'erring')).toMatchObject({ ok: true });
      expect(await unfinishedUploads('erring')).toEqual([]);
    },
  );
});

describe('a slow S3 uplink (128 KiB/s)', () => {
  // The ~6 MiB upload takes ~49 s at 128 KiB/s; the capture's idle timeout is 3 s (stall time 6 s) and
  // its heartbeat timeout 20 s. The RDB is read from Redis within a second, buffered by the S3 client
  // part by part: the capture stays alive by the bytes its S3 sockets hand to the network
  // (S3Store.bytesOnWire), not by the bytes read from Redis. (It was once timed out, attempt after
  // attempt, while its upload was still moving.)
  it('does not time the capture out while bytes move: the backup completes in one attempt', { timeout: 120_000 }, async () => {
    const before = slow.uploaded().bytes;
    const started = Date.now();
    const handle = await startBackup('slow');
    let over = false;
    try {
      // A capture given up while bytes moved is the failure: seen at once, not after the retryFor.
      const gaveUp = until(
        'the capture retried',
        async () => {
          if (over) return { attempt: 0 };
          const a = await pendingActivity(handle);
          return a.activity === 'capture' && a.attempt >= 2 ? a : undefined;
        },
        110_000,
        200,
      ).then((a: { attempt: number; lastFailure?: string }) => {
        if (a.attempt) throw new Error(`the capture was given up while bytes moved (attempt ${a.attempt}; last failure: ${a.lastFailure})`);
      });
      const report = (await Promise.race([handle.result(), gaveUp])) as BackupReport;
      expectReportTrue(report, 'slow', 'slow');
      const up = slow.uploaded();
      expect(up.bytes - before).toBeGreaterThan(report.manifest.artifact.size);
      // It really was slow: longer than the heartbeat timeout (20 s) plus the capture's stall time.
      expect(up.last! - Math.max(up.first!, started)).toBeGreaterThan(20_000 + 2 * SLOW_IDLE_S * 1000);
      expect((await lastAttempt(handle.workflowId, 'capture')).attempt).toBe(1);
      const { backups, withoutManifest } = await catalog('slow');
      expect(backups.map((b) => b.backupId)).toEqual([report.backupId]);
      expect(withoutManifest).toEqual([]);
      expect(await verifyStored(report, 'slow')).toMatchObject({ ok: true });
    } finally {
      over = true;
      await handle.terminate('test over').catch(() => {});
    }
  });
});

describe("a local destination's full disk", () => {
  it(
    'fails the backup in one attempt with STORAGE_FULL naming the destination and path, exit 6 from the CLI',
    { timeout: 60_000 },
    async (ctx) => {
      // Mounting needs root (CAP_SYS_ADMIN): without it there is no real full disk to test against.
      if (!mounted) ctx.skip('no tmpfs could be mounted here (not root?)');
      const started = Date.now();
      const cli = await runCli(t.configFile, 'backup', 'cramped', '--wait');
      expect(cli.status).toBe(6);
      expect(cli.stderr).toMatch(
        new RegExp(
          `^error \\[STORAGE_FULL\\]: destination full \\(${fullDir}/cramped/cramped-[^/]+/dump\\.rdb\\): writing failed: ENOSPC`,
          'm',
        ),
      );
      expect(cli.stderr).toContain('(free space there (or raise the quota), or remove old backups with `runbook retention`)');
      expect(Date.now() - started).toBeLessThan(30_000);
      // One attempt: the capture failed once and was not retried.
      const runs: string[] = [];
      for await (const w of t.env.client.workflow.list({ query: `WorkflowType = 'backupRedis'` }))
        if (w.workflowId.startsWith('backup/cramped/')) runs.push(w.workflowId);
      expect(runs).toHaveLength(1);
      expect(await lastAttempt(runs[0]!, 'capture')).toEqual({ attempt: 1, lastFailure: undefined });
      const f = await failureOfRun(t.env.client.workflow.getHandle(runs[0]!));
      expect(f.code).toBe('STORAGE_FULL');
      // Nothing listed, no partial file left behind (the space is free again).
      const { backups } = await catalog('cramped');
      expect(backups).toEqual([]);
      const files = readdirSync(fullDir, { recursive: true }).map(String);
      expect(files.filter((f) => /dump\.rdb|partial/.test(f))).toEqual([]);
    },
  );
});

describe('a missing bucket', () => {
  it('fails the backup at once, in one attempt, with STORAGE_REFUSED naming the destination', { timeout: 60_000 }, async () => {
    const started = Date.now();
    const handle = await startBackup('nobucket');
    const f = await failureOfRun(handle);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(f.code).toBe('STORAGE_REFUSED');
    expect(f.message).toMatch(/^destination nobucket \(s3:\/\/no-such-bucket\) refused the request: NoSuchBucket/);
    expect(await lastAttempt(handle.workflowId, 'capture')).toEqual({ attempt: 1, lastFailure: undefined });
    // Nothing to list there: the listing itself is refused, naming the destination.
    await expect(listBackups(t.config, storeRegistry(t.config), 'nobucket')).rejects.toMatchObject({
      code: 'STORAGE_REFUSED',
      message: expect.stringContaining('destination nobucket'),
    });
  });
});

describe('an S3 server down for longer than the retryFor (6 s)', () => {
  it('fails the backup cleanly, naming the destination and how long it tried, and lists no backup', { timeout: 90_000 }, async () => {
    await s3.kill();
    let handle: WorkflowHandle;
    let f: { code?: string; message: string };
    const started = Date.now();
    try {
      handle = await startBackup('down');
      f = await failureOfRun(handle);
    } finally {
      await s3.start();
    }
    expect(Date.now() - started).toBeLessThan(40_000);
    expect(f.code).toBe('STORAGE_FAILED');
    expect(f.message).toMatch(/^destination gw \(s3:\/\/faults\/down\/down-[^)]+\): [a-z ]+ failed: .*ECONNREFUSED/);
    expect(f.message).toMatch(/\(gave up after \d+ attempts over \d+ s\)$/);
    const [, attempts, seconds] = /gave up after (\d+) attempts over (\d+) s/.exec(f.message)!.map(Number);
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(seconds).toBeGreaterThanOrEqual(6);
    const status = await runCli(t.configFile, 'status', handle.workflowId);
    expect(status.stdout).toContain(`${handle.workflowId} (backupRedis): FAILED`);
    expect(status.stdout).toMatch(/^ {2}failure: destination gw \(.*\(gave up after \d+ attempts over \d+ s\)$/m);
    // Nothing was written: no backup listed, no object, no upload.
    const { backups, withoutManifest } = await catalog('down');
    expect(backups).toEqual([]);
    expect(withoutManifest).toEqual([]);
    expect(await objectKeys('down')).toEqual([]);
    expect(await unfinishedUploads('down')).toEqual([]);
  });
});
