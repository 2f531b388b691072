// The restore runbook's gate and its main path, on real servers: nothing happens without approval,
// and an approved restore brings the backed-up data back exactly.
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RestoreReport, RestoreStatus } from '../../common/restore-types';
import { decide } from '../support/approvals';
import { readAudit } from '../../domain/audit';
import { storeRegistry } from '../../domain/storage';
import { digestAll, fillDataset } from '../support/dataset';
import { startRedis, type RedisProcess } from '../support/redis';
import { awaitingApproval, startRestoreEnv, type RestoreEnv } from '../support/restore-env';

let t: RestoreEnv;
let redis: RedisProcess;
let gated: RedisProcess;

beforeAll(async () => {
  [redis, gated] = await Promise.all([startRedis(), startRedis()]);
  t = await startRestoreEnv(
    'restore-test',
    () => `
  main:
    url: ${redis.url}
    destinations: [disk]
    restore: { approvers: [alice, bob, requester], pauseLimit: 10s }
  gated:
    url: ${gated.url}
    destinations: [disk]
    restore: { approvers: [alice, bob], approvals: 2, approvalTimeout: 3s }
`,
  );
});

afterAll(async () => {
  await t?.close();
  await Promise.all([redis?.stop(), gated?.stop()]);
});

describe('restoreRedis', () => {
  it("brings back the backed-up value and removes keys added since (the seeds' own check)", { timeout: 120_000 }, async () => {
    const c = redis.client();
    await fillDataset(c, { keys: 200 });
    await c.set('test_key', 'original');
    const before = await digestAll(c);
    const backup = await t.backup('main');

    await c.set('test_key', 'changed');
    await c.set('added:after', 'x');
    const handle = await t.startRestore({ target: 'main', from: backup.backupId });
    await awaitingApproval(handle);
    await decide(handle, t.people.alice, 'approve', { comment: 'go' });
    const report = (await handle.result()) as RestoreReport;

    expect(report.outcome).toBe('restored');
    expect(await c.get('test_key')).toBe('original');
    expect(await c.exists('added:after')).toBe(0);
    expect(await digestAll(c)).toEqual(before);
    expect(report.decisions.map((d) => `${d.decision}:${d.approver}`)).toEqual(['approve:alice']);
    expect(report.requestedBy).toBe('requester');
    expect(report.safetyBackupId).toMatch(/^main-/);
    expect(report.verification?.every((v) => v.ok)).toBe(true);
    expect(report.steps.map((s) => s.name)).toEqual([
      'plan',
      'safety capture',
      'quiesce writers',
      'safety backup',
      'make live',
      'after make-live check',
      'verify',
      'resume writers',
      'store safety backup',
    ]);
    expect((await c.info('replication')).includes('role:master')).toBe(true);
    // CLIENT UNPAUSE ran: a write goes through at once.
    await c.set('after:restore', '1');

    // The audit trail has the request, the decision with its identity, and the outcome.
    const trail = await readAudit(t.config, storeRegistry(t.config), 'main');
    expect(trail.map((e) => `${e.event}:${e.actor}`)).toEqual(['requested:requester', 'approved:alice', 'restored:requester']);
    expect(trail[1]).toMatchObject({ workflowId: 'restore/main', detail: 'go' });
  });

  it('prints the plan on --dry-run and touches nothing', async () => {
    const c = redis.client();
    await c.set('dry', 'before');
    const backup = await t.backup('main');
    await c.set('dry', 'after');
    const handle = await t.env.client.workflow.start('restoreRedis', {
      taskQueue: t.taskQueue,
      workflowId: `restore-plan/main/${Date.now()}`,
      args: [{ target: 'main', from: backup.backupId, reason: 'look', dryRun: true }],
    });
    const report = (await handle.result()) as RestoreReport;
    expect(report.outcome).toBe('dry-run');
    expect(report.plan.backup.backupId).toBe(backup.backupId);
    expect(report.plan.current.role).toBe('master');
    expect(await c.get('dry')).toBe('after');
  });

  it('refuses an approver not in the list and the requester approving their own restore, counting nothing', async () => {
    const c = gated.client();
    await c.set('k', 'v1');
    const backup = await t.backup('gated');
    await c.set('k', 'v2');
    const handle = await t.startRestore({ target: 'gated', from: backup.backupId, requestAs: 'alice' });
    await awaitingApproval(handle);
    await expect(decide(handle, t.people.mallory, 'approve')).rejects.toThrow(WorkflowUpdateFailedError);
    const self = await decide(handle, t.people.alice, 'approve').catch((e: WorkflowUpdateFailedError) => e);
    expect((self as WorkflowUpdateFailedError).cause?.message).toMatch(/four eyes/);
    const status = await handle.query<RestoreStatus>('status');
    expect(status.decisions).toEqual([]);
    expect(status.refused.map((r) => r.why).join('\n')).toMatch(/mallory.*may not decide/);
    // Two approvals are required; one is not enough, and the run expires: nothing touched.
    await decide(handle, t.people.bob, 'approve');
    const report = (await handle.result()) as RestoreReport;
    expect(report.outcome).toBe('expired');
    expect(report.targetState).toMatch(/untouched/);
    expect(await c.get('k')).toBe('v2');
  });

  it('ends a rejected restore with the target untouched', async () => {
    const c = gated.client();
    await c.set('k', 'v3');
    const backup = await t.backup('gated');
    await c.set('k', 'v4');
    const handle = await t.startRestore({ target: 'gated', from: backup.backupId });
    await awaitingApproval(handle);
    await decide(handle, t.people.bob, 'reject', { comment: 'wrong backup' });
    const report = (await handle.result()) as RestoreReport;
    expect(report.outcome).toBe('rejected');
    expect(report.decisions[0]).toMatchObject({ approver: 'bob', decision: 'reject', comment: 'wrong backup' });
    expect(await c.get('k')).toBe('v4');
  });

  it('refuses a second restore of the same target while one runs', async () => {
    const backup = await t.backup('gated');
    const first = await t.startRestore({ target: 'gated', from: backup.backupId });
    await awaitingApproval(first);
    await expect(t.startRestore({ target: 'gated', from: backup.backupId })).rejects.toThrow(/already started|AlreadyStarted/i);
    await decide(first, t.people.alice, 'reject', { comment: 'test over' });
    await first.result();
  });
});
