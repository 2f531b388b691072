// The backup runbook end to end, on a real Temporal dev server, real redis-server processes and a
// real S3 server: every stored copy must load into a fresh Redis with identical contents.
import { execFile } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import { listBackups } from '../../domain/catalog';
import { decompressor } from '../../domain/pipeline';
import { storeRegistry } from '../../domain/storage';
import { parseConfig, type Config } from '../../common/config';
import { artifactKeys, type BackupReport } from '../../common/types';
import { digestAll, fillDataset } from '../support/dataset';
import { failureOf } from '../support/failure';
import { startRedis, type RedisProcess } from '../support/redis';
import { startS3, type S3Server } from '../support/s3';
import { signingKey } from '../support/signing';
import { startTemporal, workflowBundle } from '../support/temporal';

const run = promisify(execFile);
const PASSWORD = 'pw-7f3a9c-never-in-history';
const taskQueue = 'backup-test';

let env: TestWorkflowEnvironment;
let s3: S3Server;
let source: RedisProcess;
let plain: RedisProcess;
let dir: string;
let configFile: string;
let config: Config;
let worker: Worker;
let workerRun: Promise<void>;
/** Made once: the config file (the CLI's) and the worker's config must trust the same key. */
let signing: string | undefined;

function configText(extraTargets = ''): string {
  return `
temporal: { taskQueue: ${taskQueue} }
${(signing ??= signingKey(dir).yaml)}storage:
  disk: { type: local, path: ${dir}/backups }
  offsite:
    type: s3
    bucket: backups
    prefix: redis/
    endpoint: ${s3.endpoint}
    forcePathStyle: true
    accessKeyId: env:TEST_S3_KEY
    secretAccessKey: env:TEST_S3_SECRET
targets:
  main:
    url: ${source.url}
    password: env:TEST_REDIS_PASSWORD
    destinations: [disk, offsite]
    retention: { keepLast: 2 }
  plain-bgsave:
    url: ${plain.url}
    capture: bgsave-copy
    compression: gzip
    destinations: [disk]
  wrong-password:
    url: ${source.url}
    password: env:TEST_WRONG_PASSWORD
    destinations: [disk]
  nowhere:
    url: redis://127.0.0.1:1
    destinations: [disk]
    retryFor: 2s
${extraTargets}`;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rr-backup-test-'));
  [env, s3, source, plain] = await Promise.all([
    startTemporal(),
    startS3(),
    startRedis({ password: PASSWORD }),
    startRedis({ args: ['--enable-protected-configs', 'yes'] }),
  ]);
  await s3.createBucket('backups');
  process.env.TEST_REDIS_PASSWORD = PASSWORD;
  process.env.TEST_WRONG_PASSWORD = 'not-the-password';
  process.env.TEST_S3_KEY = s3.accessKeyId;
  process.env.TEST_S3_SECRET = s3.secretAccessKey;
  await fillDataset(source.client());
  await fillDataset(plain.client(), { keys: 50 });
  configFile = path.join(dir, 'runbook.yaml');
  writeFileSync(configFile, configText());
  config = parseConfig(configText(), configFile);
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: createActivities({ config, stores: storeRegistry(config), temporal: env.client }),
  });
  workerRun = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await workerRun;
  await Promise.all([env?.teardown(), s3?.stop(), source?.stop(), plain?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

let seq = 0;
async function backup(target: string): Promise<BackupReport> {
  return env.client.workflow.execute('backupRedis', {
    taskQueue,
    workflowId: `backup/${target}/test-${++seq}-${Date.now()}`,
    args: [{ target, requestedBy: 'test' }],
  });
}

/** Loads a stored copy into a fresh redis-server and returns its digests. */
async function loadCopy(destination: string, target: string, report: BackupReport): Promise<Record<string, string>> {
  const restoreDir = mkdtempSync(path.join(os.tmpdir(), 'rr-load-'));
  const stores = storeRegistry(config);
  const key = artifactKeys(target, report.backupId).data(report.manifest.artifact.file);
  await pipeline(
    await stores(destination).read(key),
    decompressor(report.manifest.artifact.compression),
    createWriteStream(path.join(restoreDir, 'dump.rdb')),
  );
  const fresh = await startRedis({ dir: restoreDir });
  try {
    return await digestAll(fresh.client());
  } finally {
    await fresh.stop();
    rmSync(restoreDir, { recursive: true, force: true });
  }
}

describe('backupRedis', () => {
  it('stores a backup locally and on S3 that loads into a fresh Redis with identical contents', async () => {
    const report = await backup('main');
    expect(report.ok).toBe(true);
    const m = report.manifest;
    expect(m.rdb.version).toBeGreaterThanOrEqual(9);
    expect(m.rdb.keys).toBe(558);
    expect(m.keyspace.db0.keys).toBe(557);
    expect(m.keyspace.db1.keys).toBe(1);
    expect(m.artifact.compression).toBe('zstd');
    expect(m.artifact.size).toBeLessThan(m.rdb.size);
    expect(m.copies.map((c) => c.destination).sort()).toEqual(['disk', 'offsite']);
    expect(m.verification.copies.every((c) => c.ok)).toBe(true);
    expect(m.prefixes.top.map((p) => p.prefix)).toContain('user:');
    expect(m.capture.method).toBe('replication');

    const expected = await digestAll(source.client());
    expect(await loadCopy('disk', 'main', report)).toEqual(expected);
    expect(await loadCopy('offsite', 'main', report)).toEqual(expected);

    // The manifest, the report and nothing else partial sit beside the data.
    const stores = storeRegistry(config);
    const keys = artifactKeys('main', report.backupId);
    expect(JSON.parse((await stores('offsite').readText(keys.manifest))!).backupId).toBe(report.backupId);
    expect(await stores('disk').readText(keys.reportText)).toContain('OK');
  });

  it('captures with BGSAVE and a copy of the snapshot file, compressed with gzip', async () => {
    const report = await backup('plain-bgsave');
    expect(report.manifest.capture.method).toBe('bgsave-copy');
    expect(report.manifest.artifact.file).toBe('dump.rdb.gz');
    expect(await loadCopy('disk', 'plain-bgsave', report)).toEqual(await digestAll(plain.client()));
  });

  it('refuses a wrong password with a clear, non-retried error and lists nothing', async () => {
    const f = await failureOf(backup('wrong-password'));
    expect(f.type).toBe('TARGET_AUTH_FAILED');
    expect(f.message).toMatch(/refused the credentials/);
    expect(f.message).not.toContain('not-the-password');
    expect(await listBackups(config, storeRegistry(config), 'wrong-password')).toEqual([]);
  });

  it('reports an unreachable target clearly', async () => {
    const f = await failureOf(backup('nowhere'));
    expect(f.type).toBe('TARGET_UNREACHABLE');
    expect(f.message).toContain('127.0.0.1:1');
  });

  it('reports a target whose own last BGSAVE failed, and fails bgsave-copy on it', async () => {
    const c = plain.client();
    const gone = mkdtempSync(path.join(os.tmpdir(), 'rr-gone-'));
    const [, oldDir] = (await c.config('GET', 'dir')) as string[];
    await c.config('SET', 'dir', gone);
    rmSync(gone, { recursive: true });
    await c.bgsave();
    for (let i = 0; i < 50 && !/rdb_last_bgsave_status:err/.test(await c.info('persistence')); i++)
      await new Promise((r) => setTimeout(r, 100));
    try {
      const f = await failureOf(backup('plain-bgsave'));
      expect(f.type).toBe('BGSAVE_FAILED');
      expect(f.message).toMatch(/rdb_last_bgsave_status:err/);
      // The replication capture does not need the server's disk, so it still works, and says what it saw.
      await c.config('SET', 'repl-diskless-sync', 'yes');
      const alt = parseConfig(configText(`  plain-repl:\n    url: ${plain.url}\n    destinations: [disk]\n`), configFile);
      const facts = await createActivities({ config: alt, stores: storeRegistry(alt) }).preflight('plain-repl');
      expect(facts.redis.rdbLastBgsaveStatus).toBe('err');
      expect(facts.redis.warnings.join(' ')).toMatch(/last BGSAVE failed/);
    } finally {
      await c.config('SET', 'dir', oldDir!);
    }
  });

  it('keeps the password out of the workflow history', async () => {
    const report = await backup('main');
    const history = await env.client.workflow.getHandle(report.manifest.workflow.workflowId).fetchHistory();
    const text = JSON.stringify(history, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v));
    expect(text).toContain('main');
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(s3.secretAccessKey);
  });

  it('applies retention after each backup: keepLast 2 leaves the two newest', async () => {
    await backup('main');
    await backup('main');
    const listed = await listBackups(config, storeRegistry(config), 'main');
    expect(listed).toHaveLength(2);
    expect(listed.every((e) => e.destinations.length === 2)).toBe(true);
  });

  it('makes `backups verify` fail on a stored copy with one flipped byte', async () => {
    const report = await backup('main');
    const cli = (...args: string[]) =>
      run('npx', ['tsx', 'cli/index.ts', '--config', configFile, ...args], { env: process.env }).then(
        (r) => ({ code: 0, out: r.stdout }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
      );
    expect((await cli('backups', 'verify', report.backupId)).code).toBe(0);
    const file = path.join(dir, 'backups', artifactKeys('main', report.backupId).data(report.manifest.artifact.file));
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    writeFileSync(file, bytes);
    const res = await cli('backups', 'verify', report.backupId);
    expect(res.code).toBe(7);
    expect(res.out).toMatch(/FAILED disk/);
    expect(res.out).toMatch(/ok +offsite/);
    const listed = await cli('--json', 'backups', 'list', 'main');
    expect(JSON.parse(listed.out).map((b: { backupId: string }) => b.backupId)).toContain(report.backupId);
  });
});
