// redis-check-rdb fed as the RDB streams past (through a FIFO), against RDBs from a real redis-server.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunbookError } from '../../common/errors';
import { rdbStreamChecker } from '../../domain/rdb-check';
import { toolPath } from '../../domain/tools';
import { fillDataset } from '../support/dataset';
import { startRedis, type RedisProcess } from '../support/redis';

const run = promisify(execFile);

async function feed(stdin: Writable, bytes: Buffer, piece = 100_000): Promise<void> {
  for (let at = 0; at < bytes.length && !stdin.destroyed; at += piece) {
    if (!stdin.write(bytes.subarray(at, at + piece))) await new Promise((r) => (stdin.once('drain', r), stdin.once('close', r)));
  }
  await new Promise((r) => stdin.end(r));
}

describe('redis-check-rdb on a stream', () => {
  let redis: RedisProcess;
  let dir: string;
  let rdb: Buffer;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rr-check-'));
    redis = await startRedis();
    const client = redis.client();
    await fillDataset(client, { keys: 20_000 });
    await run(toolPath('redis-cli'), ['-p', String(redis.port), '--rdb', path.join(dir, 'dump.rdb')]);
    rdb = readFileSync(path.join(dir, 'dump.rdb'));
  }, 30_000);

  afterAll(async () => {
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a whole RDB and counts its keys and expires', { timeout: 20_000 }, async () => {
    const check = rdbStreamChecker();
    await feed(check.stdin, rdb);
    const verdict = await check.result;
    const keyspace = await redis.client().info('keyspace');
    const keys = [...keyspace.matchAll(/keys=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    expect(verdict.keys).toBe(keys);
    expect(verdict.expires).toBe(2);
  });

  it('checks a tiny RDB written and ended before the checker has even started', { timeout: 20_000 }, async () => {
    // An empty RDB: header, EOF opcode, a zero checksum (saved without one).
    const empty = Buffer.concat([Buffer.from('REDIS0010'), Buffer.from([0xff]), Buffer.alloc(8)]);
    const check = rdbStreamChecker();
    check.stdin.end(empty);
    expect(await check.result).toEqual({ keys: 0, expires: 0 });

    const bad = rdbStreamChecker();
    bad.stdin.end(Buffer.concat([Buffer.from('REDIS0010'), Buffer.alloc(491, 0xf1)]));
    expect(((await bad.result.catch((e: unknown) => e)) as RunbookError).code).toBe('RDB_INVALID');
  });

  it('rejects a cut RDB with RDB_INVALID', { timeout: 20_000 }, async () => {
    const check = rdbStreamChecker();
    await feed(check.stdin, rdb.subarray(0, Math.floor(rdb.length / 2)));
    const err = await check.result.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunbookError);
    expect((err as RunbookError).code).toBe('RDB_INVALID');
  });

  it('rejects garbage without failing the writer that goes on writing after the checker gave up', { timeout: 20_000 }, async () => {
    const check = rdbStreamChecker();
    const garbage = Buffer.alloc(8 * 1024 * 1024, 0x41);
    await feed(check.stdin, garbage, 64 * 1024);
    const err = await check.result.catch((e: unknown) => e);
    expect((err as RunbookError).code).toBe('RDB_INVALID');
  });

  it('leaves no FIFO behind in the temp dir', { timeout: 20_000 }, async () => {
    const tmp = mkdtempSync(path.join(dir, 'tmp-'));
    const before = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    try {
      const check = rdbStreamChecker();
      await feed(check.stdin, rdb);
      await check.result;
    } finally {
      if (before === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = before;
    }
    expect(readdirSync(tmp)).toEqual([]);
  });
});
