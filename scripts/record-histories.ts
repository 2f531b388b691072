// npm run record:histories: records the event histories that test/unit/replay.test.ts replays against
// the current workflow code. Starts what the integration tests start (a Temporal CLI dev server, a few
// throwaway redis-servers, a local destination and an in-process worker with the real activities),
// runs each runbook once on a tiny dataset, checks that it ended the way the scenario means, and only
// then writes test/histories/<name>.json (proto JSON, as `temporal workflow show -o json` writes it).
// Nothing else is kept: servers and temp dirs are removed, also on failure or Ctrl-C.
//
// Re-record only when a change to a workflow's commands is intended and no run of the old code can be
// in flight (see docs/replay.md); otherwise use patched().
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import * as prettier from 'prettier';
import type { Redis } from 'ioredis';
import type { BackupReport } from '../common/types';
import type { RecoverReport, DrillReport } from '../common/drill-types';
import type { RestoreReport } from '../common/restore-types';
import { startRedis, type RedisProcess } from './lib/redis-server';
import { HISTORY_WORKFLOW_IDS, historyAsJson, type HistoryName } from '../test/support/histories';
import { awaitingApproval, startRestoreEnv, type RestoreEnv } from '../test/support/restore-env';
import { decide } from '../test/support/approvals';

const outDir = fileURLToPath(new URL('../test/histories/', import.meta.url));
const SCENARIO_TIMEOUT_MS = 90_000;

const WORKFLOW_IDS = HISTORY_WORKFLOW_IDS;
type Name = HistoryName;

const say = (line: string) => process.stdout.write(`${line}\n`);

/** A few keys of every core type: enough for every step to have something to do, small enough to be quick. */
async function tinyDataset(c: Redis, tag: string): Promise<void> {
  const p = c.pipeline();
  for (let i = 0; i < 20; i++) p.set(`user:${i}`, `${tag}-${i}`);
  p.hset('session:1', { id: '1', agent: 'curl' });
  p.rpush('queue:jobs', 'job-1', 'job-2', 'job-3');
  p.sadd('set:tags', 'a', 'b');
  p.zadd('rank:scores', 1, 'alice', 2, 'bob');
  p.set('cache:ttl', 'expires later', 'EX', 3600);
  p.set('test_key', 'test_value');
  await p.exec();
}

function within<T>(what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${SCENARIO_TIMEOUT_MS / 1000} s`)), SCENARIO_TIMEOUT_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function expectThat(ok: boolean, what: string, detail: unknown): void {
  if (!ok) throw new Error(`${what}; got ${JSON.stringify(detail, null, 2)?.slice(0, 2000)}`);
}

/** The failure a run ended with (the runbooks put their report in its details). */
async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof WorkflowFailedError) || !(err.cause instanceof ApplicationFailure)) {
    throw new Error(`${handle.workflowId} was expected to fail with an application failure, got ${String(err)}`);
  }
  return err.cause;
}

async function waitForChild(handle: WorkflowHandle): Promise<{ restoreWorkflowId: string; restoreRunId?: string }> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const s = await handle.query<{ restoreWorkflowId?: string; restoreRunId?: string }>('status');
    if (s.restoreWorkflowId) return { restoreWorkflowId: s.restoreWorkflowId, restoreRunId: s.restoreRunId };
    if (Date.now() > deadline) throw new Error('the recovery never reached its restore');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function record(t: RestoreEnv, main: RedisProcess, rollback: RedisProcess, prod: RedisProcess): Promise<Map<Name, string>> {
  const client = t.env.client;
  const histories = new Map<Name, string>();
  const keep = async (name: Name, handle: WorkflowHandle) => {
    histories.set(name, historyAsJson(await handle.fetchHistory()));
    say(`  recorded ${name} (${handle.workflowId})`);
  };

  // backup: a backupRedis run to completion.
  const c = main.client();
  await tinyDataset(c, 'v1');
  const backupHandle = await client.workflow.start('backupRedis', {
    taskQueue: t.taskQueue,
    workflowId: WORKFLOW_IDS.backup,
    args: [{ target: 'main' }],
  });
  const backup = (await within('backup', backupHandle.result())) as BackupReport;
  expectThat(typeof backup.backupId === 'string' && backup.backupId.startsWith('main-'), 'the backup should report its backup id', backup);
  await keep('backup', backupHandle);

  // drill: a drillRedis run on the backup just taken (the newest), to "passed".
  const drillHandle = await client.workflow.start('drillRedis', {
    taskQueue: t.taskQueue,
    workflowId: WORKFLOW_IDS.drill,
    args: [{ target: 'main', requestedBy: 'recorder' }],
  });
  const drill = (await within('drill', drillHandle.result())) as DrillReport;
  expectThat(drill.outcome === 'passed', 'the drill should pass', drill);
  await keep('drill', drillHandle);

  // restore-approved: planned, approved by alice (the requester is "requester"), restored.
  await c.set('test_key', 'changed');
  await c.set('added:after', 'x');
  const restore = await t.startRestore({ target: 'main', from: backup.backupId, reason: 'replay history: approved restore' });
  expectThat(restore.workflowId === WORKFLOW_IDS['restore-approved'], 'the restore id', restore.workflowId);
  await awaitingApproval(restore);
  await decide(restore, t.people.alice, 'approve', { comment: 'go' });
  const restored = (await within('restore-approved', restore.result())) as RestoreReport;
  expectThat(restored.outcome === 'restored', 'the approved restore should end restored', restored);
  expectThat((await c.get('test_key')) === 'test_value', 'the restore should bring test_key back', await c.get('test_key'));
  await keep('restore-approved', restore);

  // restore-rollback: approved, made live, then the target's afterMakeLive check fails ("exit 1"):
  // the saga rolls the target back to its safety backup and the run fails.
  const r = rollback.client();
  await tinyDataset(r, 'v1');
  const rollbackBackup = await t.backup('rollback');
  await r.set('pre:restore', 'only here');
  const failing = await t.startRestore({
    target: 'rollback',
    from: rollbackBackup.backupId,
    reason: 'replay history: rolled back restore',
  });
  await awaitingApproval(failing);
  await decide(failing, t.people.alice, 'approve');
  const failure = await within('restore-rollback', failureOf(failing));
  const failedReport = failure.details?.[0] as RestoreReport | undefined;
  expectThat(
    failure.type === 'RESTORE_FAILED' && failedReport?.outcome === 'failed',
    'the restore should fail',
    failedReport ?? failure.message,
  );
  expectThat(
    failedReport!.compensations.some((x) => x.name.startsWith('roll back to the safety backup') && x.ok) &&
      failedReport!.compensations.every((x) => x.ok),
    'the restore should have rolled back to its safety backup',
    failedReport!.compensations,
  );
  expectThat(
    (await r.get('pre:restore')) === 'only here',
    'the rollback should bring the pre-restore data back',
    await r.get('pre:restore'),
  );
  await keep('restore-rollback', failing);

  // recover: complete data loss on prod; the recovery chooses the backup, its child restore is approved.
  const p = prod.client();
  await tinyDataset(p, 'v1');
  const prodBackup = await t.backup('prod');
  await p.flushall();
  const recover = await client.workflow.start('recoverRedis', {
    taskQueue: t.taskQueue,
    workflowId: WORKFLOW_IDS.recover,
    args: [{ target: 'prod', from: prodBackup.backupId, reason: 'replay history: data loss', requestedBy: 'requester' }],
  });
  const child = await within('recover (its restore)', waitForChild(recover));
  expectThat(child.restoreWorkflowId === WORKFLOW_IDS['recover-restore'], "the recovery's restore id", child);
  const childHandle = client.workflow.getHandle(child.restoreWorkflowId, child.restoreRunId);
  await awaitingApproval(childHandle);
  await decide(childHandle, t.people.requester, 'request');
  await decide(childHandle, t.people.alice, 'approve');
  const recovered = (await within('recover', recover.result())) as RecoverReport;
  expectThat(
    recovered.outcome === 'recovered' && recovered.restore?.outcome === 'restored',
    'the recovery should end recovered',
    recovered,
  );
  expectThat((await p.get('test_key')) === 'test_value', 'the recovery should bring the data back', await p.get('test_key'));
  await keep('recover', recover);
  await keep('recover-restore', childHandle);
  return histories;
}

async function main(): Promise<void> {
  const started = Date.now();
  // Every temp dir (servers, the destination, restore scratch files) under one of our own, removed at the end.
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'rr-histories-'));
  process.env.TMPDIR = tmp;
  // What is being started, not only what has started: Ctrl-C during start-up stops those servers too.
  let starting: Promise<RestoreEnv> | undefined;
  const redisStarting: Promise<RedisProcess>[] = [];
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      const env = await starting?.catch(() => undefined);
      // On Ctrl-C the SDK has begun to shut the worker down itself, and close() fails at stopping it.
      await env?.close().catch(() => env.env.teardown().catch((e: unknown) => say(`cleanup: ${String(e)}`)));
      await Promise.all(redisStarting.map((r) => r.then((s) => s.stop()).catch(() => {})));
      rmSync(tmp, { recursive: true, force: true });
    })());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => void cleanup().finally(() => process.exit(130)));
  }
  try {
    redisStarting.push(startRedis(), startRedis(), startRedis());
    const [main, rollback, prod] = await Promise.all(redisStarting);
    starting = startRestoreEnv(
      'record-histories',
      () => `
  main:
    url: ${main.url}
    destinations: [disk]
    smoke: { exists: ["user:*"], get: { test_key: test_value } }
    restore: { approvers: [alice], pauseLimit: 10s }
  rollback:
    url: ${rollback.url}
    destinations: [disk]
    restore: { approvers: [alice], pauseLimit: 10s, afterMakeLive: "exit 1" }
  prod:
    url: ${prod.url}
    destinations: [disk]
    restore: { approvers: [alice], pauseLimit: 10s }
`,
    );
    const t = await starting;
    say(`servers up in ${((Date.now() - started) / 1000).toFixed(1)} s; recording`);
    const histories = await record(t, main, rollback, prod);
    // Written only once every scenario ended as meant: never a mix of old and half-recorded files.
    mkdirSync(outDir, { recursive: true });
    const prettierOptions = (await prettier.resolveConfig(path.join(outDir, 'x.json'))) ?? {};
    for (const [name, json] of histories) {
      const file = path.join(outDir, `${name}.json`);
      // Formatted as `npm run format` would, so that `prettier --check .` stays clean.
      writeFileSync(file, await prettier.format(json, { ...prettierOptions, parser: 'json' }));
    }
    say(`wrote ${histories.size} histories to ${path.relative(process.cwd(), outDir)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await cleanup();
  }
}

try {
  await main();
  process.exit(0);
} catch (err) {
  // A failed run's reason is in its causes (and the runbook's report in the application failure's details).
  let text = err instanceof Error ? (err.stack ?? err.message) : String(err);
  for (let c = err instanceof Error ? err.cause : undefined; c instanceof Error; c = c.cause) text += `\ncaused by: ${c.message}`;
  process.stderr.write(`record-histories failed: ${text}\n`);
  process.exit(1);
}
