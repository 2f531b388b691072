// The disaster-recovery runbook on real servers: the recovery point is chosen across destinations
// (off-site when the local copy is gone or damaged), --at picks the newest backup before a moment,
// and a recovery restores after approval, into the target or into another one (clone to staging).
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit } from '../../domain/audit';
import { restoreWorkDir } from '../../domain/restore/local-rdb';
import { storeRegistry } from '../../domain/storage';
import type { RecoverReport, RecoverStatus } from '../../common/drill-types';
import { artifactKeys, type BackupReport } from '../../common/types';
import { digestAll, fillDataset } from '../support/dataset';
import { runCli } from '../support/cli';
import { startRedis, type RedisProcess } from '../support/redis';
import { awaitingApproval, startRestoreEnv, type RestoreEnv } from '../support/restore-env';
import { startS3, type S3Server } from '../support/s3';
import { decide } from '../support/approvals';

let t: RestoreEnv;
let prod: RedisProcess;
let staging: RedisProcess;
let aof: RedisProcess;
let s3: S3Server;
let seq = 0;

beforeAll(async () => {
  prod = await startRedis();
  staging = await startRedis();
  aof = await startRedis({ args: ['--appendonly', 'yes'] });
  await aof.client().set('k', 'v');
  await fillDataset(prod.client(), { keys: 500 });
  s3 = await startS3();
  await s3.createBucket('offsite');
  process.env.DR_TEST_S3_KEY = s3.accessKeyId;
  process.env.DR_TEST_S3_SECRET = s3.secretAccessKey;
  t = await startRestoreEnv(
    'recover-test',
    () => `
  prod:
    url: ${prod.url}
    destinations: [disk, offsite]
    dataDir: ${prod.dir}
    restore: { approvers: [alice] }
  staging:
    url: ${staging.url}
    destinations: [disk]
    restore: { approvers: [alice] }
  aofbox:
    url: ${aof.url}
    destinations: [disk]
    dataDir: ${aof.dir}
  alias:
    url: redis://localhost:${prod.port}
    destinations: [disk]
    restore: { approvers: [alice] }
`,
    {
      storage: `  offsite: { type: s3, bucket: offsite, endpoint: "${s3.endpoint}", forcePathStyle: true, accessKeyId: env:DR_TEST_S3_KEY, secretAccessKey: env:DR_TEST_S3_SECRET }`,
    },
  );
});

afterAll(async () => {
  await t?.close();
  await prod?.stop();
  await staging?.stop();
  await aof?.stop();
  await s3?.stop();
});

/** Starts a recovery and, as `runbook dr` does, signs its restore's request (as requester) once there is one. */
const recover = async (args: Record<string, unknown>) => {
  const handle = await t.env.client.workflow.start('recoverRedis', {
    taskQueue: t.taskQueue,
    workflowId: `dr/test/${++seq}`,
    args: [{ reason: 'test recovery', requestedBy: 'requester', ...args }],
  });
  if (!args.dryRun) {
    void (async () => {
      for (let i = 0; i < 600; i++) {
        const s = await handle.query<RecoverStatus>('status').catch(() => undefined);
        if (s?.restoreWorkflowId && s.restoreRunId) {
          return decide(t.env.client.workflow.getHandle(s.restoreWorkflowId, s.restoreRunId), t.people.requester, 'request');
        }
        if (s && ['failed', 'cancelled', 'done', 'dry-run'].includes(s.step)) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    })().catch(() => undefined);
  }
  return handle;
};

const plan = async (args: Record<string, unknown>) => (await recover({ ...args, dryRun: true })).result() as Promise<RecoverReport>;

const localDir = (r: BackupReport) => path.join(t.dir, 'backups', artifactKeys('prod', r.backupId).dir);

describe('recoverRedis', () => {
  let b1: BackupReport;
  let b2: BackupReport;
  let b3: BackupReport;
  let betweenB1andB2: string;

  beforeAll(async () => {
    await prod.client().save(); // a dump.rdb in the data dir for the assessment to check
    b1 = await t.backup('prod');
    await new Promise((r) => setTimeout(r, 1100));
    betweenB1andB2 = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 1100));
    b2 = await t.backup('prod');
    b3 = await t.backup('prod');
  });

  it('assesses the target and chooses the newest backup, reading the local copy first', async () => {
    const r = await plan({ target: 'prod' });
    expect(r.outcome).toBe('dry-run');
    expect(r.assessment).toMatchObject({ target: 'prod', reachable: true, role: 'master', aofEnabled: false });
    expect(r.assessment.dbsize).toBeGreaterThan(500);
    expect(r.assessment.files.map((f) => f.name).join()).toContain('redis-check-rdb');
    expect(r.point).toMatchObject({ backupId: b3.backupId, destination: 'disk' });
    expect(r.rpo!.measuredMs).toBeGreaterThanOrEqual(0);
  });

  it('takes the off-site copy when the local copy is corrupt, and says why the local one was rejected', async () => {
    const file = path.join(localDir(b3), b3.manifest.artifact.file);
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1] ^= 1;
    writeFileSync(file, bytes);
    const r = await plan({ target: 'prod' });
    expect(r.point).toMatchObject({ backupId: b3.backupId, destination: 'offsite' });
    expect(r.point!.considered).toEqual([
      expect.objectContaining({
        backupId: b3.backupId,
        destination: 'disk',
        ok: false,
        detail: expect.stringMatching(/checksum mismatch|zstd|decompress/i),
      }),
      expect.objectContaining({ backupId: b3.backupId, destination: 'offsite', ok: true }),
    ]);
  });

  it('takes the off-site copy when the local copy is deleted', async () => {
    rmSync(localDir(b3), { recursive: true });
    const r = await plan({ target: 'prod' });
    expect(r.point).toMatchObject({ backupId: b3.backupId, destination: 'offsite' });
    expect(r.point!.considered[0]).toMatchObject({ destination: 'disk', ok: false, detail: expect.stringContaining('no manifest') });
  });

  it('with --at, chooses the newest backup taken before that moment', async () => {
    const r = await plan({ target: 'prod', at: betweenB1andB2 });
    expect(r.point!.backupId).toBe(b1.backupId);
    expect(r.rpo!.measuredMs).toBe(Date.parse(betweenB1andB2) - Date.parse(b1.manifest.createdAt));
    const none = await recover({ target: 'prod', at: '2001-01-01T00:00:00Z', dryRun: true });
    const err = await none.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String((err as WorkflowFailedError).cause?.message)).toMatch(
      /no backup of prod taken before 2001-01-01T00:00:00Z has a copy that verifies/,
    );
  });

  it('with --from, recovers that backup, and a plan leaves no copy of it on the worker', async () => {
    expect((await plan({ target: 'prod', from: b2.backupId })).point!.backupId).toBe(b2.backupId);
    expect(existsSync(path.join(restoreWorkDir(), b2.backupId))).toBe(false);
  });

  it('recovers after complete data loss: approval, restore, verification, RTO and RPO', async () => {
    const before = await digestAll(prod.client());
    await prod.client().flushall();
    const handle = await recover({ target: 'prod', from: b2.backupId });
    const restore = t.env.client.workflow.getHandle('restore/prod');
    await waitForChild(handle);
    await awaitingApproval(restore);
    await decide(restore, t.people.alice, 'approve');
    const r = (await handle.result()) as RecoverReport;
    expect(r.outcome).toBe('recovered');
    expect(r.restore?.outcome).toBe('restored');
    expect(await digestAll(prod.client())).toEqual(before);
    expect(r.rto!.measuredMs).toBeGreaterThan(0);
    expect(r.rto!.withoutApprovalMs).toBeLessThanOrEqual(r.rto!.measuredMs);
    expect(r.rpo!.met).toBe(true);
    // The trail holds the recovery and, within it, the restore and its approval.
    const trail = (await readAudit(t.config, storeRegistry(t.config), 'prod')).filter(
      (e) => e.workflowId === handle.workflowId || e.workflowId === 'restore/prod',
    );
    expect(trail.map((e) => `${e.action} ${e.event}`)).toEqual(
      expect.arrayContaining(['recover requested', 'restore requested', 'restore approved', 'restore restored', 'recover recovered']),
    );
    expect(trail.find((e) => e.event === 'recovered')!.detail).toMatch(new RegExp(`^from ${b2.backupId}: RTO \\d+ s`));
  });

  it('clones production to staging with --to, leaving production alone', async () => {
    const prodBefore = await digestAll(prod.client());
    const handle = await recover({ target: 'prod', to: 'staging', from: b2.backupId });
    // Approved through the recovery's own id: the CLI finds its restore.
    const approved = await cli('approve', handle.workflowId, '--key', t.people.alice.keyFile, '--yes');
    expect(approved.stderr).toBe('');
    expect(approved.stdout).toContain('approved restore/staging as alice (key SHA256:');
    const r = (await handle.result()) as RecoverReport;
    expect(r).toMatchObject({ outcome: 'recovered', to: 'staging' });
    expect(await digestAll(staging.client())).toEqual(prodBefore);
    expect(await digestAll(prod.client())).toEqual(prodBefore);
    // Its id approves nothing more once it has ended.
    const late = await cli('approve', handle.workflowId, '--key', t.people.alice.keyFile, '--yes');
    expect(late.status).toBe(9);
    expect(late.stderr).toContain('is completed: nothing waits for approval');
  });

  it('cancelled while its restore awaits approval: the restore is cancelled too, nothing changed', async () => {
    const before = await digestAll(staging.client());
    const handle = await recover({ target: 'prod', to: 'staging', from: b1.backupId });
    await waitForChild(handle);
    const restore = t.env.client.workflow.getHandle('restore/staging');
    await awaitingApproval(restore);
    await handle.cancel();
    const err = (await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    )) as WorkflowFailedError;
    expect((err.cause as ApplicationFailure).details![0]).toMatchObject({ outcome: 'cancelled' });
    expect((await restore.describe()).status.name).toMatch(/CANCELLED|FAILED/);
    expect(await digestAll(staging.client())).toEqual(before);
  });

  it("checks an AOF target's files, and fails by its cause when no backup exists (exit 8)", async () => {
    const handle = await recover({ target: 'aofbox', dryRun: true });
    const err = (await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    )) as WorkflowFailedError;
    const failure = err.cause as ApplicationFailure;
    expect(failure.type).toBe('BACKUP_NOT_FOUND');
    const r = failure.details![0] as RecoverReport;
    expect(r.assessment).toMatchObject({ reachable: true, aofEnabled: true });
    expect(r.assessment.files).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: expect.stringMatching(/^redis-check-aof /), ok: true })]),
    );
    const cliRun = await cli('dr', 'aofbox', '--reason', 'no backups yet', '--dry-run');
    expect(cliRun.status).toBe(8);
    expect(cliRun.stdout).toContain('redis-check-aof');
  });

  it('refuses to restore a server over itself under another name', async () => {
    const handle = await recover({ target: 'prod', to: 'alias', from: b2.backupId });
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String((err as WorkflowFailedError).cause?.message)).toMatch(/prod and alias are the same Redis server/);
  });

  it('prints the plan from the command line, and fails with exit 3 for an unknown --to', async () => {
    const ok = await cli('dr', 'prod', '--reason', 'cli plan', '--dry-run', '--at', betweenB1andB2);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain(`recovery point: ${b1.backupId}`);
    expect(ok.stdout).toContain('DRY-RUN');
    const bad = await cli('dr', 'prod', '--reason', 'cli plan', '--to', 'nowhere');
    expect(bad.status).toBe(3);
    expect(bad.stderr).toContain('no target named "nowhere"');
    const both = await cli('dr', 'prod', '--reason', 'x y z', '--at', betweenB1andB2, '--from', b1.backupId);
    expect(both.status).toBe(2);
  });
});

const cli = (...args: string[]) => runCli(t.configFile, ...args);

async function waitForChild(handle: { query<T>(n: string): Promise<T> }): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const s = await handle.query<{ restoreWorkflowId?: string; step: string }>('status');
    if (s.restoreWorkflowId) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the recovery never reached its restore');
}
