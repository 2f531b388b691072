// The audit trail as a signed hash chain, over a real local directory and a real S3 server (versitygw):
// appends from racing workers and retried activities, every kind of tampering seen by
// `runbook audit --verify` and `runbook check`, text that cannot forge a line, Object Lock retention.
import { mkdtemp, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectRetentionCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDeps } from '../../activities/deps';
import { createRecordActivities } from '../../activities/records';
import type { AuditEvent, AuditRecord } from '../../common/audit';
import { loadConfig, type Config } from '../../common/config';
import { appendAudit, GENESIS, readAudit, recordBytes, sha256Hex, verifyAudit } from '../../domain/audit';
import { sendNotification } from '../../domain/notify';
import { servicesFor, type Services } from '../../domain/services';
import { signerFor } from '../../domain/trust/signing';
import { runCli } from '../support/cli';
import { startS3, type S3Server } from '../support/s3';
import { signingKey, type TestSigningKey } from '../support/signing';
import { startWebhook, type WebhookServer } from '../support/webhook';

const TAMPERED = ['changed', 'deleted', 'inserted', 'squeezed', 'swapped', 'untrusted', 'truncated'] as const;

let dir: string;
let configFile: string;
let config: Config;
let services: Services;
let s3: S3Server;
let s3client: S3Client;
let hook: WebhookServer;
let signing: TestSigningKey;

const pad = (seq: number) => String(seq).padStart(12, '0');
const diskFile = (target: string, seq: number) => path.join(dir, 'disk', target, 'audit', 'chain', `${pad(seq)}.json`);
const objectText = async (bucket: string, key: string) =>
  (await s3client.send(new GetObjectCommand({ Bucket: bucket, Key: key })).then((r) => r.Body!.transformToString('utf8'))) as string;

function event(target: string, n: number, more: Partial<AuditEvent> = {}): AuditEvent {
  return {
    at: new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString(),
    target,
    workflowId: `restore/${target}`,
    runId: 'run-1',
    action: 'restore',
    event: n === 1 ? 'requested' : 'approved',
    actor: n === 1 ? 'alice' : `approver-${n}`,
    detail: `step ${n}`,
    ...more,
  };
}

async function appendFive(target: string): Promise<void> {
  for (let n = 1; n <= 5; n++) await appendAudit(services, event(target, n), `run-1/${target}-${n}`);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'runbook-audit-'));
  s3 = await startS3();
  s3client = s3.client();
  await s3.createBucket('audit-plain');
  await s3client.send(new CreateBucketCommand({ Bucket: 'audit-locked', ObjectLockEnabledForBucket: true }));
  hook = await startWebhook();
  process.env.AUDIT_S3_KEY = s3.accessKeyId;
  process.env.AUDIT_S3_SECRET = s3.secretAccessKey;
  process.env.AUDIT_HOOK_URL = hook.url;
  signing = signingKey(dir);
  const s3dest = (bucket: string, more = '') =>
    `{ type: s3, bucket: ${bucket}, endpoint: "${s3.endpoint}", forcePathStyle: true, accessKeyId: env:AUDIT_S3_KEY, secretAccessKey: env:AUDIT_S3_SECRET${more} }`;
  const target = (name: string, destinations: string, more = '') =>
    `  ${name}:\n    url: redis://127.0.0.1:1\n    destinations: [${destinations}]\n${more}`;
  configFile = path.join(dir, 'runbook.yaml');
  await writeFile(
    configFile,
    `${signing.yaml}storage:
  disk: { type: local, path: ${path.join(dir, 'disk')} }
  offsite: ${s3dest('audit-plain')}
  locked: ${s3dest('audit-locked', ', auditRetention: 2d')}
webhooks:
  chat: { url: env:AUDIT_HOOK_URL }
targets:
${[
  target('main', 'disk, offsite'),
  target('race-local', 'disk, offsite'),
  target('race-s3', 'offsite, disk'),
  target('retried', 'disk, offsite'),
  target('activity', 'disk, offsite'),
  target('escaping', 'disk, offsite'),
  target('locked', 'locked, disk'),
  target('chat', 'disk', '    notify: [{ webhook: chat, events: [restore-awaiting-approval] }]\n'),
  ...TAMPERED.map((t) => target(`t-${t}`, 'disk, offsite')),
].join('')}`,
  );
  config = loadConfig(configFile);
  services = servicesFor(config);
}, 60_000);

afterAll(async () => {
  s3client?.destroy();
  await hook?.close();
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('appending', () => {
  it('five records appended across a local and an S3 destination form one chain, byte for byte the same in both', async () => {
    await appendFive('main');
    const trail = await readAudit(config, services.stores, 'main');
    expect(trail.map((r) => (r as AuditRecord).seq)).toEqual([1, 2, 3, 4, 5]);
    expect(trail.map((r) => r.actor)).toEqual(['alice', 'approver-2', 'approver-3', 'approver-4', 'approver-5']);
    let prev = GENESIS;
    for (let seq = 1; seq <= 5; seq++) {
      const local = await readFile(diskFile('main', seq), 'utf8');
      expect(await objectText('audit-plain', `main/audit/chain/${pad(seq)}.json`)).toBe(local);
      const record = JSON.parse(local) as AuditRecord;
      expect(record).toMatchObject({ seq, prev, target: 'main', idempotencyKey: `run-1/main-${seq}` });
      expect(record.signature.keyId).toBe(signing.keyId);
      expect(services.verify(record).ok).toBe(true);
      prev = sha256Hex(local);
    }
    const v = await verifyAudit(services, 'main');
    expect(v).toMatchObject({ ok: true, records: 5, breaks: [] });

    const cli = await runCli(configFile, 'audit', 'main', '--verify');
    expect(cli.stderr).toBe('');
    expect(cli.status).toBe(0);
    expect(cli.stdout).toBe('5 records, chain intact in disk, offsite\n');
  }, 60_000);

  for (const [target, first] of [
    ['race-local', 'a local directory (link)'],
    ['race-s3', 'S3 (agreement over create-once blocks)'],
  ] as const) {
    it(`twenty appends racing from two workers make one gapless chain holding each event once, first destination ${first}`, async () => {
      const workers = [servicesFor(config), servicesFor(config)];
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          appendAudit(workers[i % 2]!, event(target, i + 1, { actor: `person-${i}` }), `run-${i}/worker-${i % 2}`),
        ),
      );
      expect(results.every((r) => r.appended && r.disagreeing.length === 0)).toBe(true);
      expect(results.map((r) => r.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      const trail = (await readAudit(config, services.stores, target)) as AuditRecord[];
      expect(trail.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(new Set(trail.map((r) => r.actor)).size).toBe(20);
      const v = await verifyAudit(services, target);
      expect(v.breaks).toEqual([]);
      expect(v.destinations.map((d) => d.verified)).toEqual([20, 20]);
    }, 120_000);
  }

  it('an append retried with the same idempotency key writes once, and completes the copies a crash left undone', async () => {
    const e = event('retried', 1);
    const first = await appendAudit(services, e, 'run-9/activity-4');
    const again = await appendAudit(services, e, 'run-9/activity-4');
    expect(first).toMatchObject({ seq: 1, appended: true });
    expect(again).toMatchObject({ seq: 1, appended: false });
    // Racing retries (an attempt timed out while still running) also land once.
    const racing = await Promise.all([1, 2, 3].map(() => appendAudit(services, event('retried', 2), 'run-9/activity-7')));
    expect(racing.map((r) => r.seq)).toEqual([2, 2, 2]);
    expect(await readAudit(config, services.stores, 'retried')).toHaveLength(2);

    // A worker that died between the claim (first destination) and the copy: the retry copies.
    await s3client.send(new DeleteObjectCommand({ Bucket: 'audit-plain', Key: `retried/audit/chain/${pad(2)}.json` }));
    expect((await verifyAudit(services, 'retried')).breaks.map((b) => b.kind)).toEqual(['shorter']);
    expect(await appendAudit(services, event('retried', 2), 'run-9/activity-7')).toMatchObject({ seq: 2, appended: false });
    expect(await verifyAudit(services, 'retried')).toMatchObject({ ok: true, records: 2 });
    expect(await readAudit(config, services.stores, 'retried')).toHaveLength(2);
  }, 60_000);

  it('the recordAudit activity records the run it belongs to, whatever the event says, and its retry adds nothing', async () => {
    const { recordAudit } = createRecordActivities(buildDeps({ config }));
    const info = { activityId: '7', attempt: 1, workflowExecution: { workflowId: 'restore/activity', runId: 'real-run' } };
    // A recovery's record: no signed statement behind it to check (activities/gate.ts).
    const claimed = event('activity', 1, { action: 'recover', event: 'failed', workflowId: 'dr/elsewhere', runId: 'other-run' });
    await new MockActivityEnvironment(info).run(recordAudit, claimed);
    await new MockActivityEnvironment({ ...info, attempt: 2 }).run(recordAudit, claimed);
    const trail = await readAudit(config, services.stores, 'activity');
    expect(trail).toHaveLength(1);
    expect(trail[0]).toMatchObject({ seq: 1, workflowId: 'restore/activity', runId: 'real-run', idempotencyKey: 'real-run/7' });
  }, 30_000);

  it('records from before the chain are listed first, as legacy and unverifiable', async () => {
    const old = { ...event('main', 1), at: '2025-06-01T10:00:00.000Z', detail: 'from the old format' };
    await writeFile(path.join(dir, 'disk', 'main', 'audit', '20250601T100000000Z-requested-0a1b2c3d.json'), JSON.stringify(old));
    const trail = await readAudit(config, services.stores, 'main');
    expect(trail).toHaveLength(6);
    expect(trail[0]).toMatchObject({ legacy: true, detail: 'from the old format' });
    const cli = await runCli(configFile, 'audit', 'main');
    expect(cli.status).toBe(0);
    expect(cli.stdout.split('\n')[0]).toMatch(/^legacy, unverifiable {2}2025-06-01T10:00:00.000Z {2}restore requested/);
    const verified = await runCli(configFile, 'audit', 'main', '--verify');
    expect(verified.status).toBe(0);
    expect(verified.stdout).toBe('5 records, chain intact in disk, offsite (and 1 older record from before the chain, unverifiable)\n');
  }, 60_000);
});

describe('tampering', () => {
  const forge = async (target: string, seq: number, edit: (r: AuditRecord) => AuditRecord) => {
    const r = JSON.parse(await readFile(diskFile(target, seq), 'utf8')) as AuditRecord;
    await writeFile(diskFile(target, seq), recordBytes(edit(r)));
  };
  const mallory = () => {
    const key = signingKey(dir, 'mallory');
    return signerFor({ signing: { key: `file:${key.keyFile}`, trust: [key.publicKey] } } as Config);
  };

  const TITLES: Record<(typeof TAMPERED)[number], string> = {
    changed: 'a record changed',
    deleted: 'a middle record deleted',
    inserted: 'a forged record inserted, the later ones renumbered',
    squeezed: 'an unsigned record squeezed in as a new seq',
    swapped: 'two records swapped',
    untrusted: 'a record re-signed by an untrusted key',
    truncated: 'its newest record removed in one destination',
  };
  const cases: Record<(typeof TAMPERED)[number], { tamper: (t: string) => Promise<void>; seq: number; kind: string; says: RegExp }> = {
    changed: {
      tamper: (t) => forge(t, 3, (r) => ({ ...r, detail: 'nothing to see' })),
      seq: 3,
      kind: 'changed',
      says: /record 3 was changed: its signature by key \w+ does not match its content/,
    },
    deleted: { tamper: (t) => unlink(diskFile(t, 3)), seq: 3, kind: 'deleted', says: /record 3 is missing \(the chain goes from 2 to 4\)/ },
    inserted: {
      // A forged record put in as seq 3, the later files renumbered to make room.
      tamper: async (t) => {
        for (const seq of [5, 4, 3]) await rename(diskFile(t, seq), diskFile(t, seq + 1));
        const original = JSON.parse(await readFile(diskFile(t, 4), 'utf8')) as AuditRecord;
        await writeFile(diskFile(t, 3), recordBytes({ ...original, actor: 'mallory', detail: 'approved by bob' }));
      },
      seq: 3,
      kind: 'inserted',
      says: /record 3 was inserted: the record after it chains onto record 2/,
    },
    squeezed: {
      // A new record after the last, chained correctly but signed by nobody.
      tamper: async (t) => {
        const prev = sha256Hex(await readFile(diskFile(t, 5), 'utf8'));
        const fake = { ...event(t, 6, { actor: 'bob' }), seq: 6, prev };
        await writeFile(diskFile(t, 6), `${JSON.stringify(fake)}\n`);
      },
      seq: 6,
      kind: 'inserted',
      says: /record 6 is not a record of this trail: it carries no signature/,
    },
    swapped: {
      tamper: async (t) => {
        const [two, four] = [await readFile(diskFile(t, 2)), await readFile(diskFile(t, 4))];
        await writeFile(diskFile(t, 2), four);
        await writeFile(diskFile(t, 4), two);
      },
      seq: 2,
      kind: 'reordered',
      says: /file 2 holds record 4: a record was moved, copied or renumbered/,
    },
    untrusted: {
      tamper: (t) => forge(t, 3, (r) => mallory().sign({ ...r, actor: 'mallory', detail: 're-signed' })),
      seq: 3,
      kind: 'untrusted',
      says: /record 3: it is signed by key \w+, which is not in signing.trust/,
    },
    truncated: {
      // The newest record removed: the chain in disk is still valid; only offsite shows it.
      tamper: (t) => unlink(diskFile(t, 5)),
      seq: 5,
      kind: 'shorter',
      says: /holds 4 records, destination offsite 5: record 5 is missing here/,
    },
  };

  for (const name of TAMPERED) {
    it(`a trail with ${TITLES[name]} fails \`runbook audit --verify\` (exit 12) and \`runbook check\`, naming the destination and the seq`, async () => {
      const target = `t-${name}`;
      const c = cases[name];
      await appendFive(target);
      expect((await verifyAudit(services, target)).ok).toBe(true);
      await c.tamper(target);

      const v = await verifyAudit(services, target);
      expect(v.ok).toBe(false);
      expect(v.breaks[0]).toMatchObject({ destination: 'disk', seq: c.seq, kind: c.kind });
      expect(v.breaks[0]!.message).toMatch(c.says);

      const [audit, check] = await Promise.all([
        runCli(configFile, 'audit', target, '--verify'),
        runCli(configFile, '--json', 'check', target),
      ]);
      expect(audit.status).toBe(12);
      expect(audit.stderr).toContain('[AUDIT_BROKEN]');
      expect(audit.stderr).toContain(`destination disk, seq ${c.seq}: ${c.kind}: `);
      expect(audit.stderr).toMatch(c.says);
      expect(check.status).toBe(10);
      const problems = (JSON.parse(check.stdout) as { targets: { problems: { code: string; message: string }[] }[] }).targets[0]!.problems;
      const found = problems.filter((p) => p.code === 'audit-broken');
      expect(found).toHaveLength(1);
      expect(found[0]!.message).toContain(`destination disk, seq ${c.seq}: ${c.kind}`);
    }, 60_000);
  }

  it('`runbook check` finds nothing wrong with an intact trail', async () => {
    const check = await runCli(configFile, '--json', 'check', 'main');
    const problems = (JSON.parse(check.stdout) as { targets: { problems: { code: string }[] }[] }).targets[0]!.problems;
    expect(problems.map((p) => p.code)).not.toContain('audit-broken');
    expect(problems.map((p) => p.code)).toContain('no-backup');
  }, 60_000);

  it('two destinations holding different records that both verify are reported as a fork', async () => {
    // Another chain made by the trusted worker for the same target (a fork): each verifies on its own.
    const other = await mkdtemp(path.join(dir, 'fork-'));
    const forked = loadConfig(configFile);
    forked.storage.disk = { type: 'local', path: other };
    forked.targets['t-changed']!.destinations = ['disk'];
    const s = servicesFor(forked);
    for (let n = 1; n <= 2; n++) await appendAudit(s, event('t-changed', n), `fork/${n}`);
    await appendAudit(s, event('t-changed', 3, { detail: 'another story' }), 'fork/3');
    const mixed = loadConfig(configFile);
    mixed.storage.fork = { type: 'local', path: other };
    mixed.targets['t-changed']!.destinations = ['offsite', 'fork'];
    const v = await verifyAudit(servicesFor(mixed), 't-changed');
    expect(v.breaks).toEqual([expect.objectContaining({ destination: 'fork', seq: 1, kind: 'disagrees' })]);
  }, 60_000);
});

describe('what is printed', () => {
  it('a detail with a newline cannot print a line of its own in `runbook audit`', async () => {
    await appendAudit(services, event('escaping', 1, { detail: 'routine\napproved by bob', actor: 'eve\u001b[2K\r' }), 'run-1/esc-1');
    await appendAudit(services, event('escaping', 2, { actor: 'carol' }), 'run-1/esc-2');
    const cli = await runCli(configFile, 'audit', 'escaping');
    expect(cli.status).toBe(0);
    const lines = cli.stdout.split('\n').filter(Boolean);
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.startsWith('#'))).toBe(true);
    expect(lines[0]).toContain('by eve\\x1b[2K\\x0d');
    expect(lines[0]).toContain(': routine\\napproved by bob');
    expect(cli.stdout).not.toMatch(/^approved by bob/m);
    expect(cli.stdout).not.toContain('\u001b');

    const json = await runCli(configFile, '--json', 'audit', 'escaping');
    const records = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditRecord);
    expect(records.map((r) => r.detail)).toEqual(['routine\napproved by bob', 'step 2']);
  }, 60_000);

  it('Slack text escapes &, < and >: a reason makes no link and no mention', async () => {
    const since = hook.received.length;
    await sendNotification(config, {
      event: 'restore-awaiting-approval',
      target: 'chat',
      at: new Date().toISOString(),
      title: 'Restore of chat <!here> awaits approval',
      text: 'reason: <!channel> see <https://evil.example/login|the runbook> & approve <@U012AB3CD>',
    });
    const body = await hook.waitFor('restore-awaiting-approval', since);
    expect(body.text).toBe(
      '*Restore of chat &lt;!here&gt; awaits approval*\n' +
        'reason: &lt;!channel&gt; see &lt;https://evil.example/login|the runbook&gt; &amp; approve &lt;@U012AB3CD&gt;',
    );
    expect(body.text).not.toMatch(/[<>]/);
  }, 30_000);
});

describe('Object Lock', () => {
  it('records in a bucket with Object Lock are kept under retention, and cannot be overwritten or deleted', async () => {
    await Promise.all([1, 2, 3].map((n) => appendAudit(services, event('locked', n), `run-1/locked-${n}`)));
    expect(await verifyAudit(services, 'locked')).toMatchObject({ ok: true, records: 3 });
    const key = `locked/audit/chain/${pad(2)}.json`;
    const { Retention } = await s3client.send(new GetObjectRetentionCommand({ Bucket: 'audit-locked', Key: key }));
    expect(Retention?.Mode).toBe('COMPLIANCE');
    const days = (Retention!.RetainUntilDate!.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(1.9);
    expect(days).toBeLessThanOrEqual(2);
    const original = await objectText('audit-locked', key);
    await expect(s3client.send(new DeleteObjectCommand({ Bucket: 'audit-locked', Key: key }))).rejects.toMatchObject({
      name: 'AccessDenied',
    });
    await expect(s3client.send(new PutObjectCommand({ Bucket: 'audit-locked', Key: key, Body: 'forged' }))).rejects.toMatchObject({
      name: 'AccessDenied',
    });
    expect(await objectText('audit-locked', key)).toBe(original);
    // A retried append meets the locked copies and leaves them be.
    expect(await appendAudit(services, event('locked', 3), 'run-1/locked-3')).toMatchObject({ appended: false, disagreeing: [] });
  }, 60_000);

  it('records in a bucket without Object Lock carry no retention', async () => {
    await expect(
      s3client.send(new GetObjectRetentionCommand({ Bucket: 'audit-plain', Key: `main/audit/chain/${pad(1)}.json` })),
    ).rejects.toThrow();
  });
});
