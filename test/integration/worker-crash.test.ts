// A worker killed with SIGKILL in the middle of an upload: a second worker finishes the backup, and
// exactly one valid backup is listed, with no partial file left anywhere.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { defaultPayloadConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { listBackups } from '../../domain/catalog';
import { storeRegistry } from '../../domain/storage';
import { verifyCopy } from '../../domain/verify';
import { parseConfig, type Config } from '../../common/config';
import { artifactKeys, type BackupReport } from '../../common/types';
import { startRedis, type RedisProcess } from '../support/redis';
import { startS3, type S3Server } from '../support/s3';
import { signingKey } from '../support/signing';
import { startTemporal } from '../support/temporal';

let env: TestWorkflowEnvironment;
let s3: S3Server;
let redis: RedisProcess;
let dir: string;
let configFile: string;
let config: Config;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rr-crash-'));
  [env, s3, redis] = await Promise.all([startTemporal(), startS3(), startRedis()]);
  await s3.createBucket('crash');
  // 3,000 values of 16 KiB, saved at 2 ms a key: a transfer of several seconds to be killed in.
  const c = redis.client();
  const p = c.pipeline();
  for (let i = 0; i < 3000; i++) p.set(`doc:${i}`, Buffer.alloc(16384, i % 251).fill(String(i), 0, 8));
  await p.exec();
  await c.config('SET', 'rdb-key-save-delay', '2000');
  const text = `
temporal: { address: "${env.address}", taskQueue: crash-test }
${signingKey(dir).yaml}storage:
  disk: { type: local, path: ${dir}/backups }
  offsite: { type: s3, bucket: crash, endpoint: "${s3.endpoint}", forcePathStyle: true, accessKeyId: env:CRASH_S3_KEY, secretAccessKey: env:CRASH_S3_SECRET, partSizeMiB: 5 }
targets:
  slow:
    url: ${redis.url}
    destinations: [disk, offsite]
`;
  configFile = path.join(dir, 'runbook.yaml');
  writeFileSync(configFile, text);
  process.env.CRASH_S3_KEY = s3.accessKeyId;
  process.env.CRASH_S3_SECRET = s3.secretAccessKey;
  config = parseConfig(text, configFile);
});

afterAll(async () => {
  for (const w of workers) w.kill('SIGKILL');
  await Promise.all([env?.teardown(), s3?.stop(), redis?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

function startWorker(): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/index.ts', '--config', configFile, 'worker'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: process.env,
  });
  workers.push(child);
  return child;
}

function partialFiles(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.includes('.partial-'));
}

async function heartbeatBytes(workflowId: string): Promise<number> {
  const d = await env.client.workflow.getHandle(workflowId).describe();
  const payload = d.raw.pendingActivities?.[0]?.heartbeatDetails?.payloads?.[0];
  return payload ? (defaultPayloadConverter.fromPayload<{ bytes?: number }>(payload).bytes ?? 0) : 0;
}

it('finishes a backup whose worker was killed mid-upload, leaving exactly one valid backup', { timeout: 180_000 }, async () => {
  const first = startWorker();
  const workflowId = `backup/slow/crash-${Date.now()}`;
  const handle = await env.client.workflow.start('backupRedis', { taskQueue: 'crash-test', workflowId, args: [{ target: 'slow' }] });

  // Mid-upload: the heartbeat reports bytes (throttled by the SDK, so maybe late), or the local copy's
  // temp file is already being written.
  const uploading = async () => (await heartbeatBytes(workflowId)) > 0 || partialFiles(path.join(dir, 'backups', 'slow')).length > 0;
  const deadline = Date.now() + 60_000;
  while (!(await uploading())) {
    expect(Date.now()).toBeLessThan(deadline);
    await new Promise((r) => setTimeout(r, 100));
  }
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));
  expect(await listBackups(config, storeRegistry(config), 'slow')).toEqual([]);

  startWorker();
  const report = (await handle.result()) as BackupReport;
  expect(report.ok).toBe(true);

  const listed = await listBackups(config, storeRegistry(config), 'slow');
  expect(listed.map((b) => b.backupId)).toEqual([report.backupId]);
  expect(listed[0]!.destinations.sort()).toEqual(['disk', 'offsite']);
  expect(report.manifest.rdb.keys).toBe(3000);

  // Nothing partial: only the finished files of this one backup, on disk and in the bucket.
  const files = readdirSync(path.join(dir, 'backups', 'slow', report.backupId)).sort();
  expect(files).toEqual(['dump.rdb.zst', 'manifest.json', 'report.json', 'report.txt', 'run.json']);
  const objects = await s3.client().send(new ListObjectsV2Command({ Bucket: 'crash' }));
  expect((objects.Contents ?? []).every((o) => o.Key!.startsWith(`slow/${report.backupId}/`))).toBe(true);

  const stores = storeRegistry(config);
  const key = artifactKeys('slow', report.backupId).data(report.manifest.artifact.file);
  for (const d of ['disk', 'offsite']) {
    const check = await verifyCopy(stores(d), key, { ...report.manifest.artifact, rdb: report.manifest.rdb }, {});
    expect(check.ok, check.detail).toBe(true);
  }
});
