// Every stored copy is proven as it is written (`verify: stream`, the default), on a real Temporal dev
// server, redis-server and S3 server (versitygw): a byte flipped between the stream's hash and a
// destination is caught by that destination's own hash before the copy is committed; a part damaged
// before it was signed is refused by S3 for our CRC32; a compressor's wrong output is caught by the
// decompression round trip. None of these needs a re-read, and a healthy backup does none, while
// `verify: reread` still reads every copy back.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, createReadStream, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import { parseConfig, type Config } from '../../common/config';
import { artifactKeys, type BackupReport } from '../../common/types';
import { listBackups } from '../../domain/catalog';
import { generateIdentity, parseIdentity } from '../../domain/crypto/age';
import { storeRdb } from '../../domain/pipeline';
import { storeRegistry, type Store } from '../../domain/storage';
import { LocalStore } from '../../domain/storage/local';
import { verifyCopy } from '../../domain/verify';
import { startCorruptingS3Proxy, type CorruptingS3Proxy } from '../support/corrupting-s3-proxy';
import { fillDataset } from '../support/dataset';
import { failureOf } from '../support/failure';
import { activityAttempt } from '../support/history';
import { startRedis, type RedisProcess } from '../support/redis';
import { startS3, type S3Server } from '../support/s3';
import { signingKey } from '../support/signing';
import { startTemporal, workflowBundle } from '../support/temporal';

const taskQueue = 'proof-while-writing';
const BUCKET = 'proofs';

let env: TestWorkflowEnvironment;
let s3: S3Server;
let proxy: CorruptingS3Proxy;
let redis: RedisProcess;
let dir: string;
let config: Config;
let worker: Worker;
let workerRun: Promise<void>;
let direct: S3Client;
/** Reads of stored data files (not manifests, markers or reports), by destination. */
const dataReads: Record<string, number> = {};

/** A store as it is, but for what `over` replaces. */
function wrapped(inner: Store, over: Partial<Store>): Store {
  return new Proxy(inner, {
    get: (target, prop, receiver) => (prop in over ? over[prop as keyof Store] : Reflect.get(target, prop, receiver)),
  });
}

/** Passes the stream on with the byte at `offset` flipped. */
function flipAt(offset: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      if (offset >= seen && offset < seen + chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[offset - seen]! ^= 0x01;
      }
      seen += chunk.length;
      cb(null, chunk);
    },
  });
}

const isData = (key: string) => /\/dump\.rdb/.test(key);

/** A destination whose path to the disk flips one byte of a data file after the pipeline hashed it. */
const flipping = (inner: Store): Store =>
  wrapped(inner, {
    write: (key, body, options) =>
      inner.write(
        key,
        isData(key) && typeof body === 'object' && !Buffer.isBuffer(body) ? (body as Readable).pipe(flipAt(4096)) : body,
        options,
      ),
  });

/** Counts the reads of data files: a re-read shows here. */
const counting = (inner: Store): Store =>
  wrapped(inner, {
    read: (key) => {
      if (isData(key)) dataReads[inner.name] = (dataReads[inner.name] ?? 0) + 1;
      return inner.read(key);
    },
  });

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rr-proof-'));
  [env, s3, redis] = await Promise.all([startTemporal(), startS3(), startRedis()]);
  await s3.createBucket(BUCKET);
  direct = s3.client();
  proxy = await startCorruptingS3Proxy(s3.port, s3.secretAccessKey);
  process.env.PROOF_S3_KEY = s3.accessKeyId;
  process.env.PROOF_S3_SECRET = s3.secretAccessKey;
  const s3dest = (endpoint: string) =>
    `{ type: s3, bucket: ${BUCKET}, endpoint: "${endpoint}", forcePathStyle: true, partSizeMiB: 5, accessKeyId: env:PROOF_S3_KEY, secretAccessKey: env:PROOF_S3_SECRET }`;
  const text = `
temporal: { taskQueue: ${taskQueue} }
${signingKey(dir).yaml}storage:
  disk: { type: local, path: ${dir}/disk }
  flaky: { type: local, path: ${dir}/flaky }
  offsite: ${s3dest(s3.endpoint)}
  tampered: ${s3dest(proxy.endpoint)}
targets:
  streamed:
    url: ${redis.url}
    destinations: [disk, offsite]
  reread:
    url: ${redis.url}
    destinations: [disk, offsite]
    verify: reread
  flipped:
    url: ${redis.url}
    destinations: [flaky]
    retryFor: 2s
  tampered:
    url: ${redis.url}
    destinations: [tampered]
    retryFor: 3s
  sealed:
    url: ${redis.url}
    destinations: [disk, offsite]
    encrypt: ops
encryption:
  recipients:
    ops: ${parseIdentity(generateIdentity()).recipient}
`;
  config = parseConfig(text, path.join(dir, 'runbook.yaml'));
  const base = storeRegistry(config);
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: createActivities({
      config,
      stores: (name) => (name === 'flaky' ? flipping(base(name)) : counting(base(name))),
      temporal: env.client,
    }),
  });
  workerRun = worker.run();
  // The sample data, and ~6 MiB that nothing compresses: more than one 5 MiB part on S3.
  await fillDataset(redis.client());
  const p = redis.client().pipeline();
  for (let i = 0; i < 96; i++) p.set(`blob:${i}`, randomBytes(64 * 1024));
  await p.exec();
}, 120_000);

afterAll(async () => {
  worker?.shutdown();
  await workerRun;
  await proxy?.close();
  direct?.destroy();
  await Promise.all([env?.teardown(), s3?.stop(), redis?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let seq = 0;
function backup(target: string): { workflowId: string; result: Promise<BackupReport> } {
  const workflowId = `backup/${target}/proof-${++seq}-${Date.now()}`;
  return {
    workflowId,
    result: env.client.workflow.execute('backupRedis', { taskQueue, workflowId, args: [{ target, requestedBy: 'test' }] }),
  };
}

/** The activities a run scheduled, in order. */
async function activitiesOf(workflowId: string): Promise<string[]> {
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
}

async function objects(prefix: string): Promise<string[]> {
  const res = await direct.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (res.Contents ?? []).map((o) => o.Key!);
}

async function unfinishedUploads(prefix: string): Promise<string[]> {
  const res = await direct.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }));
  return (res.Uploads ?? []).map((u) => u.Key!);
}

/** Re-reads a stored copy whole and checks it against the manifest. */
function reread(report: BackupReport, destination: string) {
  const m = report.manifest;
  return verifyCopy(storeRegistry(config)(destination), artifactKeys(m.target, m.backupId).data(m.artifact.file), {
    ...m.artifact,
    rdb: m.rdb,
  });
}

describe('a local destination whose path to the disk flips a byte after the stream was hashed', () => {
  it(
    'fails the backup in the capture, naming the destination; no copy is kept, nothing is read back, no manifest',
    { timeout: 90_000 },
    async () => {
      const run = backup('flipped');
      const f = await failureOf(run.result);
      expect(f.type).toBe('STORAGE_FAILED');
      expect(f.message).toMatch(
        new RegExp(
          `^destination flaky \\(${dir}/flaky/flipped/flipped-[^/]+/dump\\.rdb\\.zst\\): the bytes handed to it differ from the backup stream ` +
            `\\(\\d+ bytes, sha256 [0-9a-f]{12}… written; \\d+ bytes, sha256 [0-9a-f]{12}… streamed\\): the copy was not kept`,
        ),
      );
      // Caught while writing: the run never got to the verify step (a re-read), let alone the manifest.
      const scheduled = await activitiesOf(run.workflowId);
      expect(scheduled).toContain('capture');
      expect(scheduled).not.toContain('verifyCopies');
      expect(scheduled).not.toContain('writeManifest');
      expect((await activityAttempt(env.client, run.workflowId, 'capture')).attempt).toBeGreaterThanOrEqual(1);
      expect(await listBackups(config, storeRegistry(config), 'flipped')).toEqual([]);
      // Nothing under the data's name, and no temp file left: the rename never happened.
      const files = readdirSync(path.join(dir, 'flaky', 'flipped'), { recursive: true }).map(String);
      expect(files.filter((n) => /dump\.rdb/.test(n))).toEqual([]);
    },
  );
});

describe('an S3 part damaged after our CRC32 was computed and before it was signed', () => {
  it(
    'is refused by the server (BadDigest) every time: the backup gives up cleanly, with no object, no upload and no manifest',
    { timeout: 90_000 },
    async () => {
      proxy.corrupt(1000, /\/dump\.rdb/);
      const before = proxy.corrupted().length;
      try {
        const run = backup('tampered');
        const f = await failureOf(run.result);
        expect(f.type).toBe('STORAGE_FAILED');
        expect(f.message).toMatch(
          /^destination tampered \(s3:\/\/proofs\/tampered\/tampered-[^/]+\/dump\.rdb\.zst\): writing failed: BadDigest: The CRC32 you specified did not match/,
        );
        expect(f.message).toMatch(/\(gave up after \d+ attempts over \d+ s\)$/);
        const damaged = proxy.corrupted().slice(before);
        expect(damaged.length).toBeGreaterThan(0);
        // The signature and payload hash were made for the damaged bytes: only our checksum told.
        expect(damaged.map((d) => [d.status, d.code])).toEqual(damaged.map(() => [400, 'BadDigest']));
        expect(await activitiesOf(run.workflowId)).not.toContain('writeManifest');
      } finally {
        proxy.corrupt(0);
      }
      expect(await listBackups(config, storeRegistry(config), 'tampered')).toEqual([]);
      expect((await objects('tampered/')).filter((k) => /dump\.rdb/.test(k))).toEqual([]);
      expect(await unfinishedUploads('tampered/')).toEqual([]);
    },
  );

  it('is refused once, the capture is retried, and the backup completes with every part proven', { timeout: 90_000 }, async () => {
    proxy.corrupt(1, /\/dump\.rdb/);
    const before = proxy.corrupted().length;
    const run = backup('tampered');
    const report = await run.result;
    expect(proxy.corrupted().slice(before)).toEqual([expect.objectContaining({ status: 400, code: 'BadDigest' })]);
    expect((await activityAttempt(env.client, run.workflowId, 'capture')).attempt).toBe(2);
    const [check] = report.manifest.verification.copies;
    expect(check).toMatchObject({ destination: 'tampered', ok: true });
    expect(check!.detail).toMatch(/S3 verified CRC32 of every part \(2\) and of the whole object/);
    expect(await reread(report, 'tampered')).toMatchObject({ ok: true });
    expect(await unfinishedUploads('tampered/')).toEqual([]);
  });
});

describe('verify: stream (the default) and verify: reread', () => {
  it('stream: a healthy backup reads no stored copy back, and says how each was proven', { timeout: 60_000 }, async () => {
    const reads = { ...dataReads };
    const report = await backup('streamed').result;
    expect(dataReads).toEqual(reads);
    const byDest = Object.fromEntries(report.manifest.verification.copies.map((c) => [c.destination, c]));
    const { artifact, rdb } = report.manifest;
    for (const d of ['disk', 'offsite']) {
      expect(byDest[d]!.ok).toBe(true);
      expect(byDest[d]!.detail).toContain(`sha256 ${artifact.sha256.slice(0, 12)}… of the stored bytes matched as written`);
      expect(byDest[d]!.detail).toContain(`in place, ${artifact.size} bytes`);
      expect(byDest[d]!.detail).toContain(`decompression round trip matched the RDB (sha256 ${rdb.sha256.slice(0, 12)}…)`);
    }
    expect(byDest.offsite!.detail).toMatch(
      /S3 verified CRC32 of every part \(2\) and of the whole object; in place, \d+ bytes and the CRC32 sent/,
    );
    expect(report.text).toMatch(/^ {2}verified disk: sha256 [0-9a-f]{12}… of the stored bytes matched as written/m);
    // What was proven while writing is what a re-read finds.
    expect(await reread(report, 'disk')).toMatchObject({ ok: true });
    expect(await reread(report, 'offsite')).toMatchObject({ ok: true });
  });

  it(
    'stream, encrypted to a recipient whose key this worker lacks: the RDB is still proven, before encryption',
    { timeout: 60_000 },
    async () => {
      const reads = { ...dataReads };
      const report = await backup('sealed').result;
      expect(dataReads).toEqual(reads);
      expect(report.manifest.artifact.file).toBe('dump.rdb.zst.age');
      for (const c of report.manifest.verification.copies) {
        expect(c.ok).toBe(true);
        expect(c.detail).toMatch(
          /of the stored bytes matched as written; .*decompression round trip matched the RDB \(sha256 [0-9a-f]{12}…\), before encryption$/,
        );
      }
    },
  );

  it('reread: every copy is read back after the write, as before', { timeout: 60_000 }, async () => {
    const reads = { ...dataReads };
    const report = await backup('reread').result;
    expect((dataReads.disk ?? 0) - (reads.disk ?? 0)).toBe(1);
    expect((dataReads.offsite ?? 0) - (reads.offsite ?? 0)).toBe(1);
    expect(report.manifest.verification.copies.map((c) => c.ok)).toEqual([true, true]);
    expect(report.manifest.verification.copies[0]!.detail).toMatch(/^sha256 [0-9a-f]{12}… ok, RDB sha256 [0-9a-f]{12}… ok$/);
  });
});

describe('the pipeline, called directly', () => {
  /** An RDB of the test server's data, as a file. */
  function rdbFile(): string {
    const file = path.join(dir, `dump-${++seq}.rdb`);
    execFileSync('redis-cli', ['-p', String(redis.port), '--rdb', file], { stdio: 'ignore' });
    return file;
  }

  it('holds a destination that ignores the expectation to it: its damaged copy fails the capture, naming it', async () => {
    const inner = new LocalStore('careless', path.join(dir, 'careless'));
    // Writes whatever it is given, and commits without asking what was expected.
    const careless = wrapped(inner, { write: (key, body) => inner.write(key, (body as Readable).pipe(flipAt(100))) });
    await expect(
      storeRdb(createReadStream(rdbFile()), [{ store: careless, key: 'x/y/dump.rdb.zst' }], { compression: 'zstd', roundTrip: true }),
    ).rejects.toMatchObject({
      code: 'STORAGE_FAILED',
      message: expect.stringMatching(
        /^destination careless \(.*\/careless\/x\/y\/dump\.rdb\.zst\): the bytes handed to it differ from the backup stream/,
      ),
    });
  });

  /** Runs storeRdb with a zstd whose compression is `compress` (a shell pipeline on stdin); its -d is the real one. */
  async function withCompressor(compress: (real: string) => string, store: Store): Promise<unknown> {
    const tools = mkdtempSync(path.join(dir, 'tools-'));
    mkdirSync(path.join(tools, 'bin'));
    const real = execFileSync('sh', ['-c', 'command -v zstd']).toString().trim();
    const fake = path.join(tools, 'bin', 'zstd');
    writeFileSync(fake, `#!/bin/sh\ncase " $* " in *" -d "*|*" -H "*) exec ${real} "$@";; esac\n${compress(real)}\n`);
    chmodSync(fake, 0o755);
    const file = rdbFile();
    const saved = process.env.RUNBOOK_TOOLS_DIR;
    process.env.RUNBOOK_TOOLS_DIR = tools;
    try {
      return await storeRdb(createReadStream(file), [{ store, key: 'x/y/dump.rdb.zst' }], { compression: 'zstd', roundTrip: true }).then(
        () => undefined,
        (err: unknown) => err,
      );
    } finally {
      if (saved === undefined) delete process.env.RUNBOOK_TOOLS_DIR;
      else process.env.RUNBOOK_TOOLS_DIR = saved;
    }
  }

  it('catches a compressor whose output decompresses to other bytes, before any copy is kept', async () => {
    // A valid zstd stream of the RDB and one byte more.
    const out = path.join(dir, 'roundtrip');
    const err = await withCompressor((real) => `{ cat; printf x; } | ${real} "$@"`, new LocalStore('disk', out));
    expect(err).toMatchObject({
      code: 'VERIFY_FAILED',
      message: expect.stringMatching(/^the compressed stream decompresses to other bytes than the RDB's .*; no copy was kept$/),
    });
    expect(readdirSync(path.join(out, 'x/y'))).toEqual([]);
  });

  it('catches a compressor whose output does not decompress at all, naming the decompressor', async () => {
    const out = path.join(dir, 'garbage');
    const err = await withCompressor(() => 'cat >/dev/null; head -c 100000 /dev/urandom', new LocalStore('disk', out));
    expect(err).toMatchObject({
      code: 'VERIFY_FAILED',
      message: expect.stringMatching(/^the compressed stream does not decompress \(zstd\): zstd -d failed \(1\): .+; no copy was kept$/),
    });
    expect(readdirSync(path.join(out, 'x/y'))).toEqual([]);
  });
});
