// The restore's safety copy: followed from a snapshot taken before writers pause, sealed with them
// paused, durable on the worker before anything is replaced, stored as a signed backup afterwards. A
// failure after make-live rolls the target back to exactly the data it had when its writers paused
// (writes made between the snapshot and the pause included), for file-swap and replica-promote; a
// worker killed after the copy was sealed leaves it to the next worker, which rolls back from it and
// stores it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RestoreReport, RestoreStatus } from '../../common/restore-types';
import { workflowIds } from '../../common/workflow-ids';
import { listBackups } from '../../domain/catalog';
import { localRdb } from '../../domain/restore/local-rdb';
import { storeRegistry } from '../../domain/storage';
import { toolPath } from '../../domain/tools';
import { decide } from '../support/approvals';
import { digestAll, fillDataset } from '../support/dataset';
import { freePort, startRedis, waitLoaded, writeDaemonConf, type RedisProcess } from '../support/redis';
import { awaitingApproval, startRestoreEnv, type RestoreEnv } from '../support/restore-env';

const ROOT = path.resolve(import.meta.dirname, '../..');
const KILL_QUEUE = 'restore-safety-kill';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let t: RestoreEnv;
let swapDir: string;
let swapPort: number;
let swapConf: string;
let promote: RedisProcess;
let killed: RedisProcess;
let refusing: RedisProcess;
const PASSWORD_ENV = 'RR_SAFETY_COPY_PASSWORD';
const children: ChildProcess[] = [];
const clients: Redis[] = [];

function client(port: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
  c.on('error', () => {}); // refused while a file-swap restarts the server
  clients.push(c);
  return c;
}

async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * The application's writer: the controller's pause command stops it (a flag file) and waits until the
 * test has read the target's digest with it stopped; it is never resumed, so the data the target ends
 * with can be compared with that digest.
 */
const writerYaml = (dir: string, name: string) => `
      writers:
        - type: command
          name: app
          pause: ${JSON.stringify(`touch ${dir}/${name}.stop && while [ ! -f ${dir}/${name}.digested ]; do sleep 0.02; done`)}
          resume: "true"
          timeout: 20s`;

/** Writes w:<n> until the pause flag shows, then the digest of the paused data. */
function writeUntilPaused(dir: string, name: string, c: Redis): { paused: Promise<Record<string, string>>; writes: () => number } {
  let n = 0;
  const paused = (async () => {
    while (!existsSync(path.join(dir, `${name}.stop`))) {
      n++;
      await c.set(`w:${n}`, String(n));
      if (n % 7 === 0) await c.hset('w:hash', `f${n}`, String(n));
      await sleep(2);
    }
    const digest = await digestAll(c);
    writeFileSync(path.join(dir, `${name}.digested`), '');
    return digest;
  })();
  return { paused, writes: () => n };
}

/** The restore's failure: its type, message and report. */
async function failureOf(p: Promise<unknown>): Promise<{ type?: string | null; message: string; report: RestoreReport }> {
  const err = await p.then(
    () => expect.fail('the restore should not succeed'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return { type: cause.type, message: cause.message, report: cause.details?.[0] as RestoreReport };
}

/** The stored safety backup, loaded into a redis-server of its own: the data a person would restore. */
async function safetyBackupDigest(report: RestoreReport, runId: string): Promise<Record<string, string>> {
  const listed = await listBackups(t.config, storeRegistry(t.config), report.target);
  const safety = listed.find((b) => b.backupId === report.safetyBackupId);
  expect(safety, `${report.safetyBackupId} listed`).toBeDefined();
  expect(safety!.trust.state).toBe('trusted');
  expect(safety!.manifest.tags).toEqual(['pre-restore']);
  expect(safety!.manifest.workflow.workflowId).toBe(workflowIds.safetyBackup(report.target, runId));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rr-safety-load-'));
  await localRdb(storeRegistry(t.config), safety!.manifest, safety!.destinations, { dir });
  const loaded = await startRedis({ dir });
  try {
    return await digestAll(loaded.client());
  } finally {
    await loaded.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  swapDir = mkdtempSync(path.join(os.tmpdir(), 'rr-safety-swap-'));
  swapPort = await freePort();
  swapConf = writeDaemonConf(swapDir, swapPort, ['appendonly yes', 'appenddirname appendonlydir']);
  execFileSync(toolPath('redis-server'), [swapConf], { timeout: 10_000 });
  await waitLoaded(swapPort, 10_000);
  [promote, killed, refusing] = await Promise.all([startRedis(), startRedis(), startRedis()]);
  // A user who may read and write and take backups (SYNC), but not follow the target (PSYNC).
  process.env[PASSWORD_ENV] = 'runbook-secret';
  await refusing.client().call('ACL', 'SETUSER', 'runbook', 'on', '>runbook-secret', '~*', '&*', '+@all', '-psync');
  t = await startRestoreEnv(
    'restore-safety',
    (dir) => `
  swap:
    url: redis://127.0.0.1:${swapPort}
    destinations: [disk]
    restore:
      strategy: file-swap
      approvers: [alice]
      pauseLimit: 10s
      fileSwap: { start: "${toolPath('redis-server')} ${swapConf} $REDIS_EXTRA_ARGS", timeout: 30s }
      # A check of the application's that fails once the backup is live: the restore rolls back.
      afterMakeLive: "exit 3"${writerYaml(dir, 'swap')}
  promote:
    url: ${promote.url}
    destinations: [disk]
    restore:
      approvers: [alice]
      pauseLimit: 10s
      afterMakeLive: "exit 3"${writerYaml(dir, 'promote')}
  refusing:
    url: ${refusing.url}
    username: runbook
    password: env:${PASSWORD_ENV}
    destinations: [disk]
    restore:
      approvers: [alice]
      afterMakeLive: "exit 3"
  killed:
    url: ${killed.url}
    destinations: [disk]
    restore:
      approvers: [alice]
      afterMakeLive: "exit 3"
`,
  );
  mkdirSync(path.join(t.dir, 'kill'), { recursive: true });
  writeFileSync(
    path.join(t.dir, 'kill.yaml'),
    readFileSync(t.configFile, 'utf8').replace('taskQueue: restore-safety }', `taskQueue: ${KILL_QUEUE} }`),
  );
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const c of clients) c.disconnect();
  await t?.close();
  await Promise.all([promote?.stop(), killed?.stop(), refusing?.stop()]);
  delete process.env[PASSWORD_ENV];
  try {
    process.kill(Number(readFileSync(path.join(swapDir, 'redis.pid'), 'utf8').trim()), 'SIGKILL');
  } catch {
    // not running
  }
  rmSync(swapDir, { recursive: true, force: true });
});

describe('the safety copy', () => {
  for (const strategy of ['file-swap', 'replica-promote'] as const) {
    const name = strategy === 'file-swap' ? 'swap' : 'promote';
    it(
      `${strategy}: a failure after make-live rolls back to exactly the data of the pause, writes after the snapshot included`,
      { timeout: 90_000 },
      async () => {
        const port = name === 'swap' ? swapPort : promote.port;
        const c = client(port);
        await fillDataset(c, { keys: 400 });
        const backup = await t.backup(name);
        await c.set('user:1', 'changed after the backup');
        await c.set('added:after', 'x');
        // A slow snapshot: the writer's writes land after it, in the followed tail.
        await c.config('SET', 'rdb-key-save-delay', '500');
        const writer = writeUntilPaused(t.dir, name, client(port));

        const handle = await t.startRestore({ target: name, from: backup.backupId });
        await awaitingApproval(handle);
        await decide(handle, t.people.alice, 'approve');
        const atPause = await writer.paused;
        const f = await failureOf(handle.result());
        const { report } = f;

        expect(f.type).toBe('RESTORE_FAILED');
        expect(f.message).toMatch(/at "after make-live check"/);
        expect(report.makeLive?.strategy).toBe(strategy);
        expect(report.targetState).toBe(`rolled back to its pre-restore data (safety backup ${report.safetyBackupId})`);
        expect(report.compensations.map((x) => [x.name, x.ok])).toEqual([
          [`roll back to the safety backup ${report.safetyBackupId}`, true],
          ['CLIENT UNPAUSE', true],
          ['resume writer app', true],
        ]);
        // The copy followed the target: the snapshot before the pause, the writes since in its tail.
        expect(report.safetyCopy?.capturedWhilePaused).toBe(false);
        expect(report.safetyCopy?.tailWrites).toBeGreaterThan(0);
        expect(writer.writes()).toBeGreaterThan(report.safetyCopy!.tailWrites / 2);

        const after = client(port);
        await after.config('SET', 'rdb-key-save-delay', '0');
        expect(await digestAll(after)).toEqual(atPause);
        expect(await after.get('user:1')).toBe('changed after the backup');
        expect(await after.get(`w:${writer.writes() - 1}`)).toBe(String(writer.writes() - 1));
        expect((await after.info('replication')).includes('role:master')).toBe(true);
        await after.set('after:rollback', 'writes flow');
        await after.del('after:rollback');
        // The safety backup was stored after the rollback, holding the same data.
        expect(await safetyBackupDigest(report, (await handle.describe()).runId)).toEqual(atPause);
        expect(report.steps.map((s) => s.name).at(-1)).toBe('store safety backup');
        if (strategy === 'file-swap') {
          // Rolled back for good: AOF back on and rewritten, so a plain restart loads the same data.
          expect(await after.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
          await after.call('SHUTDOWN', 'NOSAVE').catch(() => {});
          await until(
            'the server to stop',
            async () =>
              !(await after.ping().then(
                () => true,
                () => false,
              )),
          );
          execFileSync(toolPath('redis-server'), [swapConf], { timeout: 10_000 });
          await waitLoaded(swapPort, 10_000);
          expect(await digestAll(client(swapPort))).toEqual(atPause);
        }
      },
    );
  }

  it(
    'a target that refuses PSYNC: the copy is taken whole with writers paused, and the rollback is still exact',
    { timeout: 60_000 },
    async () => {
      const c = refusing.client();
      await fillDataset(c, { keys: 300 });
      const backup = await t.backup('refusing');
      await c.set('user:2', 'changed after the backup');
      const before = await digestAll(c);

      const handle = await t.startRestore({ target: 'refusing', from: backup.backupId });
      await awaitingApproval(handle);
      await decide(handle, t.people.alice, 'approve');
      const { report } = await failureOf(handle.result());

      expect(report.targetState).toBe(`rolled back to its pre-restore data (safety backup ${report.safetyBackupId})`);
      expect(report.safetyCopy?.capturedWhilePaused).toBe(true);
      expect(report.safetyCopy?.tailWrites).toBe(0);
      expect(await digestAll(c)).toEqual(before);
      expect(await safetyBackupDigest(report, (await handle.describe()).runId)).toEqual(before);
    },
  );

  it(
    'a worker killed during make-live leaves its sealed copy to the next worker, which rolls back from it and stores it',
    { timeout: 150_000 },
    async () => {
      const c = killed.client();
      await fillDataset(c, { keys: 2000 });
      const backup = await t.backup('killed');
      await c.set('user:1', 'changed after the backup');
      await c.set('added:after', 'x');
      const before = await digestAll(c);
      // Loading the backup as a replica takes 2000 keys x 2 ms: a make-live of seconds to kill the worker in.
      await c.config('SET', 'key-load-delay', '2000');
      await c.config('SET', 'loading-process-events-interval-bytes', '1024');

      const config = path.join(t.dir, 'kill.yaml');
      const startWorker = () => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'cli/index.ts', '--config', config, 'worker'], {
          cwd: ROOT,
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        children.push(child);
        return child;
      };
      const first = startWorker();
      const handle = await t.env.client.workflow.start('restoreRedis', {
        taskQueue: KILL_QUEUE,
        workflowId: 'restore/killed',
        args: [{ target: 'killed', from: backup.backupId, reason: 'worker killed after the seal' }],
      });
      await awaitingApproval(handle, 60_000);
      await decide(handle, t.people.requester, 'request');
      await decide(handle, t.people.alice, 'approve');
      await until(
        'the target to load the backup',
        async () =>
          (await handle.query<RestoreStatus>('status')).step === 'make live' &&
          (await c.info('replication')).includes('role:slave') &&
          /^loading:1/m.test(await c.info('persistence')),
      );
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      // The sealed copy is on this host, in the killed worker's private folder.
      startWorker();

      const f = await failureOf(handle.result());
      const { report } = f;
      await c.config('SET', 'key-load-delay', '0');
      expect(f.type).toBe('RESTORE_FAILED');
      expect(report.targetState).toBe(`rolled back to its pre-restore data (safety backup ${report.safetyBackupId})`);
      expect(report.compensations.every((x) => x.ok)).toBe(true);
      expect(report.warnings ?? []).toEqual([]);
      expect(await digestAll(c)).toEqual(before);
      expect((await c.info('replication')).includes('role:master')).toBe(true);
      expect(await safetyBackupDigest(report, (await handle.describe()).runId)).toEqual(before);
    },
  );
});
