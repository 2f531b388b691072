// How the runbooks end when something around them fails, on real servers: a download that stalls in
// a restore's plan or a recovery's choice of point is given up and retried within the minute, and a
// failure after a verified restore (its audit trail unwritable) leaves the restore done, reported with
// the failure, and resumes no writer twice.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecoverReport } from '../../common/drill-types';
import type { RestoreReport } from '../../common/restore-types';
import { fillDataset } from '../support/dataset';
import { startRedis, type RedisProcess } from '../support/redis';
import { awaitingApproval, startRestoreEnv, type RestoreEnv } from '../support/restore-env';
import { startS3, type S3Server } from '../support/s3';
import { stallingProxy, type StallingProxy } from '../support/stalling-proxy';
import { activityAttempt } from '../support/history';
import { decide } from '../support/approvals';

let t: RestoreEnv;
let remote: RedisProcess;
let local: RedisProcess;
let s3: S3Server;
let proxy: StallingProxy;

beforeAll(async () => {
  [remote, local, s3] = await Promise.all([startRedis(), startRedis(), startS3()]);
  await s3.createBucket('offsite');
  proxy = await stallingProxy(Number(new URL(s3.endpoint).port));
  process.env.RESILIENCE_S3_KEY = s3.accessKeyId;
  process.env.RESILIENCE_S3_SECRET = s3.secretAccessKey;
  t = await startRestoreEnv(
    'resilience',
    (dir) => `
  remote:
    url: ${remote.url}
    destinations: [offsite]
    compression: none
    restore: { approvers: [alice] }
  local:
    url: ${local.url}
    destinations: [disk]
    restore:
      approvers: [alice]
      writers:
        - type: command
          name: app
          pause: "echo pause >> ${dir}/app.events"
          # The last undo of the restore: it also makes the audit trail unwritable (a file where its folder was).
          resume: "echo resume >> ${dir}/app.events && rm -rf ${dir}/backups/local/audit && touch ${dir}/backups/local/audit"
`,
    {
      storage: `  offsite:
    type: s3
    bucket: offsite
    endpoint: http://127.0.0.1:${proxy.port}
    forcePathStyle: true
    stallTimeout: 3s
    accessKeyId: env:RESILIENCE_S3_KEY
    secretAccessKey: env:RESILIENCE_S3_SECRET`,
    },
  );
  // About 2 MiB of RDB that nothing compresses: its download is well past the proxy's stall point.
  await fillDataset(remote.client(), { keys: 200 });
  await remote.client().set('big', randomBytes(2 << 20));
});

afterAll(async () => {
  await t?.close();
  await proxy?.close();
  await Promise.all([remote?.stop(), local?.stop(), s3?.stop()]);
});

const lastAttempt = (workflowId: string, activity: string) => activityAttempt(t.env.client, workflowId, activity);

describe('a stalled download', () => {
  it("in a restore's plan is given up and retried within the minute", { timeout: 120_000 }, async () => {
    await t.backup('remote');
    proxy.stallNext(1);
    const started = Date.now();
    const handle = await t.startRestore({ target: 'remote', from: 'latest', dryRun: true });
    const report = (await handle.result()) as RestoreReport;
    expect(report.outcome).toBe('dry-run');
    expect(proxy.stalled()).toBe(1);
    expect(Date.now() - started).toBeLessThan(60_000);
    const plan = await lastAttempt(handle.workflowId, 'planRestore');
    expect(plan.attempt).toBe(2);
    expect(plan.lastFailure).toMatch(/nothing moved for 3 s/);
  });

  it("in a recovery's choice of point is given up and retried within the minute", { timeout: 120_000 }, async () => {
    const stalledBefore = proxy.stalled();
    proxy.stallNext(1);
    const started = Date.now();
    const handle = await t.env.client.workflow.start('recoverRedis', {
      taskQueue: t.taskQueue,
      workflowId: 'dr/resilience/stall',
      args: [{ target: 'remote', reason: 'stall test', requestedBy: 'requester', dryRun: true }],
    });
    const report = (await handle.result()) as RecoverReport;
    expect(report.outcome).toBe('dry-run');
    expect(report.point?.destination).toBe('offsite');
    expect(proxy.stalled()).toBe(stalledBefore + 1);
    expect(Date.now() - started).toBeLessThan(60_000);
    const choose = await lastAttempt(handle.workflowId, 'chooseRecoveryPoint');
    expect(choose.attempt).toBe(2);
    expect(choose.lastFailure).toMatch(/nothing moved for 3 s/);
  });
});

describe('a failure after a verified restore', () => {
  it('reports the restore as done, with the failure, and resumes nothing twice', { timeout: 120_000 }, async () => {
    const events = path.join(t.dir, 'app.events');
    const c = local.client();
    await c.set('k', 'backed-up');
    const backup = await t.backup('local');
    await c.set('k', 'changed');
    const handle = await t.startRestore({ target: 'local', from: backup.backupId });
    await awaitingApproval(handle);
    await decide(handle, t.people.alice, 'approve');
    const report = (await handle.result()) as RestoreReport;

    expect(report.outcome).toBe('restored');
    expect(await c.get('k')).toBe('backed-up');
    expect(report.targetState).toMatch(/^restored from .* and verified; writers resumed$/);
    expect(report.compensations).toEqual([]);
    expect(report.warnings).toEqual([expect.stringMatching(/^the audit record of the restore was not written: /)]);
    expect(readFileSync(events, 'utf8').trim().split('\n')).toEqual(['pause', 'resume']);
    // CLIENT UNPAUSE ran once too: a write goes through at once.
    await c.set('after', '1');
    rmSync(path.join(t.dir, 'backups/local/audit'), { force: true });
    expect(existsSync(path.join(t.dir, 'backups/local/audit'))).toBe(false);
    writeFileSync(events, '');
  });
});
