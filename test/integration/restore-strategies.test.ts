// The three ways of making a backup live, each on the kind of target it is for, and the rollback a
// failed verification triggers: on real Temporal and real redis-servers.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RestoreReport } from '../../common/restore-types';
import { toolPath } from '../../domain/tools';
import { digestAll, fillDataset } from '../support/dataset';
import { freePort, startRedis, waitLoaded, writeDaemonConf, type RedisProcess } from '../support/redis';
import { awaitingApproval, startRestoreEnv, type RestoreEnv } from '../support/restore-env';
import { decide } from '../support/approvals';

const PASSWORD_ENV = 'RR_STRATEGIES_TARGET_PASSWORD';
const PASSWORD = 'target-secret';

/** A redis-server that runs as a daemon, started and stopped by shell commands, as file-swap expects. */
interface Daemon {
  port: number;
  dir: string;
  conf: string;
  start(): Promise<void>;
  client(): Redis;
  kill(): void;
}

function daemon(port: number): Daemon {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rr-daemon-'));
  const conf = writeDaemonConf(dir, port, ['appendonly yes', 'appenddirname appendonlydir']);
  const clients: Redis[] = [];
  return {
    port,
    dir,
    conf,
    async start() {
      execFileSync(toolPath('redis-server'), [conf], { timeout: 10_000 });
      await waitLoaded(port, 10_000);
    },
    client() {
      const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
      c.on('error', () => {}); // refused while the runbook restarts the server; ioredis reconnects
      clients.push(c);
      return c;
    },
    kill() {
      for (const c of clients) c.disconnect();
      try {
        process.kill(Number(readFileSync(path.join(dir, 'redis.pid'), 'utf8').trim()), 'SIGKILL');
      } catch {
        // not running
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function shutdownNosave(c: Redis, port: number): Promise<void> {
  await c.call('SHUTDOWN', 'NOSAVE').catch(() => {}); // the connection drops: that is the answer
  const deadline = Date.now() + 10_000;
  for (;;) {
    const probe = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    const up = await probe.connect().then(
      () => true,
      () => false,
    );
    probe.disconnect();
    if (!up) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not stop`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function restoreApproved(target: string, backupId: string) {
  const handle = await t.startRestore({ target, from: backupId });
  await awaitingApproval(handle);
  await decide(handle, t.people.alice, 'approve', { comment: 'go' });
  return handle;
}

let t: RestoreEnv;
let aof: Daemon;
let plain: RedisProcess;
let tampered: RedisProcess;
let secured: RedisProcess;

beforeAll(async () => {
  process.env[PASSWORD_ENV] = PASSWORD;
  aof = daemon(await freePort());
  await aof.start();
  [plain, tampered, secured] = await Promise.all([startRedis(), startRedis(), startRedis({ password: PASSWORD })]);
  const cli = toolPath('redis-cli');
  t = await startRestoreEnv(
    'restore-strategies',
    () => `
  aof:
    url: redis://127.0.0.1:${aof.port}
    destinations: [disk]
    restore:
      strategy: file-swap
      approvers: [alice]
      pauseLimit: 10s
      fileSwap: { start: "${toolPath('redis-server')} ${aof.conf} $REDIS_EXTRA_ARGS", timeout: 30s }
  plain:
    url: ${plain.url}
    destinations: [disk]
    restore: { strategy: logical, approvers: [alice] }
  tampered:
    url: ${tampered.url}
    destinations: [disk]
    restore:
      approvers: [alice]
      pauseWrites: false
      afterMakeLive: "${cli} -p ${tampered.port} flushall && ${cli} -p ${tampered.port} set tampered yes"
  secured:
    url: ${secured.url}
    password: env:${PASSWORD_ENV}
    destinations: [disk]
    restore: { strategy: replica-promote, approvers: [alice], pauseLimit: 10s }
`,
  );
});

afterAll(async () => {
  await t?.close();
  aof?.kill();
  await Promise.all([plain?.stop(), tampered?.stop(), secured?.stop()]);
  delete process.env[PASSWORD_ENV];
});

describe('restore strategies', () => {
  it('file-swap restores an AOF target, turns AOF back on, and the restored data survives a restart', { timeout: 60_000 }, async () => {
    const c = aof.client();
    await fillDataset(c, { keys: 300 });
    await c.set('swap:key', 'original');
    const backedUp = await digestAll(c);
    const backup = await t.backup('aof');

    await c.set('swap:key', 'changed');
    await c.set('swap:added', 'after the backup');
    await c.del('user:1', 'queue:jobs');
    // The changes are in the AOF, which must not win over the backup at the next start.
    expect((await c.info('persistence')).includes('aof_enabled:1')).toBe(true);

    const handle = await restoreApproved('aof', backup.backupId);
    const report = (await handle.result()) as RestoreReport;
    expect(report.outcome).toBe('restored');
    expect(report.makeLive?.strategy).toBe('file-swap');
    expect(report.makeLive?.detail).toMatch(/AOF re-enabled/);
    expect(report.verification?.every((v) => v.ok)).toBe(true);

    const after = aof.client();
    expect(await digestAll(after)).toEqual(backedUp);
    expect(await after.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);

    // A plain restart, from the config file alone: what loads is the AOF, which must hold the backup.
    await shutdownNosave(after, aof.port);
    await aof.start();
    const restarted = aof.client();
    expect(await digestAll(restarted)).toEqual(backedUp);
    expect(await restarted.get('swap:key')).toBe('original');
    expect(await restarted.exists('swap:added')).toBe(0);
  });

  it('logical restores the backup key by key: same contents, later keys gone, TTLs kept', { timeout: 60_000 }, async () => {
    const c = plain.client();
    await fillDataset(c, { keys: 300 });
    await c.set('logical:ttl', 'with a TTL', 'EX', 3600);
    const backedUp = await digestAll(c);
    const backup = await t.backup('plain');

    await c.set('logical:added', 'after the backup');
    await c.set('user:2', 'changed');
    await c.persist('logical:ttl');
    await c.select(1);
    await c.set('db1:added', 'x');
    await c.select(0);

    const handle = await restoreApproved('plain', backup.backupId);
    const report = (await handle.result()) as RestoreReport;
    expect(report.outcome).toBe('restored');
    expect(report.makeLive?.strategy).toBe('logical');
    expect(report.plan.pauseWrites).toBe(false);

    const after = plain.client();
    expect(await digestAll(after)).toEqual(backedUp);
    expect(await after.exists('logical:added')).toBe(0);
    expect(await after.ttl('logical:ttl')).toBeGreaterThan(0);
    expect(await after.ttl('cache:ttl')).toBeGreaterThan(0);
    expect(await after.ttl('user:2')).toBe(-1);
    await after.select(1);
    expect(await after.exists('db1:added')).toBe(0);
  });

  it('rolls the target back to its pre-restore data when verification fails', { timeout: 60_000 }, async () => {
    const c = tampered.client();
    await fillDataset(c, { keys: 300 });
    const backup = await t.backup('tampered');
    await c.set('user:3', 'changed before the restore');
    await c.set('pre:restore', 'only here');
    const preRestore = await digestAll(c);

    const handle = await restoreApproved('tampered', backup.backupId);
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const failure = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure.type).toBe('RESTORE_FAILED');
    expect(failure.message).toMatch(/at "verify"/);
    expect(failure.message).toMatch(/key count/);
    expect(failure.message).toMatch(/rolled back to its pre-restore data/);
    const report = failure.details?.[0] as RestoreReport;
    expect(report.outcome).toBe('failed');
    expect(report.verification?.find((v) => v.name === 'key count')?.ok).toBe(false);
    expect(report.compensations).toContainEqual(
      expect.objectContaining({ name: `roll back to the safety backup ${report.safetyBackupId}`, ok: true }),
    );
    expect(report.compensations.every((x) => x.ok)).toBe(true);

    const after = tampered.client();
    expect(await digestAll(after)).toEqual(preRestore);
    expect(await after.exists('tampered')).toBe(0);
    expect(await after.get('pre:restore')).toBe('only here');
    expect((await after.info('replication')).includes('role:master')).toBe(true);
  });

  it('replica-promote onto a password-protected target leaves it a master with its own masterauth', { timeout: 60_000 }, async () => {
    const c = secured.client();
    await c.config('SET', 'masterauth', 'the-old-masterauth');
    await fillDataset(c, { keys: 300 });
    const backedUp = await digestAll(c);
    const backup = await t.backup('secured');
    await c.set('secured:added', 'after the backup');
    await c.del('user:4');

    const handle = await restoreApproved('secured', backup.backupId);
    const report = (await handle.result()) as RestoreReport;
    expect(report.outcome).toBe('restored');
    expect(report.makeLive?.strategy).toBe('replica-promote');

    const after = secured.client();
    expect(await digestAll(after)).toEqual(backedUp);
    expect(await after.config('GET', 'masterauth')).toEqual(['masterauth', 'the-old-masterauth']);
    expect((await after.info('replication')).includes('role:master')).toBe(true);
    // Writes are back (CLIENT UNPAUSE ran) and the target is not read-only.
    await after.set('secured:write', 'ok');
  });
});
