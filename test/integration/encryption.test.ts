// Encryption at rest, on real servers: every stored copy is age-encrypted, readable by the `age`
// program without us, tamper-evident, and a target that should encrypt never stores cleartext.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptStream, encryptStream, generateIdentity, parseIdentity } from '../../domain/crypto/age';
import { keyring } from '../../domain/crypto/keys';
import { listBackups } from '../../domain/catalog';
import { storeRegistry } from '../../domain/storage';
import { verifyCopy } from '../../domain/verify';
import { parseConfig } from '../../common/config';
import { artifactKeys, type BackupReport } from '../../common/types';
import { toolPath } from '../../domain/tools';
import { digestAll, fillDataset } from '../support/dataset';
import { startRedis, type RedisProcess } from '../support/redis';
import { startRestoreEnv, awaitingApproval, type RestoreEnv } from '../support/restore-env';
import { decide } from '../support/approvals';

const OLD_KEY = generateIdentity();
const NEW_KEY = generateIdentity();
let t: RestoreEnv;
let redis: RedisProcess;

beforeAll(async () => {
  redis = await startRedis();
  await fillDataset(redis.client(), { keys: 300 });
  process.env.ENC_TEST_OLD_KEY = OLD_KEY;
  process.env.ENC_TEST_NEW_KEY = NEW_KEY;
  delete process.env.ENC_TEST_MISSING_KEY;
  t = await startRestoreEnv(
    'encryption-test',
    (dir) => `
  old:
    url: ${redis.url}
    destinations: [disk]
    encrypt: k2025
    restore: { approvers: [alice] }
  new:
    url: ${redis.url}
    destinations: [disk]
    encrypt: k2026
  missing:
    url: ${redis.url}
    destinations: [disk]
    encrypt: lost
encryption:
  keys:
    k2025: env:ENC_TEST_OLD_KEY
    k2026: env:ENC_TEST_NEW_KEY
    lost: env:ENC_TEST_MISSING_KEY
# ${dir}
`,
  );
});

afterAll(async () => {
  await t?.close();
  await redis?.stop();
});

const fileOf = (target: string, r: BackupReport) =>
  path.join(t.dir, 'backups', artifactKeys(target, r.backupId).data(r.manifest.artifact.file));

describe('encryption at rest', () => {
  it('stores only age ciphertext, names the key by id and fingerprint, and age itself can decrypt it', async () => {
    const r = await t.backup('old');
    expect(r.manifest.artifact.file).toBe('dump.rdb.zst.age');
    expect(r.manifest.artifact.encryption).toMatchObject({ format: 'age-x25519', keyId: 'k2025' });
    expect(JSON.stringify(r.manifest)).not.toContain(OLD_KEY);
    const stored = readFileSync(fileOf('old', r));
    expect(stored.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    expect(stored.includes(Buffer.from('REDIS00'))).toBe(false);

    // The emergency path of docs/emergency-decrypt.md: age and zstd, no runbook.
    const keyFile = path.join(t.dir, 'k2025.txt');
    writeFileSync(keyFile, `${OLD_KEY}\n`, { mode: 0o600 });
    const rdb = execFileSync('sh', ['-c', `age -d -i "${keyFile}" "${fileOf('old', r)}" | "${toolPath('zstd')}" -d`], {
      maxBuffer: 1 << 30,
    });
    expect(rdb.subarray(0, 5).toString()).toBe('REDIS');
    expect(rdb.length).toBe(r.manifest.rdb.size);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rr-emergency-'));
    writeFileSync(path.join(dir, 'restored.rdb'), rdb);
    const loaded = await startRedis({ dir, args: ['--dbfilename', 'restored.rdb'] });
    try {
      expect(await digestAll(loaded.client())).toEqual(await digestAll(redis.client()));
    } finally {
      await loaded.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps older backups readable after the key is rotated', async () => {
    const older = await t.backup('old');
    const newer = await t.backup('new');
    expect(newer.manifest.artifact.encryption?.keyId).toBe('k2026');
    const stores = storeRegistry(t.config);
    const keys = keyring(t.config);
    for (const [target, r] of [
      ['old', older],
      ['new', newer],
    ] as const) {
      const check = await verifyCopy(
        stores('disk'),
        artifactKeys(target, r.backupId).data(r.manifest.artifact.file),
        { ...r.manifest.artifact, rdb: r.manifest.rdb },
        { keys },
      );
      expect(check.ok, check.detail).toBe(true);
    }
  });

  it('fails before storing a byte when the key is missing, and lists nothing', async () => {
    const err = await t.backup('missing').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String(((err as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toMatch(/ENC_TEST_MISSING_KEY is not set/);
    expect(readdirSync(path.join(t.dir, 'backups')).includes('missing')).toBe(false);
    expect(await listBackups(t.config, storeRegistry(t.config), 'missing')).toEqual([]);
  });

  it('names the key id a backup needs when the configured key is another', async () => {
    const r = await t.backup('old');
    const swapped = parseConfig(
      readFileSync(t.configFile, 'utf8').replace('k2025: env:ENC_TEST_OLD_KEY', 'k2025: env:ENC_TEST_NEW_KEY'),
      t.configFile,
    );
    const check = verifyCopy(
      storeRegistry(swapped)('disk'),
      artifactKeys('old', r.backupId).data(r.manifest.artifact.file),
      { ...r.manifest.artifact, rdb: r.manifest.rdb },
      { keys: keyring(swapped) },
    );
    await expect(check).rejects.toThrow(/not the key this backup needs \(fingerprint [0-9a-f]{16}/);
  });

  it('restores an encrypted backup', { timeout: 60_000 }, async () => {
    const c = redis.client();
    await c.set('enc:probe', 'before');
    const r = await t.backup('old');
    await c.set('enc:probe', 'after');
    const handle = await t.startRestore({ target: 'old', from: r.backupId });
    await awaitingApproval(handle);
    await decide(handle, t.people.alice, 'approve');
    await handle.result();
    expect(await c.get('enc:probe')).toBe('before');
  });
});

describe('age streams', () => {
  const id = parseIdentity(generateIdentity());
  const plain = Buffer.from(Array.from({ length: 200_017 }, (_, i) => (i * 7919) % 251));
  const seal = async (data: Buffer) => {
    const out: Buffer[] = [];
    await pipeline(Readable.from([data]), encryptStream(id.recipient), new Writable({ write: (c, _e, cb) => (out.push(c), cb()) }));
    return Buffer.concat(out);
  };
  const open = async (data: Buffer) => {
    const out: Buffer[] = [];
    await pipeline(Readable.from([data]), decryptStream([id]), new Writable({ write: (c, _e, cb) => (out.push(c), cb()) }));
    return Buffer.concat(out);
  };

  it('round-trips data of any length, including empty and exactly one chunk', async () => {
    for (const n of [0, 1, 65_536, 65_537, plain.length])
      expect((await open(await seal(plain.subarray(0, n)))).equals(plain.subarray(0, n))).toBe(true);
  });

  it.each([
    ['a flipped byte', (b: Buffer) => ((b[b.length - 1000]! ^= 1), b)],
    ['a truncated end', (b: Buffer) => b.subarray(0, b.length - 100)],
    ['a missing last chunk', (b: Buffer) => b.subarray(0, b.length - (plain.length % 65_536) - 16)],
    [
      'reordered chunks',
      (b: Buffer) => {
        const h = b.indexOf('\n---');
        const start = b.indexOf('\n', h + 1) + 1 + 16;
        const c = 65_536 + 16;
        return Buffer.concat([
          b.subarray(0, start),
          b.subarray(start + c, start + 2 * c),
          b.subarray(start, start + c),
          b.subarray(start + 2 * c),
        ]);
      },
    ],
    ['a changed header', (b: Buffer) => ((b[30]! ^= 1), b)],
  ])('detects %s before passing on unauthenticated bytes', async (_name, tamper) => {
    await expect(open(tamper(Buffer.from(await seal(plain))))).rejects.toThrow(/damaged|truncated|tampered|can decrypt|base64|header/);
  });
});
