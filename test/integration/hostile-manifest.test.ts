// Manifests that lie, and stored files that were tampered with: a changed manifest no longer verifies
// against the worker's signature and is refused; one that lies with a valid signature (a worker's bug,
// a stolen key) is still caught by `backups verify` (verifyCopy) and the restore plan; and a manifest
// moved into another backup's folder must not pass for it.
import { copyFileSync, existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { retention } from '../../domain/retention';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBackup, listBackups, listDestination } from '../../domain/catalog';
import { removeLocalRdb } from '../../domain/restore/local-rdb';
import { storeRegistry } from '../../domain/storage';
import { signerFor } from '../../domain/trust/signing';
import { verifyCopy } from '../../domain/verify';
import type { RestoreReport } from '../../common/restore-types';
import { artifactKeys, type BackupReport, type Manifest } from '../../common/types';
import { failureOf } from '../support/failure';
import { startRedis, type RedisProcess } from '../support/redis';
import { startRestoreEnv, type RestoreEnv } from '../support/restore-env';

let t: RestoreEnv;
let redis: RedisProcess;
const backups: BackupReport[] = [];

beforeAll(async () => {
  redis = await startRedis();
  const c = redis.client();
  const p = c.pipeline();
  for (let i = 0; i < 200; i++) p.set(`user:${i}`, `value-${i}-${'x'.repeat(i % 40)}`);
  p.hset('hash:1', { a: '1', b: '2' });
  await p.exec();
  t = await startRestoreEnv(
    'hostile-manifest',
    () => `
  main:
    url: ${redis.url}
    destinations: [disk]
    retention: { keepLast: 20 }
`,
  );
  // Every backup the tests tamper with is taken first: a later backup's retention would remove the
  // folder of a backup whose manifest was swapped away (it looks abandoned).
  for (let i = 0; i < 6; i++) {
    await c.set('seq', String(i));
    backups.push(await t.backup('main'));
  }
}, 120_000);

afterAll(async () => {
  await Promise.all(backups.map((b) => removeLocalRdb(b.backupId)));
  await t?.close();
  await redis?.stop();
});

const stores = () => storeRegistry(t.config);
const fileOf = (key: string) => path.join(t.dir, 'backups', key);
const manifestFile = (id: string) => fileOf(artifactKeys('main', id).manifest);
const readManifest = (id: string) => JSON.parse(readFileSync(manifestFile(id), 'utf8')) as Manifest;
const writeManifest = (id: string, m: Manifest) => writeFileSync(manifestFile(id), JSON.stringify(m, null, 2));
/** The same lie, signed again with the worker's own key: only the checks of the data can catch it then. */
const resigned = (m: Manifest) => signerFor(t.config).sign(m);

/** What `runbook backups verify <id>` does: the manifest as stored, every copy re-read against it. */
async function verifyBackup(id: string) {
  const entry = await findBackup(t.config, stores(), id);
  const m = entry.manifest;
  const key = artifactKeys('main', id).data(m.artifact.file);
  return Promise.all(entry.destinations.map((d) => verifyCopy(stores()(d), key, { ...m.artifact, rdb: m.rdb })));
}

let seq = 0;
async function planDryRun(from: string): Promise<RestoreReport> {
  return t.env.client.workflow.execute('restoreRedis', {
    taskQueue: t.taskQueue,
    workflowId: `restore-plan/main/${++seq}-${Date.now()}`,
    args: [{ target: 'main', from, reason: 'x', requestedBy: 'me', dryRun: true }],
  });
}

describe('a manifest that lies', () => {
  it('about sizes or checksums: refused as forged, and even signed again verify reports the copy not ok; the honest manifest passes again', async () => {
    const id = backups[0]!.backupId;
    const honest = readManifest(id);
    expect((await verifyBackup(id)).map((c) => c.ok)).toEqual([true]);

    const flip = (hex: string) => (hex[0] === '0' ? '1' : '0') + hex.slice(1);
    const lies: [string, (m: Manifest) => void, RegExp][] = [
      ['artifact.size', (m) => (m.artifact.size += 1), /^size \d+ != \d+$/],
      ['artifact.sha256', (m) => (m.artifact.sha256 = flip(m.artifact.sha256)), /^sha256 [0-9a-f]{12}… != [0-9a-f]{12}…$/],
      ['rdb.size', (m) => (m.rdb.size -= 1), /decompressed RDB does not match its checksum/],
      ['rdb.sha256', (m) => (m.rdb.sha256 = flip(m.rdb.sha256)), /decompressed RDB does not match its checksum/],
    ];
    try {
      for (const [field, lie, detail] of lies) {
        const m = structuredClone(honest);
        lie(m);
        writeManifest(id, m);
        await expect(verifyBackup(id), field).rejects.toMatchObject({
          code: 'SIGNATURE_INVALID',
          message: expect.stringMatching(/not trusted \(forged\).*does not match its content/),
        });
        writeManifest(id, resigned(m));
        const checks = await verifyBackup(id);
        expect(checks, field).toHaveLength(1);
        expect(checks[0]!.ok, field).toBe(false);
        expect(checks[0]!.detail, field).toMatch(detail);
      }
    } finally {
      writeManifest(id, honest);
    }
    expect((await verifyBackup(id)).map((c) => c.ok)).toEqual([true]);
  });

  it('about the RDB version: the restore plan refuses it as forged, and signed again fails with VERIFY_FAILED naming both versions', async () => {
    const id = backups[1]!.backupId;
    const m = readManifest(id);
    expect(m.rdb.version).toBe(10); // Redis 7.0
    writeManifest(id, { ...m, rdb: { ...m.rdb, version: 9 } });
    const forged = await failureOf(planDryRun(id));
    expect(forged.type).toBe('SIGNATURE_INVALID');
    expect(forged.message).toContain(`backup ${id} is not trusted (forged)`);
    writeManifest(id, resigned({ ...m, rdb: { ...m.rdb, version: 9 } }));
    const f = await failureOf(planDryRun(id));
    expect(f.type).toBe('VERIFY_FAILED');
    expect(f.message).toContain(`the manifest of ${id} says RDB version 9, the file is version 10`);
  });

  it('about the RDB version is caught even when an earlier plan left the verified file on the worker', async () => {
    const id = backups[2]!.backupId;
    const honest = readManifest(id);
    const ok = await planDryRun(id);
    expect(ok.outcome).toBe('dry-run');
    expect(ok.plan.backup.rdbVersion).toBe(10);
    writeManifest(id, { ...honest, rdb: { ...honest.rdb, version: 9 } });
    expect((await failureOf(planDryRun(id))).type).toBe('SIGNATURE_INVALID');
    writeManifest(id, resigned({ ...honest, rdb: { ...honest.rdb, version: 9 } }));
    const f = await failureOf(planDryRun(id));
    expect(f.type).toBe('VERIFY_FAILED');
    expect(f.message).toContain('says RDB version 9, the file is version 10');
  });
});

describe('a tampered stored file', () => {
  it('truncated: verify reports it not ok and the restore plan refuses it', async () => {
    const b = backups[3]!;
    const file = fileOf(artifactKeys('main', b.backupId).data(b.manifest.artifact.file));
    const size = readFileSync(file).length;
    truncateSync(file, Math.floor(size / 2));
    const [check] = await verifyBackup(b.backupId);
    expect(check!.ok).toBe(false);
    expect(check!.detail).toMatch(/unreadable|size \d+ != \d+/);
    const f = await failureOf(planDryRun(b.backupId));
    expect(f.type).toBe('VERIFY_FAILED');
    expect(f.message).toMatch(new RegExp(`no copy of ${b.backupId} checks out \\(disk: `));
  });
});

describe('a manifest swapped in from another backup', () => {
  it('makes the backup whose folder it sits in invisible, and leaves the other one as it was', async () => {
    const [a, b] = [backups[4]!, backups[5]!];
    copyFileSync(manifestFile(a.backupId), manifestFile(b.backupId));

    const listing = await listDestination(t.config, stores(), 'disk', 'main');
    expect(listing.withManifest.has(b.backupId)).toBe(false);
    expect(listing.invalidManifest).toContain(b.backupId);
    expect(listing.withManifest.get(a.backupId)?.backupId).toBe(a.backupId);

    const listed = (await listBackups(t.config, stores(), 'main')).map((e) => e.backupId);
    expect(listed).not.toContain(b.backupId);
    expect(listed.filter((id) => id === a.backupId)).toHaveLength(1);
    await expect(findBackup(t.config, stores(), b.backupId)).rejects.toMatchObject({ code: 'BACKUP_NOT_FOUND' });

    const f = await failureOf(planDryRun(b.backupId));
    expect(f.type).toBe('BACKUP_NOT_FOUND');
    // A is untouched: its own manifest still proves its own copy.
    expect((await verifyBackup(a.backupId)).map((c) => c.ok)).toEqual([true]);

    // Retention never deletes a folder whose manifest was tampered with: it reports it instead.
    const outcome = await retention({ config: t.config, stores: stores(), temporal: t.env.client }, 'main', false);
    expect(outcome.suspicious).toContain(`disk:${b.backupId}`);
    expect(outcome.abandoned).not.toContain(b.backupId);
    expect(existsSync(manifestFile(b.backupId))).toBe(true);
  });
});
