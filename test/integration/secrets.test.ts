// Secrets stay secrets: unique values are planted as the Redis password, the encryption key, the S3
// secret and the payload key, a backup runs through the real worker process and CLI, and none of the
// values may appear in the raw workflow history, the worker's and the CLI's output, or the artifacts.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateIdentity } from '../../domain/crypto/age';
import { fillDataset } from '../support/dataset';
import { startRedis, type RedisProcess } from '../support/redis';
import { startS3, type S3Server } from '../support/s3';
import { signingKey } from '../support/signing';
import { startTemporal } from '../support/temporal';

const planted = {
  redisPassword: `redis-pw-${randomBytes(8).toString('hex')}`,
  encryptionKey: generateIdentity(),
  s3Secret: `s3-secret-${randomBytes(8).toString('hex')}`,
  payloadKey: randomBytes(32).toString('base64'),
};
let env: TestWorkflowEnvironment;
let redis: RedisProcess;
let s3: S3Server;
let dir: string;
let configFile: string;
let worker: ChildProcess;
let workerOutput = '';

const secretEnv = () => ({
  ...process.env,
  SECRETS_TEST_REDIS: planted.redisPassword,
  SECRETS_TEST_KEY: planted.encryptionKey,
  SECRETS_TEST_S3_KEY: s3?.accessKeyId,
  SECRETS_TEST_S3_SECRET: planted.s3Secret,
  SECRETS_TEST_PAYLOAD: planted.payloadKey,
});

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rr-secrets-'));
  [env, redis, s3] = await Promise.all([startTemporal(), startRedis({ password: planted.redisPassword }), startS3(planted.s3Secret)]);
  await s3.createBucket('secret-backups');
  await fillDataset(redis.client(), { keys: 100 });
  configFile = path.join(dir, 'runbook.yaml');
  writeFileSync(
    configFile,
    `
temporal: { address: "${env.address}", taskQueue: secrets-test, payloadKeys: [{ id: k1, key: env:SECRETS_TEST_PAYLOAD }] }
${signingKey(dir).yaml}storage:
  disk: { type: local, path: ${dir}/backups }
  offsite: { type: s3, bucket: secret-backups, endpoint: "${s3.endpoint}", forcePathStyle: true, accessKeyId: env:SECRETS_TEST_S3_KEY, secretAccessKey: env:SECRETS_TEST_S3_SECRET }
encryption:
  keys: { k1: env:SECRETS_TEST_KEY }
targets:
  vault:
    url: ${redis.url}
    password: env:SECRETS_TEST_REDIS
    destinations: [disk, offsite]
    encrypt: k1
`,
  );
  worker = spawn(process.execPath, ['--import', 'tsx', 'cli/index.ts', '--config', configFile, 'worker'], {
    env: { ...secretEnv(), RUNBOOK_LOG_LEVEL: 'DEBUG' },
  });
  worker.stdout!.on('data', (d: Buffer) => (workerOutput += d.toString()));
  worker.stderr!.on('data', (d: Buffer) => (workerOutput += d.toString()));
});

afterAll(async () => {
  worker?.kill('SIGKILL');
  await Promise.all([env?.teardown(), redis?.stop(), s3?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

function cli(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/index.ts', '--config', configFile, ...args], { env: secretEnv() });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

it('keeps every planted secret out of history, logs, CLI output and artifacts', { timeout: 120_000 }, async () => {
  const backup = await cli('backup', 'vault', '--wait');
  expect(backup.code, backup.err + workerOutput).toBe(0);
  expect(backup.out).toMatch(/backup vault-\S+ of vault: OK/);
  const listed = await cli('--json', 'backups', 'list', 'vault');
  const [{ backupId }] = JSON.parse(listed.out) as { backupId: string }[];
  const shown = await cli('backups', 'show', backupId!);
  const verified = await cli('backups', 'verify', backupId!);
  expect(verified.code, verified.out).toBe(0);

  // The raw history, as stored by the server: every payload is encrypted by the codec.
  const workflowId = JSON.parse((await cli('--json', 'backups', 'show', backupId!)).out).manifest.workflow.workflowId as string;
  const status = await cli('status', workflowId);
  expect(status.out).toContain('COMPLETED'); // decoded transparently by the CLI
  const raw = await env.client.workflowService.getWorkflowExecutionHistory({
    namespace: 'default',
    execution: { workflowId },
  });
  const rawText = JSON.stringify(raw, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v));
  const b64 = (t: string) => Buffer.from(t).toString('base64');
  expect(rawText.includes(b64('binary/encrypted')), 'payloads are encrypted').toBe(true);
  expect(rawText.includes(b64('json/plain')), 'no payload in the clear').toBe(false);

  const local = filesUnder(path.join(dir, 'backups'));
  const objects = await s3.client().send(new ListObjectsV2Command({ Bucket: 'secret-backups' }));
  const remote = await Promise.all(
    (objects.Contents ?? []).map(async (o) => {
      const res = await s3.client().send(new GetObjectCommand({ Bucket: 'secret-backups', Key: o.Key! }));
      return Buffer.from(await res.Body!.transformToByteArray()).toString('latin1');
    }),
  );
  const haystacks: Record<string, string> = {
    history: rawText,
    worker: workerOutput,
    cli: [backup, listed, shown, verified, status].map((r) => r.out + r.err).join('\n'),
    local: local.map((f) => readFileSync(f, 'latin1')).join('\n'),
    s3: remote.join('\n'),
  };
  for (const [where, text] of Object.entries(haystacks)) {
    for (const [what, value] of Object.entries(planted)) {
      expect(text.includes(value) || text.includes(Buffer.from(value).toString('base64')), `${what} found in ${where}`).toBe(false);
    }
  }

  // Local artifacts: files 0600, folders 0700.
  for (const f of local) expect(statSync(f).mode & 0o777, f).toBe(0o600);
  expect(statSync(path.join(dir, 'backups', 'vault', backupId!)).mode & 0o777).toBe(0o700);
});
