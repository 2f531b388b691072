// The restore runbook around the application's writers, on real servers: a writer paused by a
// `command` controller writes nothing to the target while it is paused and writes again after every
// ending (restored, failed with the target dead, cancelled); a worker killed mid-restore is replaced
// and the restore completes; and the CLI's gate (four eyes, one restore per target, dry run).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restoreWorkDir } from '../../domain/restore/local-rdb';
import { inStateDir } from '../../domain/state-dir';
import type { RestoreReport, RestoreStatus } from '../../common/restore-types';
import { digestAll, fillDataset } from '../support/dataset';
import { startRedis, type RedisProcess } from '../support/redis';
import { awaitingApproval, startRestoreEnv, type RestoreEnv } from '../support/restore-env';
import { startWriter as startWriterProcess, type Writer } from '../support/writer';
import { decide } from '../support/approvals';
import { sshFingerprint } from '../../domain/trust/sshsig';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CRASH_QUEUE = 'restore-writers-crash';

let t: RestoreEnv;
let ok: RedisProcess;
let failing: RedisProcess;
let cancelled: RedisProcess;
let crash: RedisProcess;
let cli: RedisProcess;
const children: ChildProcess[] = [];
const strayPids: number[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Pause stops the writer's process and then notes the time (50 ms later: a write already on the wire
 * when it stopped lands before); resume notes the time and then continues it.
 */
const writerYaml = (dir: string, name: string) => `
      writers:
        - type: command
          name: app
          pause: ${JSON.stringify(`kill -STOP $(cat ${dir}/${name}.pid) && sleep 0.05 && echo "pause $(date +%s%3N)" >> ${dir}/${name}.events`)}
          resume: ${JSON.stringify(`echo "resume $(date +%s%3N)" >> ${dir}/${name}.events && kill -CONT $(cat ${dir}/${name}.pid)`)}
          timeout: 20s`;

beforeAll(async () => {
  [ok, failing, cancelled, crash, cli] = await Promise.all([startRedis(), startRedis(), startRedis(), startRedis(), startRedis()]);
  t = await startRestoreEnv(
    'restore-writers',
    (dir) => `
  wok:
    url: ${ok.url}
    destinations: [disk]
    restore:
      approvers: [alice]${writerYaml(dir, 'wok')}
  wfail:
    url: ${failing.url}
    destinations: [disk]
    retryFor: 3s
    restore:
      approvers: [alice]
      pauseWrites: false
      afterMakeLive: ${JSON.stringify(`kill -9 $(cat ${dir}/wfail.target.pid)`)}${writerYaml(dir, 'wfail')}
  wcancel:
    url: ${cancelled.url}
    destinations: [disk]
    restore:
      approvers: [alice]
      pauseWrites: false
      afterMakeLive: "sleep 5"${writerYaml(dir, 'wcancel')}
  wcrash:
    url: ${crash.url}
    destinations: [disk]
    # A scratch master: the test also proves that a killed worker's scratch server is cleaned up.
    restore: { approvers: [alice], master: scratch }
  cli:
    url: ${cli.url}
    destinations: [disk]
    restore: { approvers: [alice, carol] }
`,
  );
  writeFileSync(path.join(t.dir, 'wfail.target.pid'), String(failing.process.pid));
  // The same config on a queue of its own, served by worker processes the crash test starts and kills.
  writeFileSync(
    path.join(t.dir, 'crash.yaml'),
    readFileSync(t.configFile, 'utf8').replace('taskQueue: restore-writers }', `taskQueue: ${CRASH_QUEUE} }`),
  );
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const pid of strayPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await t?.close();
  await Promise.all([ok, failing, cancelled, crash, cli].map((r) => r?.stop()));
});

function startWriter(name: string, r: RedisProcess): Writer {
  const w = startWriterProcess(t.dir, name, r.port);
  children.push(w.child);
  return w;
}

async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** One client per server, quiet while the server is down (one test kills its target). */
const clients = new WeakMap<RedisProcess, ReturnType<RedisProcess['client']>>();
function clientOf(r: RedisProcess): ReturnType<RedisProcess['client']> {
  let c = clients.get(r);
  if (!c) clients.set(r, (c = r.client()));
  c.on('error', () => {});
  return c;
}

async function targetLog(r: RedisProcess): Promise<number[]> {
  return (await clientOf(r).lrange('log', 0, -1)).map(Number);
}

/** No acknowledged write and no write on the target inside a pause window; at least one window, closed. */
async function expectQuietWhilePaused(w: Writer, r: RedisProcess, alive = true): Promise<void> {
  const windows = w.windows();
  expect(windows.length).toBeGreaterThan(0);
  expect(windows.every(([, end]) => end !== Infinity)).toBe(true);
  const inside = (ms: number) => windows.some(([a, b]) => ms >= a && ms <= b);
  expect(w.acked().filter(inside)).toEqual([]);
  if (alive) expect((await targetLog(r)).filter(inside)).toEqual([]);
}

/** The writer is running and its writes reach the target again after the last resume. */
async function expectWritingAgain(w: Writer, r: RedisProcess): Promise<void> {
  expect(w.state()).not.toBe('T');
  const resumedAt = w.windows().at(-1)![1];
  await until('a write after the resume', async () => (await targetLog(r)).some((ms) => ms > resumedAt));
  expect(w.acked().some((ms) => ms > resumedAt)).toBe(true);
}

async function seed(r: RedisProcess): Promise<Record<string, string>> {
  const c = clientOf(r);
  await fillDataset(c, { keys: 100 });
  await c.set('marker', 'before');
  return digestAll(c);
}

async function approved(target: string, requestAs: 'requester' | 'carol' = 'requester') {
  const handle = await t.startRestore({ target, from: 'latest', requestAs });
  await awaitingApproval(handle);
  await decide(handle, t.people.alice, 'approve');
  return handle;
}

async function failureOf(p: Promise<unknown>): Promise<{ type: string | null | undefined; message: string; report: RestoreReport }> {
  const err = await p.then(
    () => expect.fail('the restore should not succeed'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return { type: cause.type, message: cause.message, report: cause.details?.[0] as RestoreReport };
}

/** The worker's local copies of the backups a restore used are gone, whatever its ending. */
function expectNoLocalCopies(report: RestoreReport): void {
  for (const id of [report.plan.backup.backupId, report.safetyBackupId!]) {
    expect(existsSync(path.join(restoreWorkDir(), id)), id).toBe(false);
  }
}

describe('writers around a restore', () => {
  it('pauses the writer for the restore and resumes it after a successful one', { timeout: 60_000 }, async () => {
    await seed(ok);
    const w = startWriter('wok', ok);
    await until('the first write', () => w.acked().length > 5);
    await t.backup('wok');
    await clientOf(ok).set('marker', 'after');

    const report = (await (await approved('wok')).result()) as RestoreReport;
    expect(report.outcome).toBe('restored');
    expect(w.state()).not.toBe('T');
    expect(await clientOf(ok).get('marker')).toBe('before');
    expect(w.windows()).toHaveLength(1);
    expectNoLocalCopies(report);
    await expectWritingAgain(w, ok);
    await expectQuietWhilePaused(w, ok);
  });

  it(
    'waits with the rollback for a target that died, rolls back once it is back, and resumes the writer',
    { timeout: 90_000 },
    async () => {
      await seed(failing);
      const w = startWriter('wfail', failing);
      await until('the first write', () => w.acked().length > 5);
      const backup = await t.backup('wfail');

      const handle = await approved('wfail');
      // The target is dead (the after make-live check killed it): verification gives up after its
      // retryFor, and the rollback waits for the target, saying so.
      await until('the rollback to wait', async () =>
        /^compensating: roll back to the safety backup .* \(since /.test((await handle.query<RestoreStatus>('status')).step),
      );
      await sleep(1000);
      expect((await handle.query<RestoreStatus>('status')).step).toMatch(/^compensating: roll back/);
      // The target comes back (empty) on its port: the rollback brings the pre-restore data back.
      await failing.stop();
      failing = await startRedis({ port: failing.port });
      const f = await failureOf(handle.result());
      expect(f.type).toBe('RESTORE_FAILED');
      expect(f.report.outcome).toBe('failed');
      expect(f.report.targetState).toMatch(/^rolled back to its pre-restore data/);
      const comp = Object.fromEntries(f.report.compensations.map((c) => [c.name, c.ok]));
      expect(comp).toEqual({ [`roll back to the safety backup ${f.report.safetyBackupId}`]: true, 'resume writer app': true });
      expect(await clientOf(failing).dbsize()).toBeGreaterThan(0);
      expect(w.state()).not.toBe('T');
      expect(backup.backupId).toBe(f.report.plan.backup.backupId);
      expectNoLocalCopies(f.report);
      // Every attempt that started a scratch server stopped it, the target being dead or not.
      expect(scratchServersOf(process.pid)).toEqual([]);
      await expectWritingAgain(w, failing);
      await expectQuietWhilePaused(w, failing, false);
    },
  );

  it('resumes the writer and rolls back after a restore cancelled once the writers were paused', { timeout: 60_000 }, async () => {
    await seed(cancelled);
    const w = startWriter('wcancel', cancelled);
    await until('the first write', () => w.acked().length > 5);
    await t.backup('wcancel');
    await clientOf(cancelled).set('marker', 'after');

    const handle = await approved('wcancel');
    await until('the after make-live check', async () => (await handle.query<RestoreStatus>('status')).step === 'after make-live check');
    expect(w.state()).toBe('T');
    expect(await clientOf(cancelled).get('marker')).toBe('before'); // the backup is live
    await handle.cancel();
    const f = await failureOf(handle.result());
    expect(f.type).toBe('RESTORE_CANCELLED');
    expect(f.report.outcome).toBe('cancelled');
    expect(f.message).toMatch(/cancelled at "after make-live check"/);
    expect(f.report.targetState).toMatch(/rolled back to its pre-restore data/);
    expect(f.report.compensations.map((c) => [c.name, c.ok])).toEqual([
      [`roll back to the safety backup ${f.report.safetyBackupId}`, true],
      ['resume writer app', true],
    ]);
    expect(w.state()).not.toBe('T');
    expect(await clientOf(cancelled).get('marker')).toBe('after'); // rolled back
    expectNoLocalCopies(f.report);
    await expectWritingAgain(w, cancelled);
    await expectQuietWhilePaused(w, cancelled);
  });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runbook(config: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'cli/index.ts', '--config', config, ...args],
      { cwd: ROOT, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

describe('the CLI gate', () => {
  it(
    'refuses self-approval, a stranger and a second restore; an approver lets it run; dry run; a malformed id',
    { timeout: 90_000 },
    async () => {
      const c = cli.client();
      await c.set('k', 'v1');
      await t.backup('cli');
      await c.set('k', 'v2');
      const cfg = t.configFile;

      const started = await runbook(
        cfg,
        'restore',
        'cli',
        '--from',
        'latest',
        '--reason',
        'bad deploy wrote junk',
        '--key',
        t.people.carol.keyFile,
      );
      expect(started.code, started.stderr).toBe(0);
      expect(started.stdout).toMatch(/restore plan for cli/);
      expect(started.stdout).toMatch(/started restore\/cli and signed its request; it waits for approval/);

      const [again, self, stranger] = await Promise.all([
        runbook(cfg, 'restore', 'cli', '--from', 'latest', '--reason', 'me too please', '--key', t.people.dave.keyFile),
        runbook(cfg, 'approve', 'restore/cli', '--key', t.people.carol.keyFile, '--yes'),
        runbook(cfg, 'approve', 'restore/cli', '--key', t.people.mallory.keyFile, '--yes'),
      ]);
      expect(again.code, again.stderr).toBe(9);
      expect(again.stderr).toMatch(/already running: restore\/cli/);
      expect(self.code, self.stderr).toBe(9);
      expect(self.stderr).toMatch(/four eyes/);
      expect(stranger.code, stranger.stderr).toBe(9);
      expect(stranger.stderr).toMatch(/mallory \(key SHA256:[^)]+\) may not decide/);

      const handle = t.env.client.workflow.getHandle('restore/cli');
      expect((await handle.query<RestoreStatus>('status')).decisions).toEqual([]);
      const yes = await runbook(cfg, 'approve', 'restore/cli', '--key', t.people.alice.keyFile, '--yes', '--comment', 'checked');
      expect(yes.code, yes.stderr).toBe(0);
      expect(yes.stdout).toMatch(/approved restore\/cli as alice \(key SHA256:/);
      const report = (await handle.result()) as RestoreReport;
      expect(report.outcome).toBe('restored');
      expect(report.requestedBy).toBe('carol');
      expect(report.decisions.map((d) => `${d.decision}:${d.approver}`)).toEqual(['approve:alice']);
      expect(await c.get('k')).toBe('v1');

      // runbook audit: JSON lines of the request, the decision (with the CLI's identity) and the outcome.
      const audit = await runbook(cfg, '--json', 'audit', 'cli');
      expect(audit.code, audit.stderr).toBe(0);
      const events = audit.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { event: string; actor: string; identity?: string });
      expect(events.map((e) => `${e.event}:${e.actor}`)).toEqual(['requested:carol', 'approved:alice', 'restored:carol']);
      expect(events[1]!.identity).toBe(sshFingerprint(t.people.alice.publicKey));

      await c.set('k', 'v3');
      const [dry, malformed] = await Promise.all([
        runbook(cfg, 'restore', 'cli', '--from', 'latest', '--reason', 'just looking', '--dry-run'),
        runbook(cfg, 'restore', 'cli', '--from', '../x', '--reason', 'path in the id'),
      ]);
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout).toMatch(/restore plan for cli \(replica-promote\)/);
      expect(dry.stdout).toMatch(/outcome: dry-run/);
      expect(await c.get('k')).toBe('v3');
      expect(malformed.code, malformed.stderr).toBe(2);
      expect(malformed.stderr).toMatch(/--from/);
    },
  );
});

describe('a worker killed mid-restore', () => {
  it('is replaced by another worker and the restore completes with the right data', { timeout: 120_000 }, async () => {
    const c = crash.client();
    await fillDataset(c, { keys: 2000 });
    // The target's own settings for replicating from a real master: a restore must leave them as they were.
    await c.config('SET', 'masterauth', 'the-real-masters-password');
    const before = await digestAll(c);
    await t.backup('wcrash');
    await c.set('user:1', 'changed');
    await c.set('added:after', 'x');
    // Loading the backup as a replica takes 2000 keys x 2 ms: a make-live of seconds to be killed in,
    // during which the target keeps answering (it serves its clients between every KiB it loads).
    await c.config('SET', 'key-load-delay', '2000');
    await c.config('SET', 'loading-process-events-interval-bytes', '1024');

    const config = path.join(t.dir, 'crash.yaml');
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
      taskQueue: CRASH_QUEUE,
      workflowId: 'restore/wcrash',
      args: [{ target: 'wcrash', from: 'latest', reason: 'worker crash test' }],
    });
    await awaitingApproval(handle, 60_000);
    await decide(handle, t.people.requester, 'request');
    await decide(handle, t.people.alice, 'approve');
    await until(
      'the target to replicate the backup',
      async () =>
        (await handle.query<RestoreStatus>('status')).step === 'make live' &&
        (await c.info('replication')).includes('role:slave') &&
        // Loading, not still receiving the RDB: the worker is killed in the middle of the load.
        /^loading:1/m.test(await c.info('persistence')),
      60_000,
    );
    // The scratch server the killed worker started outlives it (SIGKILL leaves no chance to stop it).
    const scratches = scratchServersOf(first.pid!);
    strayPids.push(...scratches);
    // Two: the scratch master, and the reference verification will compare with, loading meanwhile.
    expect(scratches).toHaveLength(2);
    expect(await c.config('GET', 'masterauth')).not.toEqual(['masterauth', 'the-real-masters-password']);
    expect(await c.info('persistence')).toMatch(/^loading:1/m);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));

    startWorker();
    const report = (await handle.result()) as RestoreReport;
    expect(report.outcome).toBe('restored');
    expect(report.verification?.every((v) => v.ok)).toBe(true);
    await c.config('SET', 'key-load-delay', '0');
    expect(await digestAll(c)).toEqual(before);
    expect((await c.info('replication')).includes('role:master')).toBe(true);
    expect(await c.config('GET', 'masterauth')).toEqual(['masterauth', 'the-real-masters-password']);
    // The killed worker's scratch server was stopped by the next one to start a scratch server.
    expect(scratches.filter(isRunning)).toEqual([]);
  });
});

/** The scratch redis-servers a process started (they work in a scratch dir of its private folder). */
function scratchServersOf(pid: number): number[] {
  const out: number[] = [];
  const tasks = `/proc/${pid}/task`;
  for (const task of existsSync(tasks) ? readdirSync(tasks) : []) {
    const list = readFileSync(`${tasks}/${task}/children`, 'utf8').trim();
    for (const child of list ? list.split(/\s+/).map(Number) : []) {
      let cwd: string;
      try {
        cwd = readlinkSync(`/proc/${child}/cwd`);
      } catch {
        continue; // gone
      }
      if (isRunning(child) && inStateDir(cwd, 'scratch-')) out.push(child);
    }
  }
  return out;
}

function isRunning(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  return existsSync(stat) && readFileSync(stat, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
}
