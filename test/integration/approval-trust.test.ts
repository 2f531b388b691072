// The approval gate tried as an attacker would, on real servers: one person cannot pass four eyes,
// a statement for another run, plan or time counts for nothing, an unsigned or badly signed one is
// refused, and a workflow that is not ours (or ours, driven by someone else) gets no change made to a
// target by the worker.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RestoreReport, RestoreStatus } from '../../common/restore-types';
import { readAudit } from '../../domain/audit';
import { storeRegistry } from '../../domain/storage';
import { digestAll } from '../support/dataset';
import { decide, signedStatement } from '../support/approvals';
import { makePeople } from '../support/people';
import { startRedis, type RedisProcess } from '../support/redis';
import { awaitingApproval, startRestoreEnv, type RestoreEnv } from '../support/restore-env';
import { rogueActivity } from '../support/rogue-workflow';
import { runCli } from '../support/cli';

let t: RestoreEnv;
let two: RedisProcess;
let self: RedisProcess;
let twoBackup: string;

beforeAll(async () => {
  [two, self] = await Promise.all([startRedis(), startRedis()]);
  t = await startRestoreEnv(
    'approval-trust',
    () => `
  two:
    url: ${two.url}
    destinations: [disk]
    restore: { approvers: [alice, bob, dave], approvals: 2, approvalTimeout: 30s, pauseLimit: 10s }
  self:
    url: ${self.url}
    destinations: [disk]
    restore: { approvers: [alice, dave], allowSelfApproval: true, approvalTimeout: 30s, pauseLimit: 10s }
`,
  );
  await two.client().set('k', 'backed-up');
  await self.client().set('k', 'backed-up');
  twoBackup = (await t.backup('two')).backupId;
  await t.backup('self');
  await two.client().set('k', 'live');
  await self.client().set('k', 'live');
}, 120_000);

afterAll(async () => {
  await t?.close();
  await Promise.all([two?.stop(), self?.stop()]);
});

const refusal = (err: unknown) => ((err as WorkflowUpdateFailedError).cause as Error | undefined)?.message ?? String(err);
const statusOf = (h: WorkflowHandle) => h.query<RestoreStatus>('status');

async function endRestore(handle: WorkflowHandle): Promise<void> {
  await handle.cancel().catch(() => undefined);
  await handle.result().catch(() => undefined);
}

describe('the approval gate by key', () => {
  it('lets one person count once: the same key approving again, under any name, is refused', { timeout: 60_000 }, async () => {
    const handle = await t.startRestore({ target: 'two', from: 'latest' });
    try {
      await awaitingApproval(handle);
      await decide(handle, t.people.alice, 'approve', { comment: 'as alice' });
      const again = await decide(handle, t.people.alice, 'approve', { comment: 'as bob, honest' }).catch((e: unknown) => e);
      expect(again).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(refusal(again)).toMatch(/alice has already approved/);
      const status = await statusOf(handle);
      expect(status.decisions.map((d) => d.approver)).toEqual(['alice']);
      expect(status.step).toBe('awaiting approval');
      expect(await two.client().get('k')).toBe('live');
    } finally {
      await endRestore(handle);
    }
  });

  it(
    "never counts the requester's key, even where self-approval is allowed; another key of the same person may",
    {
      timeout: 90_000,
    },
    async () => {
      const handle = await t.startRestore({ target: 'self', from: 'latest', requestAs: 'dave' });
      await awaitingApproval(handle);
      const sameKey = await decide(handle, t.people.dave, 'approve').catch((e: unknown) => e);
      expect(refusal(sameKey)).toMatch(/signed the request, so it cannot also decide it \(four eyes\)/);
      expect((await statusOf(handle)).decisions).toEqual([]);
      // allowSelfApproval: dave's other key is another signature by the same person, and the target allows that.
      await decide(handle, t.daveAlt, 'approve');
      const report = (await handle.result()) as RestoreReport;
      expect(report.outcome).toBe('restored');
      expect(report.requestedBy).toBe('dave');
      expect(await self.client().get('k')).toBe('backed-up');
    },
  );

  it(
    "refuses dave's second key where four eyes hold: keys are compared, and so are the people they belong to",
    { timeout: 60_000 },
    async () => {
      const handle = await t.startRestore({ target: 'two', from: 'latest', requestAs: 'dave' });
      try {
        const other = await decide(handle, t.daveAlt, 'approve').catch((e: unknown) => e);
        expect(refusal(other)).toMatch(/dave asked for this restore and cannot also decide it \(four eyes\)/);
        expect((await statusOf(handle)).decisions).toEqual([]);
      } finally {
        await endRestore(handle);
      }
    },
  );

  it(
    'refuses, before recording anything, a statement for another run, another plan, another namespace, or expired',
    {
      timeout: 60_000,
    },
    async () => {
      const handle = await t.startRestore({ target: 'two', from: 'latest' });
      try {
        await awaitingApproval(handle);
        const cases: [string, Parameters<typeof decide>[3], RegExp][] = [
          ['another run', { mutate: (s) => void (s.runId = '00000000-0000-0000-0000-000000000000') }, /for run 0000.*not this run/],
          ['another backup', { mutate: (s) => void (s.plan.backupId = 'two-20990101T000000Z-deadbeef') }, /another plan \(backupId/],
          ['another RDB', { mutate: (s) => void (s.plan.rdbSha256 = 'f'.repeat(64)) }, /another plan \(rdbSha256/],
          ['another reason', { mutate: (s) => void (s.plan.reason = 'something else') }, /another plan \(reason/],
          ['another strategy', { mutate: (s) => void (s.plan.strategy = 'logical') }, /another plan \(strategy/],
          ['an unsigned backup', { mutate: (s) => void (s.plan.allowUnsigned = true) }, /another plan \(allowUnsigned/],
          ['another namespace', { namespace: 'other' }, /namespace other/],
          ['expired', { mutate: (s) => void (s.expires = new Date(Date.now() - 1000).toISOString()) }, /expired at/],
          ['a request sent as an approval', { mutate: (s) => void (s.kind = 'request') }, /a request statement sent as a approve/],
        ];
        for (const [what, opts, why] of cases) {
          const err = await decide(handle, t.people.alice, 'approve', opts).catch((e: unknown) => e);
          expect(err, what).toBeInstanceOf(WorkflowUpdateFailedError);
          expect(refusal(err), what).toMatch(why);
        }
        const status = await statusOf(handle);
        expect(status.decisions).toEqual([]);
        // Refused by the validator: nothing reached the history, so nothing was even checked.
        expect(status.refused).toEqual([]);
      } finally {
        await endRestore(handle);
      }
    },
  );

  it('refuses an approval with no signature, a garbled one, or one by a key nobody in the config holds', { timeout: 60_000 }, async () => {
    const handle = await t.startRestore({ target: 'two', from: 'latest' });
    try {
      await awaitingApproval(handle);
      const unsigned = await decide(handle, t.people.alice, 'approve', { signature: '' }).catch((e: unknown) => e);
      expect(refusal(unsigned)).toMatch(/not signed/);
      const garbled = await decide(handle, t.people.alice, 'approve', {
        signature: '-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n',
      }).catch((e: unknown) => e);
      expect(garbled).toBeInstanceOf(WorkflowUpdateFailedError);
      const stranger = makePeople(t.dir, ['stranger']).stranger;
      const unknown = await decide(handle, stranger, 'approve').catch((e: unknown) => e);
      expect(refusal(unknown)).toMatch(/belongs to nobody in the worker's config/);
      // Bob's signature over a statement, sent with alice's statement text: the signature does not match.
      const bobs = await signedStatement(handle, t.people.bob, 'approve', { comment: 'bob' });
      const alices = await signedStatement(handle, t.people.alice, 'approve', { comment: 'alice' });
      const swapped = await handle
        .executeUpdate('approve', { args: [{ statement: alices.statement, signature: bobs.signature }] })
        .catch((e: unknown) => e);
      expect(swapped).toBeInstanceOf(WorkflowUpdateFailedError);
      const status = await statusOf(handle);
      expect(status.decisions).toEqual([]);
      // What reached the worker and failed its check is recorded as refused, and never counts.
      expect(status.refused.length).toBeGreaterThanOrEqual(2);
      expect(await two.client().get('k')).toBe('live');
    } finally {
      await endRestore(handle);
    }
  });
});

describe('runbook approve on a terminal', () => {
  /** The CLI on a pseudo-terminal (script(1)), answering `answer` once it asks. */
  function onTerminal(args: string[], answer: string): Promise<{ code: number | null; out: string }> {
    const cli = [process.execPath, '--import', 'tsx', 'cli/index.ts', '--config', t.configFile, ...args].map((a) => `'${a}'`).join(' ');
    return new Promise((resolve) => {
      const child = spawn('script', ['-qec', cli, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let answered = false;
      const read = (d: Buffer) => {
        out += d.toString();
        if (!answered && /\[y\/N\]/.test(out)) {
          answered = true;
          child.stdin.write(`${answer}\r`);
        }
      };
      child.stdout.on('data', read);
      child.stderr.on('data', read);
      const timer = setTimeout(() => child.kill(), 60_000);
      child.on('close', (code) => (clearTimeout(timer), resolve({ code, out })));
    });
  }

  it('shows the plan it is about to sign and signs only on yes', { timeout: 120_000 }, async () => {
    const handle = await t.startRestore({ target: 'two', from: 'latest', reason: 'terminal check' });
    try {
      await awaitingApproval(handle);
      const no = await onTerminal(['approve', 'restore/two', '--key', t.people.alice.keyFile], 'n');
      expect(no.out).toMatch(/approve the restore of two:/);
      expect(no.out).toMatch(/requested by: requester \(key SHA256:/);
      expect(no.out).toMatch(/reason: +terminal check/);
      expect(no.out).toMatch(/RDB SHA-256 [0-9a-f]{64}/);
      expect(no.out).toMatch(/not signed: nothing was sent/);
      expect(no.code).toBe(9);
      expect((await statusOf(handle)).decisions).toEqual([]);
      const yes = await onTerminal(['approve', 'restore/two', '--key', t.people.alice.keyFile], 'y');
      expect(yes.code, yes.out).toBe(0);
      expect(yes.out).toMatch(/approved restore\/two as alice/);
      expect((await statusOf(handle)).decisions.map((d) => d.approver)).toEqual(['alice']);
    } finally {
      await endRestore(handle);
    }
  });
});

describe('the worker enforces the gate itself', () => {
  const attempts = [
    ['makeLive', () => ({ target: 'two', backupId: twoBackup })],
    ['pauseWriter', () => ({ target: 'two', writer: 'app' })],
    ['pauseClientWrites', () => ({ target: 'two', limitMs: 60_000 })],
    ['afterMakeLive', () => ({ target: 'two' })],
  ] as const;
  for (const [activity, input] of attempts) {
    it(
      `refuses ${activity} scheduled by a workflow driven through the raw workflow-task API, leaving the target untouched`,
      {
        timeout: 90_000,
      },
      async () => {
        const before = await digestAll(two.client());
        const out = await rogueActivity(t.env.client, { workerQueue: t.taskQueue, activity, input: input() });
        expect(out.failureType).toBe('GATE_REFUSED');
        expect(out.nonRetryable).toBe(true);
        expect(out.message).toMatch(/the worker refuses .* on two for restoreRedis rogue\/.*: it holds no valid signed request/);
        expect(await digestAll(two.client())).toEqual(before);
        // The attempt is on record in the target's audit chain.
        const trail = await readAudit(t.config, storeRegistry(t.config), 'two');
        expect(trail.some((e) => e.event === 'refused' && e.detail?.startsWith(`${activity}: it holds no valid signed request`))).toBe(
          true,
        );
        // CLIENT PAUSE did not happen: a write goes through at once.
        await two.client().set('probe', '1');
      },
    );
  }

  it(
    'refuses to record an approval that nobody signed: a forged "approved by carol" never reaches the trail',
    { timeout: 90_000 },
    async () => {
      const out = await rogueActivity(t.env.client, {
        workerQueue: t.taskQueue,
        activity: 'recordAudit',
        input: {
          at: new Date().toISOString(),
          target: 'two',
          workflowId: 'restore/two',
          runId: 'made-up',
          action: 'restore',
          event: 'approved',
          actor: 'carol',
          detail: 'looks good',
        },
      });
      expect(out.failureType).toBe('GATE_REFUSED');
      expect(out.message).toMatch(/an "approved" record names carol, but this run holds no valid statement of theirs/);
      const trail = await readAudit(t.config, storeRegistry(t.config), 'two');
      expect(trail.some((e) => e.event === 'approved' && e.actor === 'carol')).toBe(false);
      expect(trail.some((e) => e.event === 'refused' && e.detail?.includes('carol'))).toBe(true);
    },
  );

  it("refuses to sign a manifest the workflow made up: it must say what this run's capture captured", { timeout: 90_000 }, async () => {
    const real = await t.backup('two');
    const forgedId = real.backupId.replace(/-[0-9a-f]{8}$/, '-0badc0de');
    const forged = { ...real.manifest, backupId: forgedId, rdb: { ...real.manifest.rdb, sha256: 'e'.repeat(64) } };
    const out = await rogueActivity(t.env.client, {
      workerQueue: t.taskQueue,
      activity: 'writeManifest',
      workflowType: 'backupRedis',
      input: { manifest: forged },
    });
    expect(out.failureType).toBe('SIGNATURE_INVALID');
    expect(out.message).toMatch(/refuses to sign the manifest of .*0badc0de: it does not say what run .* captured/);
    const listed = await runCli(t.configFile, '--json', 'backups', 'list', 'two');
    expect(listed.stdout).not.toContain('0badc0de');
  });

  it('refuses to sign a passing drill report that no sandbox restore of its run produced', { timeout: 90_000 }, async () => {
    const now = new Date().toISOString();
    const report = {
      drillId: 'two-forged-green',
      target: 'two',
      workflowId: 'drill/two/forged',
      runId: 'made-up',
      requestedBy: 'mallory',
      startedAt: now,
      finishedAt: now,
      outcome: 'passed',
      backup: { backupId: twoBackup, createdAt: now, destination: 'disk', among: 1, ageMs: 0, rdbSize: 1, storedSize: 1 },
      phases: [],
      checks: [{ name: 'keys', ok: true, detail: 'all there' }],
      rto: { measuredMs: 1, objectiveMs: 3_600_000, met: true },
      rpo: { newestAgeMs: 1, maxGapMs: 1, windowMs: 1, backupsInWindow: 1, objectiveMs: 86_400_000, met: true },
      objectivesMet: true,
    };
    const out = await rogueActivity(t.env.client, {
      workerQueue: t.taskQueue,
      activity: 'saveDrillReport',
      workflowType: 'drillRedis',
      input: { report },
    });
    expect(out.failureType).toBe('SIGNATURE_INVALID');
    expect(out.message).toMatch(/refuses to sign a passing report of drill two-forged-green/);
    // Nothing was stored: the drill reports of the target hold no such report.
    expect(existsSync(path.join(t.dir, 'backups', 'two', 'drills', 'two-forged-green.json'))).toBe(false);
    expect(existsSync(path.join(t.dir, 'backups', 'two'))).toBe(true);
  });
});
