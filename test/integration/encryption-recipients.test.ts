// Backups encrypted to public keys: a worker that only backs up holds no secret, the manifest names
// every recipient by fingerprint, and any one matching identity reads the backup: the target's, for a
// restore, or the offline break-glass one alone, with nothing but `age` and `zstd`.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../common/config';
import { RunbookError } from '../../common/errors';
import { artifactKeys, type BackupReport } from '../../common/types';
import { fingerprint, generateIdentity, parseIdentity } from '../../domain/crypto/age';
import { keyring } from '../../domain/crypto/keys';
import { storeRegistry } from '../../domain/storage';
import { toolPath } from '../../domain/tools';
import { verifyCopy } from '../../domain/verify';
import { digestAll, fillDataset } from '../support/dataset';
import { startRedis, type RedisProcess } from '../support/redis';
import { awaitingApproval, startRestoreEnv, type RestoreEnv } from '../support/restore-env';

const OPS_KEY = generateIdentity();
const OPS = parseIdentity(OPS_KEY).recipient;
const BREAK_GLASS_KEY = generateIdentity();
const BREAK_GLASS = parseIdentity(BREAK_GLASS_KEY).recipient;
const K1_KEY = generateIdentity();

let t: RestoreEnv;
let redis: RedisProcess;

beforeAll(async () => {
  redis = await startRedis();
  await fillDataset(redis.client(), { keys: 300 });
  // The ops identity is configured by reference but not resolvable: this worker backs up without it.
  delete process.env.RCPT_TEST_OPS_KEY;
  process.env.RCPT_TEST_K1_KEY = K1_KEY;
  t = await startRestoreEnv(
    'encryption-recipients-test',
    () => `
  main:
    url: ${redis.url}
    destinations: [disk]
    encrypt: ops
    verify: reread # what a worker reads back without the key (and, below, with it)
    restore: { approvers: [alice] }
  keyed:
    url: ${redis.url}
    destinations: [disk]
    encrypt: k1
    verify: reread
`,
    {
      top: `
encryption:
  keys:
    ops-id: env:RCPT_TEST_OPS_KEY
    k1: env:RCPT_TEST_K1_KEY
  recipients:
    ops: ${OPS}
  breakGlass: [${BREAK_GLASS}]
`,
    },
  );
});

afterAll(async () => {
  await t?.close();
  await redis?.stop();
  delete process.env.RCPT_TEST_OPS_KEY;
  delete process.env.RCPT_TEST_K1_KEY;
});

const fileOf = (target: string, r: BackupReport) =>
  path.join(t.dir, 'backups', artifactKeys(target, r.backupId).data(r.manifest.artifact.file));
const expectedOf = (r: BackupReport) => ({ ...r.manifest.artifact, rdb: r.manifest.rdb });
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const withKeys = (keys: string) =>
  parseConfig(
    `storage: { disk: { type: local, path: ${t.dir}/backups } }
encryption: { ${keys} }
targets: { main: { url: "${redis.url}", destinations: [disk] } }
`,
    path.join(t.dir, 'reader.yaml'),
  );

describe('backups encrypted to recipients', () => {
  let backup: BackupReport;

  it('are made by a worker without the secret key, naming every recipient by fingerprint', { timeout: 60_000 }, async () => {
    backup = await t.backup('main');
    expect(backup.manifest.artifact.file).toBe('dump.rdb.zst.age');
    expect(backup.manifest.artifact.encryption).toEqual({
      format: 'age-x25519',
      keyId: 'ops',
      fingerprint: fingerprint(OPS),
      recipients: [fingerprint(OPS), fingerprint(BREAK_GLASS)],
    });
    // What it could check without a key: the stored bytes, as hashed when written.
    expect(backup.manifest.verification.copies).toEqual([
      expect.objectContaining({ destination: 'disk', ok: true, detail: expect.stringMatching(/recipients this worker holds no key of/) }),
    ]);
    const stored = readFileSync(fileOf('main', backup));
    expect(stored.subarray(0, 22).toString()).toBe('age-encryption.org/v1\n');
    expect(
      stored
        .subarray(0, 400)
        .toString('latin1')
        .match(/\n-> X25519 /g),
    ).toHaveLength(2);
    expect(stored.includes(Buffer.from('REDIS00'))).toBe(false);
  });

  it('cannot be read without a matching identity: the error names the fingerprints', async () => {
    const err = await verifyCopy(
      storeRegistry(t.config)('disk'),
      artifactKeys('main', backup.backupId).data('dump.rdb.zst.age'),
      expectedOf(backup),
      {
        keys: keyring(t.config),
      },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunbookError);
    expect((err as RunbookError).code).toBe('SECRET_UNRESOLVED');
    expect((err as RunbookError).message).toContain(`${fingerprint(OPS)}, ${fingerprint(BREAK_GLASS)}`);
    expect((err as RunbookError).message).toMatch(/no configured key is one of them/);
    expect((err as RunbookError).message).toContain(`k1 (${fingerprint(parseIdentity(K1_KEY).recipient)})`);
    expect((err as RunbookError).message).toMatch(/RCPT_TEST_OPS_KEY is not set/);
    expect((err as RunbookError).hint).toMatch(/encryption\.keys/);
  });

  it('are read with the break-glass identity alone, by age and zstd (docs/emergency-decrypt.md)', () => {
    const keyFile = path.join(t.dir, 'break-glass.txt');
    writeFileSync(keyFile, `${BREAK_GLASS_KEY}\n`, { mode: 0o600 });
    const rdb = execFileSync('sh', ['-c', `age -d -i "${keyFile}" "${fileOf('main', backup)}" | "${toolPath('zstd')}" -d`], {
      maxBuffer: 1 << 30,
    });
    expect(rdb.subarray(0, 5).toString()).toBe('REDIS');
    expect(sha256(rdb)).toBe(backup.manifest.rdb.sha256);
  });

  it('are read by this program with any identity of a recipient: the target one, or the break-glass one', async () => {
    process.env.RCPT_TEST_BREAK_GLASS = BREAK_GLASS_KEY;
    try {
      const key = artifactKeys('main', backup.backupId).data('dump.rdb.zst.age');
      for (const config of [
        withKeys('keys: { bg: env:RCPT_TEST_BREAK_GLASS }'),
        withKeys('keys: { wrong: env:RCPT_TEST_K1_KEY, bg: env:RCPT_TEST_BREAK_GLASS }'),
      ]) {
        const check = await verifyCopy(storeRegistry(config)('disk'), key, expectedOf(backup), { keys: keyring(config) });
        expect(check.ok, check.detail).toBe(true);
        expect(check.detail).toMatch(/RDB sha256 .* ok/);
      }
    } finally {
      delete process.env.RCPT_TEST_BREAK_GLASS;
    }
  });

  it('are restored once the worker has the identity', { timeout: 120_000 }, async () => {
    const c = redis.client();
    await c.set('rcpt:probe', 'before');
    const before = await digestAll(c);
    const r = await t.backup('main');
    await c.set('rcpt:probe', 'after');
    process.env.RCPT_TEST_OPS_KEY = OPS_KEY;
    try {
      const handle = await t.startRestore({ target: 'main', from: r.backupId });
      await awaitingApproval(handle);
      await t.decide('main', 'alice');
      await handle.result();
    } finally {
      delete process.env.RCPT_TEST_OPS_KEY;
    }
    expect(await c.get('rcpt:probe')).toBe('before');
    expect(await digestAll(c)).toEqual(before);
  });

  it(
    'a target encrypting to a key adds the break-glass recipient too, and its worker checks the RDB in full',
    { timeout: 60_000 },
    async () => {
      const r = await t.backup('keyed');
      expect(r.manifest.artifact.encryption?.recipients).toEqual([fingerprint(parseIdentity(K1_KEY).recipient), fingerprint(BREAK_GLASS)]);
      expect(r.manifest.verification.copies[0]?.detail).toMatch(/RDB sha256 .* ok/);
      const keyFile = path.join(t.dir, 'break-glass.txt');
      const rdb = execFileSync('sh', ['-c', `age -d -i "${keyFile}" "${fileOf('keyed', r)}" | "${toolPath('zstd')}" -d`], {
        maxBuffer: 1 << 30,
      });
      expect(sha256(rdb)).toBe(r.manifest.rdb.sha256);
    },
  );
});

describe('the encryption config', () => {
  const config =
    (encryption: string, encrypt = 'ops') =>
    () =>
      parseConfig(
        `storage: { disk: { type: local, path: /tmp/nowhere } }
encryption: ${encryption}
targets: { main: { url: "redis://127.0.0.1:1", destinations: [disk], encrypt: ${encrypt} } }
`,
        '/tmp/rcpt.yaml',
      );

  it('takes recipients and break-glass recipients as public keys, and a target may name a recipient', () => {
    expect(config(`{ recipients: { ops: ${OPS} }, breakGlass: [${BREAK_GLASS}] }`)().encryption).toEqual({
      keys: {},
      recipients: { ops: OPS },
      breakGlass: [BREAK_GLASS],
    });
  });

  it('refuses a secret key where a recipient goes, without showing it', () => {
    const err = (() => {
      try {
        config(`{ recipients: { ops: ${OPS_KEY} } }`)();
      } catch (e) {
        return e as RunbookError;
      }
    })();
    expect(err?.message).toMatch(/encryption\.recipients\.ops.*an age public key: age1/s);
    expect(`${err?.message} ${err?.hint ?? ''}`).not.toContain(OPS_KEY.slice(16, 30));
    expect(config(`{ breakGlass: [${OPS_KEY}], recipients: { ops: ${OPS} } }`)).toThrow(/breakGlass/);
  });

  it('refuses a target naming neither a key nor a recipient, and a name used for both', () => {
    expect(config(`{ recipients: { ops: ${OPS} }, keys: { k1: env:X } }`, 'nope')).toThrow(
      /a name defined under encryption\.keys or encryption\.recipients \(known: k1, ops\)/,
    );
    expect(config(`{ recipients: { ops: ${OPS} }, keys: { ops: env:X } }`)).toThrow(/names not also used under encryption\.keys/);
  });

  it('refuses a recipient with a mistyped character when a backup is to be encrypted to it', () => {
    const typo = OPS.slice(0, 30) + (OPS[30] === 'q' ? 'p' : 'q') + OPS.slice(31);
    const c = config(`{ recipients: { ops: ${typo} } }`)();
    expect(() => keyring(c).encryptionFor('ops')).toThrow(/encryption\.recipients\.ops: .* is not an age X25519 recipient/);
  });
});
