// Storage is not trusted: someone with write access to a destination plants manifests and drill
// reports. Only what the worker signed, and what can be true, counts: against a real Temporal dev
// server and worker, a real redis-server, a local destination and an S3 one.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../common/config';
import { drillReportKeys, type DrillReport } from '../../common/drill-types';
import { artifactKeys, type BackupReport, type Manifest } from '../../common/types';
import type { RestoreReport } from '../../common/restore-types';
import { findBackup, listBackups } from '../../domain/catalog';
import { generateIdentity } from '../../domain/crypto/age';
import { listDrillReports, writeDrillReport } from '../../domain/drill-store';
import { removeLocalRdb } from '../../domain/restore/local-rdb';
import { retention } from '../../domain/retention';
import { storeRegistry } from '../../domain/storage';
import { signerFor, verifierFor } from '../../domain/trust/signing';
import { runCli } from '../support/cli';
import { startRedis, type RedisProcess } from '../support/redis';
import { startRestoreEnv, type RestoreEnv } from '../support/restore-env';
import { startS3, type S3Server } from '../support/s3';
import { signingKey } from '../support/signing';

let t: RestoreEnv;
let redis: RedisProcess;
let s3: S3Server;
/** A signer with the attacker's own key: a perfectly valid signature, by a key nobody trusts. */
let attacker: ReturnType<typeof signerFor>;
const taken: BackupReport[] = [];

beforeAll(async () => {
  [redis, s3] = await Promise.all([startRedis(), startS3()]);
  await s3.createBucket('signed');
  process.env.SIGNED_TEST_S3_KEY = s3.accessKeyId;
  process.env.SIGNED_TEST_S3_SECRET = s3.secretAccessKey;
  process.env.SIGNED_TEST_AGE_KEY = generateIdentity();
  const c = redis.client();
  const p = c.pipeline();
  for (let i = 0; i < 300; i++) p.set(`user:${i}`, `value-${i}`);
  p.hset('hash:1', { a: '1', b: '2' });
  await p.exec();
  t = await startRestoreEnv(
    'signed-artifacts',
    () => `
  main:
    url: ${redis.url}
    destinations: [disk, offsite]
    retention: { keepLast: 20 }
    drill: { interval: 35d }
    check: { diskFull: 1 }
  vault:
    url: ${redis.url}
    destinations: [disk, offsite]
    encrypt: k1
`,
    {
      storage: `  offsite: { type: s3, bucket: signed, endpoint: "${s3.endpoint}", forcePathStyle: true, accessKeyId: env:SIGNED_TEST_S3_KEY, secretAccessKey: env:SIGNED_TEST_S3_SECRET }`,
      top: `encryption:\n  keys: { k1: env:SIGNED_TEST_AGE_KEY }\n`,
    },
  );
  const theirs = signingKey(t.dir, 'attacker');
  attacker = signerFor({ ...t.config, signing: { key: `file:${theirs.keyFile}`, trust: [theirs.publicKey] } } as Config);
  taken.push(await t.backup('main'));
}, 120_000);

afterAll(async () => {
  await Promise.all(taken.map((b) => removeLocalRdb(b.backupId)));
  await t?.close();
  await Promise.all([redis?.stop(), s3?.stop()]);
});

const stores = () => storeRegistry(t.config);
const diskFile = (target: string, id: string) => path.join(t.dir, 'backups', artifactKeys(target, id).manifest);
const readStored = async (destination: string, target: string, id: string) =>
  JSON.parse((await stores()(destination).readText(artifactKeys(target, id).manifest))!) as Manifest;
const plant = (destination: string, m: object) =>
  stores()(destination).write(artifactKeys((m as Manifest).target, (m as Manifest).backupId).manifest, JSON.stringify(m, null, 2));

interface ListedBackup {
  backupId: string;
  destinations: string[];
  trust: { state: string; reason?: string; keyId?: string };
  otherCopies?: { destination: string; trust: { state: string; reason: string } }[];
}
async function listedByCli(target: string): Promise<ListedBackup[]> {
  const r = await runCli(t.configFile, '--json', 'backups', 'list', target);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ListedBackup[];
}

/** A manifest like `m`, for another backup id of the same target, taken at `createdAt`. */
function like(m: Manifest, backupId: string, createdAt: string): Manifest {
  const { signature: _drop, ...rest } = m;
  return { ...structuredClone(rest), backupId, createdAt, completedAt: createdAt };
}

describe('manifests', () => {
  it("of a backup are signed by the worker's key in every destination, and verify", async () => {
    const b = taken[0]!;
    const verify = verifierFor(t.config);
    for (const d of ['disk', 'offsite']) {
      const m = await readStored(d, 'main', b.backupId);
      expect(m.signature, d).toMatchObject({ alg: 'ed25519', keyId: t.signing.keyId });
      expect(verify(m), d).toEqual({ ok: true, keyId: t.signing.keyId });
    }
    const [latest] = await listBackups(t.config, stores(), 'main');
    expect(latest).toMatchObject({ backupId: b.backupId, destinations: ['disk', 'offsite'], trust: { state: 'trusted' } });
    expect((await listedByCli('main')).find((e) => e.backupId === b.backupId)?.trust).toEqual({
      state: 'trusted',
      keyId: t.signing.keyId,
    });
  });

  it('planted dated 2099, signed by an unknown key or unsigned, are not "latest", are listed with why, and retention leaves them', async () => {
    const honest = await readStored('offsite', 'main', taken[0]!.backupId);
    const signedPlant = attacker.sign(like(honest, 'main-20990101T000000Z-deadbeef', '2099-01-01T00:00:00.000Z'));
    const unsignedPlant = like(honest, 'main-20990102T000000Z-0badf00d', '2099-01-02T00:00:00.000Z');
    await plant('offsite', signedPlant);
    await plant('offsite', unsignedPlant);
    try {
      const trusted = await listBackups(t.config, stores(), 'main');
      expect(trusted.map((e) => e.backupId)).toEqual([taken[0]!.backupId]);

      const all = await listedByCli('main');
      expect(all.map((e) => e.backupId).slice(0, 2)).toEqual([unsignedPlant.backupId, signedPlant.backupId]);
      const bySigned = all.find((e) => e.backupId === signedPlant.backupId)!;
      expect(bySigned.trust.state).toBe('forged');
      expect(bySigned.trust.reason).toContain(`signed by key ${attacker.keyId}, which is not in signing.trust`);
      expect(bySigned.trust.reason).toContain('it is dated 2099-01-01T00:00:00.000Z, in the future');
      const byNone = all.find((e) => e.backupId === unsignedPlant.backupId)!;
      // Not "unsigned" (a backup from before signing): nothing made before could be dated in 2099.
      expect(byNone.trust).toEqual({
        state: 'refused',
        reason: 'it is dated 2099-01-02T00:00:00.000Z, in the future; it carries no signature',
      });
      const text = await runCli(t.configFile, 'backups', 'list', 'main');
      expect(text.stdout).toMatch(new RegExp(`${unsignedPlant.backupId} .* refused +offsite`));
      expect(text.stdout).toContain('  refused: it is dated 2099-01-02T00:00:00.000Z, in the future; it carries no signature');

      // Neither is usable, even with --allow-unsigned.
      await expect(findBackup(t.config, stores(), signedPlant.backupId, { allowUnsigned: true })).rejects.toMatchObject({
        code: 'SIGNATURE_INVALID',
      });
      await expect(findBackup(t.config, stores(), unsignedPlant.backupId, { allowUnsigned: true })).rejects.toMatchObject({
        code: 'SIGNATURE_INVALID',
      });

      // "latest" is the honest backup.
      const plan = await planDryRun('latest');
      expect(plan.plan.backup).toMatchObject({ backupId: taken[0]!.backupId, trust: 'signed', rdbSha256: honest.rdb.sha256 });

      // `runbook check` sees tampering: the planted manifests are a problem, not the newest backup.
      const check = await runCli(t.configFile, '--json', 'check', 'main');
      const checked = JSON.parse(check.stdout) as {
        targets: { problems: { message: string }[]; facts: { newestBackup: { backupId: string } } }[];
      };
      expect(checked.targets[0]!.facts.newestBackup.backupId).toBe(taken[0]!.backupId);
      expect(checked.targets[0]!.problems.map((p) => p.message).join('\n')).toContain(`offsite:${signedPlant.backupId} (forged: `);

      // Retention counts trusted backups only, and never deletes what it does not trust.
      const outcome = await retention({ config: t.config, stores: stores(), temporal: t.env.client }, 'main', false);
      expect(outcome.deleted).toEqual([]);
      expect(outcome.suspicious).toEqual(
        expect.arrayContaining([
          expect.stringMatching(new RegExp(`^offsite:${signedPlant.backupId} \\(forged: `)),
          expect.stringMatching(new RegExp(`^offsite:${unsignedPlant.backupId} \\(refused: `)),
        ]),
      );
      expect(await stores()('offsite').readText(artifactKeys('main', signedPlant.backupId).manifest)).not.toBeNull();
    } finally {
      await stores()('offsite').removeDir(artifactKeys('main', signedPlant.backupId).dir);
      await stores()('offsite').removeDir(artifactKeys('main', unsignedPlant.backupId).dir);
    }
  });

  it('saying "not encrypted" for a target with encrypt: is refused, even signed with the trusted key', async () => {
    const b = await t.backup('vault');
    taken.push(b);
    const real = await readStored('disk', 'vault', b.backupId);
    expect(real.artifact.encryption).not.toBeNull();
    const id = `vault-${new Date(Date.now() + 60_000)
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d{3}/, '')}-c1ea47e0`;
    const clear = like(real, id, new Date(Date.now() + 60_000).toISOString());
    clear.artifact = { ...clear.artifact, encryption: null, file: 'dump.rdb.zst' };
    // The worker's own key: a valid signature does not make an impossible manifest true.
    await plant('disk', signerFor(t.config).sign(clear));
    const because = 'target vault encrypts its backups; this manifest says the backup is not encrypted';
    try {
      expect((await listBackups(t.config, stores(), 'vault')).map((e) => e.backupId)).toEqual([b.backupId]);
      const all = await listBackups(t.config, stores(), 'vault', { includeUntrusted: true });
      expect(all.find((e) => e.backupId === id)?.trust).toEqual({ state: 'refused', reason: because });
      for (const allowUnsigned of [false, true]) {
        await expect(findBackup(t.config, stores(), id, { allowUnsigned })).rejects.toMatchObject({
          code: 'SIGNATURE_INVALID',
          message: expect.stringContaining(because),
        });
      }
      const f = await failureOfPlan(id, 'vault');
      expect(f).toMatch(because);
    } finally {
      await stores()('disk').removeDir(artifactKeys('vault', id).dir);
    }
  });

  it('with one changed byte (the keys count) is forged: the other copy still counts, and with both changed the backup does not', async () => {
    const id = taken[0]!.backupId;
    const file = diskFile('main', id);
    const honestText = readFileSync(file, 'utf8');
    const honest = JSON.parse(honestText) as Manifest;
    const keys = honest.rdb.keys;
    const changed = honestText.replace(`"keys": ${keys},`, `"keys": ${keys + 1},`);
    expect(changed).not.toBe(honestText);
    writeFileSync(file, changed);
    try {
      const [entry] = await listBackups(t.config, stores(), 'main');
      expect(entry).toMatchObject({ backupId: id, destinations: ['offsite'], trust: { state: 'trusted' } });
      expect(entry!.otherCopies).toEqual([
        { destination: 'disk', trust: { state: 'forged', reason: `its signature by key ${t.signing.keyId} does not match its content` } },
      ]);

      await plant('offsite', JSON.parse(changed) as Manifest);
      expect(await listBackups(t.config, stores(), 'main')).toEqual([]);
      await expect(findBackup(t.config, stores(), id)).rejects.toMatchObject({
        code: 'SIGNATURE_INVALID',
        message: expect.stringContaining('does not match its content'),
      });
      const verify = await runCli(t.configFile, 'backups', 'verify', id);
      expect(verify.status).toBe(12);
      expect(verify.stderr).toContain('not trusted (forged)');
      expect((await listedByCli('main')).find((e) => e.backupId === id)?.trust.state).toBe('forged');
    } finally {
      writeFileSync(file, honestText);
      await plant('offsite', honest);
    }
    expect((await listBackups(t.config, stores(), 'main')).map((e) => e.destinations)).toEqual([['disk', 'offsite']]);
  });
});

describe('drill reports', () => {
  const report = (drillId: string, finishedAt: Date): DrillReport => ({
    drillId,
    target: 'main',
    workflowId: `drill/main/${drillId}`,
    runId: 'run',
    requestedBy: 'mallory',
    startedAt: new Date(finishedAt.getTime() - 30_000).toISOString(),
    finishedAt: finishedAt.toISOString(),
    outcome: 'passed',
    phases: [],
    checks: [],
    rto: { measuredMs: 20_000, objectiveMs: 3_600_000, met: true },
    rpo: { newestAgeMs: 1000, maxGapMs: 1000, windowMs: 86_400_000, backupsInWindow: 1, objectiveMs: 86_400_000, met: true },
    objectivesMet: true,
  });
  const plantReport = (r: object) =>
    Promise.all(
      ['disk', 'offsite'].map((d) => stores()(d).write(drillReportKeys('main', (r as DrillReport).drillId).json, JSON.stringify(r))),
    );

  it('forged or unsigned (passed, newest) do not make `runbook check` pass; a signed one does', async () => {
    const forged = attacker.sign(report('main-drill-forged', new Date()));
    const changed = { ...signerFor(t.config).sign(report('main-drill-changed', new Date())), requestedBy: 'someone else' };
    const unsigned = report('main-drill-unsigned', new Date());
    await Promise.all([plantReport(forged), plantReport(changed), plantReport(unsigned)]);

    expect(await listDrillReports(t.config, stores(), 'main')).toEqual([]);
    const r = await runCli(t.configFile, 'check', 'main');
    expect(r.status, r.stdout).toBe(10);
    expect(r.stdout).toMatch(/^main: FAIL drill-overdue$/m);
    expect(r.stdout).toContain('never passed a drill');
    expect(r.stdout).toContain(
      `note: drill report main-drill-forged in disk, offsite ignored: forged (it is signed by key ${attacker.keyId}, which is not in signing.trust)`,
    );
    expect(r.stdout).toContain(
      `note: drill report main-drill-changed in disk, offsite ignored: forged (its signature by key ${t.signing.keyId} does not match`,
    );
    expect(r.stdout).toContain('note: drill report main-drill-unsigned in disk, offsite ignored: unsigned (it carries no signature)');

    // The worker's own report, stored as a drill stores it, counts.
    const real = report('main-drill-real', new Date(Date.now() - 60_000));
    await writeDrillReport(t.config, stores(), real, '# drill');
    expect((await listDrillReports(t.config, stores(), 'main')).map((d) => d.drillId)).toEqual(['main-drill-real']);
    const ok = await runCli(t.configFile, '--json', 'check', 'main');
    expect(ok.status, ok.stdout).toBe(0);
    const out = JSON.parse(ok.stdout) as { targets: { facts: { lastDrill: { drillId: string } }; ignored: string[] }[] };
    expect(out.targets[0]!.facts.lastDrill.drillId).toBe('main-drill-real');
    expect(out.targets[0]!.ignored).toHaveLength(3);
  });
});

let seq = 0;
function planDryRun(from: string, target = 'main', allowUnsigned?: boolean): Promise<RestoreReport> {
  return t.env.client.workflow.execute('restoreRedis', {
    taskQueue: t.taskQueue,
    workflowId: `restore-plan/${target}/${++seq}-${Date.now()}`,
    args: [{ target, from, reason: 'x', requestedBy: 'me', dryRun: true, ...(allowUnsigned ? { allowUnsigned } : {}) }],
  });
}
async function failureOfPlan(from: string, target: string): Promise<string> {
  const r = await runCli(t.configFile, '--json', 'restore', target, '--from', from, '--reason', 'test the refusal', '--dry-run');
  expect(r.status).not.toBe(0);
  return r.stderr;
}

describe('a backup made before signing (unsigned)', () => {
  it('is listed as unsigned, is never "latest", and restore --dry-run refuses it without --allow-unsigned and plans it with', async () => {
    const b = await t.backup('main');
    taken.push(b);
    // As a backup from before manifests were signed: the same manifest without its signature.
    for (const d of ['disk', 'offsite']) {
      const { signature: _drop, ...old } = await readStored(d, 'main', b.backupId);
      await plant(d, old);
    }
    const listed = (await listedByCli('main')).find((e) => e.backupId === b.backupId)!;
    expect(listed).toMatchObject({ destinations: ['disk', 'offsite'], trust: { state: 'unsigned', reason: 'it carries no signature' } });
    expect((await listBackups(t.config, stores(), 'main'))[0]!.backupId).toBe(taken[0]!.backupId);
    expect((await planDryRun('latest')).plan.backup.backupId).toBe(taken[0]!.backupId);

    const refused = await runCli(t.configFile, '--json', 'restore', 'main', '--from', b.backupId, '--reason', 'an old backup', '--dry-run');
    expect(refused.status, refused.stderr).toBe(12);
    const error = (JSON.parse(refused.stderr) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('SIGNATURE_INVALID');
    expect(error.message).toContain(`backup ${b.backupId} is unsigned`);
    // The hint, which crosses Temporal in the message, says what to do.
    expect(error.message).toContain('--allow-unsigned');

    const planned = await runCli(
      t.configFile,
      '--json',
      'restore',
      'main',
      '--from',
      b.backupId,
      '--reason',
      'an old backup',
      '--dry-run',
      '--allow-unsigned',
    );
    expect(planned.status, planned.stderr).toBe(0);
    const report = JSON.parse(planned.stdout) as RestoreReport;
    expect(report.outcome).toBe('dry-run');
    expect(report.plan.allowUnsigned).toBe(true);
    expect(report.plan.backup).toMatchObject({ backupId: b.backupId, trust: 'unsigned', rdbSha256: b.manifest.rdb.sha256 });

    // Retention neither counts it nor deletes it: it is reported for a person to look at.
    const outcome = await retention({ config: t.config, stores: stores(), temporal: t.env.client }, 'main', false);
    expect(outcome.suspicious).toContain(`disk:${b.backupId} (unsigned: it carries no signature)`);
    expect(outcome.deleted).not.toContain(b.backupId);
  });
});
