// fanOut must not wait forever on a sink that is gone, and storeRdb must settle when redis-check-rdb
// rejects an RDB before the compressor's output reaches destinations that were torn down meanwhile.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { fanOut, storeRdb } from '../../domain/pipeline';
import { LocalStore } from '../../domain/storage/local';

const writeTo = (w: Writable, chunk: Buffer) => new Promise<void>((resolve, reject) => w.write(chunk, (e) => (e ? reject(e) : resolve())));
const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms))]);

describe('fanOut', () => {
  it('skips a sink destroyed before the write and still feeds the others', async () => {
    const gone = new PassThrough();
    gone.on('error', () => {});
    gone.destroy(new Error('destination failed'));
    const live = new PassThrough();
    const got: Buffer[] = [];
    live.on('data', (d: Buffer) => got.push(d));
    const out = fanOut([gone, live]);
    await within(writeTo(out, Buffer.from('abc')), 1000);
    await within(new Promise<void>((r) => out.end(r)), 1000);
    expect(Buffer.concat(got).toString()).toBe('abc');
  });

  it('stops waiting for a drain when the sink it waits on is destroyed', async () => {
    const slow = new Writable({ highWaterMark: 1, write: () => {} }); // never calls back: never drains
    slow.on('error', () => {});
    const out = fanOut([slow]);
    const pending = writeTo(out, Buffer.from('more than one byte'));
    setTimeout(() => slow.destroy(new Error('destination failed')), 20);
    await within(pending, 1000);
  });
});

describe('storeRdb on an RDB that redis-check-rdb rejects', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rr-fanout-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('always settles with RDB_INVALID (it used to hang now and then)', { timeout: 30_000 }, async () => {
    const store = new LocalStore('disk', dir);
    const body = Buffer.concat([Buffer.from('REDIS0010'), Buffer.alloc(491, 0xf1)]);
    for (let i = 0; i < 25; i++) {
      const p = storeRdb(Readable.from([body]), [{ store, key: `t/${i}/dump.rdb.zst` }], { compression: 'zstd' });
      await expect(within(p, 5000)).rejects.toMatchObject({
        code: 'RDB_INVALID',
        message: expect.stringMatching(/redis-check-rdb rejected/),
      });
    }
  });
});
