// Replication capture against real redis-server processes, and against fake servers for the
// failure modes a real one will not produce on demand.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openReplicationStream, type ReplicationCaptureOptions } from '../../domain/capture/replication';
import { RunbookError } from '../../common/errors';
import { rdbVersionFromHeader } from '../../common/rdb';
import { toolPath } from '../../domain/tools';
import { freePort, startRedis, type RedisProcess } from '../support/redis';
import { parseCommand } from '../support/resp';

const run = promisify(execFile);

// ---------- helpers ----------

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

async function expectRunbookError(p: Promise<unknown>, code: string, message?: RegExp): Promise<RunbookError> {
  const err = await p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RunbookError);
  const re = err as RunbookError;
  expect(re.code).toBe(code);
  if (message) expect(re.message).toMatch(message);
  return re;
}

const tmpDirs: string[] = [];
function tmpDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'rr-capture-'));
  tmpDirs.push(d);
  return d;
}

async function captureToFile(opts: ReplicationCaptureOptions, file: string) {
  const capture = await openReplicationStream(opts);
  await pipeline(capture.stream, createWriteStream(file));
  return capture;
}

/** Load an RDB into a fresh server and return what it holds. */
async function loadAndDigest(file: string): Promise<{ digest: string; dbsize: number }> {
  const dir = path.dirname(file);
  const srv = await startRedis({ dir, args: ['--dbfilename', path.basename(file), '--enable-debug-command', 'yes'] });
  try {
    const c = srv.client();
    return { digest: String(await c.call('DEBUG', 'DIGEST')), dbsize: await c.dbsize() };
  } finally {
    await srv.stop();
  }
}

async function populate(c: Redis): Promise<void> {
  const p = c.pipeline();
  p.set('str:hello', 'world');
  p.set('str:int', '1234567');
  p.set('str:utf8', 'grüße ☃');
  p.hset('hash:user:1', { name: 'ada', born: '1815', langs: 'analytical engine' });
  p.rpush('list:jobs', 'a', 'b', 'c', 'd');
  p.sadd('set:tags', 'red', 'green', 'blue');
  p.sadd('set:ints', '1', '2', '3');
  p.zadd('zset:scores', 1, 'one', 2.5, 'two-and-a-half', -3, 'minus-three');
  p.xadd('stream:events', '1-1', 'type', 'created', 'id', '1');
  p.xadd('stream:events', '2-1', 'type', 'updated', 'id', '1');
  p.xgroup('CREATE', 'stream:events', 'workers', '0');
  p.set('ttl:session', 'soon gone', 'EX', 3600);
  p.set('big:5mb', randomBytes(5 * 1024 * 1024));
  for (let i = 0; i < 2000; i++) p.set(`bulk:${i}`, `value-${i}-${'x'.repeat(i % 50)}`);
  await p.exec();
}

async function sourceFacts(c: Redis): Promise<{ digest: string; dbsize: number }> {
  return { digest: String(await c.call('DEBUG', 'DIGEST')), dbsize: await c.dbsize() };
}

// A fake Redis: parses RESP arrays and inline commands and hands each one to `onCommand`.
interface FakeServer {
  port: number;
  commands: string[][];
  /** Raw first bytes of each command, to tell inline from RESP. */
  raw: string[];
  /** Resolves when the client closes its side of the last connection. */
  clientClosed: Promise<void>;
  close(): Promise<void>;
}

const fakes: FakeServer[] = [];

async function fakeRedis(onCommand: (cmd: string[], sock: net.Socket) => void): Promise<FakeServer> {
  const sockets = new Set<net.Socket>();
  const commands: string[][] = [];
  const raw: string[] = [];
  let markClosed!: () => void;
  const clientClosed = new Promise<void>((r) => (markClosed = r));
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => {
      sockets.delete(sock);
      markClosed();
    });
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const parsed = parseCommand(buf);
        if (!parsed) return;
        raw.push(buf.slice(0, parsed.used));
        buf = buf.slice(parsed.used);
        commands.push(parsed.args);
        onCommand(parsed.args, sock);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const fake: FakeServer = {
    port: (server.address() as net.AddressInfo).port,
    commands,
    raw,
    clientClosed,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  fakes.push(fake);
  return fake;
}

/** Answers the handshake like Redis 7 and hands SYNC to `onSync`. */
function handshake(onSync: (sock: net.Socket) => unknown, opts: { rdbOnly?: boolean } = {}) {
  return (cmd: string[], sock: net.Socket) => {
    const name = cmd[0]?.toUpperCase();
    if (name === 'AUTH') sock.write('+OK\r\n');
    else if (name === 'REPLCONF' && cmd[1] === 'rdb-only') {
      sock.write(opts.rdbOnly === false ? '-ERR Unrecognized REPLCONF option: rdb-only\r\n' : '+OK\r\n');
    } else if (name === 'REPLCONF') sock.write('+OK\r\n');
    else if (name === 'SYNC') void Promise.resolve(onSync(sock)).catch((err: Error) => sock.destroy(err));
    else sock.write(`-ERR unknown command '${cmd[0]}'\r\n`);
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fakeRdb = (size: number) => Buffer.concat([Buffer.from('REDIS0011'), randomBytes(size - 9)]);

afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

afterAll(() => {
  for (const d of tmpDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

// ---------- real servers ----------

describe.each([
  { name: 'a diskless server', diskless: 'yes', mode: 'eof-mark' as const },
  { name: 'a disk-based server', diskless: 'no', mode: 'length' as const },
])('capturing from $name', ({ diskless, mode }) => {
  let src: RedisProcess;

  beforeAll(async () => {
    src = await startRedis({ args: ['--repl-diskless-sync', diskless, '--enable-debug-command', 'yes'] });
    await populate(src.client());
  }, 30_000);

  afterAll(async () => {
    await src?.stop();
  }, 30_000);

  it(`streams an RDB in ${mode} mode that loads into the same dataset as redis-cli --rdb`, { timeout: 60_000 }, async () => {
    const dir = tmpDir();
    const ours = path.join(dir, 'ours', 'dump.rdb');
    const theirs = path.join(dir, 'cli', 'dump.rdb');
    for (const f of [ours, theirs]) mkdirSync(path.dirname(f));

    const capture = await captureToFile({ host: src.host, port: src.port, idleTimeoutMs: 20_000 }, ours);
    expect(capture.mode).toBe(mode);
    expect(capture.rdbOnly).toBe(true);
    const bytes = readFileSync(ours);
    if (mode === 'length') expect(capture.declaredSize).toBe(bytes.length);
    else expect(capture.declaredSize).toBeUndefined();
    expect(bytes.subarray(0, 5).toString()).toBe('REDIS');
    expect(rdbVersionFromHeader(bytes)).toBe(10); // Redis 7.0

    await run(toolPath('redis-cli'), ['-h', src.host, '-p', String(src.port), '--rdb', theirs], { timeout: 30_000 });
    const cliBytes = readFileSync(theirs);
    expect(bytes.subarray(0, 9)).toEqual(cliBytes.subarray(0, 9));
    // Same content, give or take aux fields such as ctime: sizes agree to within a few bytes.
    expect(Math.abs(bytes.length - cliBytes.length)).toBeLessThan(64);

    await run(toolPath('redis-check-rdb'), [ours], { timeout: 30_000 });

    const expected = await sourceFacts(src.client());
    expect(expected.dbsize).toBe(2011);
    expect(await loadAndDigest(ours)).toEqual(expected);
    expect(await loadAndDigest(theirs)).toEqual(expected);
  });
});

describe('authentication against a real server', () => {
  const password = 'correct horse battery';
  let src: RedisProcess;

  beforeAll(async () => {
    src = await startRedis({ password, args: ['--enable-debug-command', 'yes'] });
    const c = src.client();
    await c.set('k', 'v');
    await c.call('ACL', 'SETUSER', 'backup', 'on', '>backup pass 1', '+sync', '+replconf');
    await c.call('ACL', 'SETUSER', 'nosync', 'on', '>nosync pass 1', '+replconf');
    await c.call('ACL', 'SETUSER', 'nothing', 'on', '>nothing pass 1');
  }, 30_000);

  afterAll(async () => {
    await src?.stop();
  }, 30_000);

  it('captures with a requirepass password that contains spaces', { timeout: 20_000 }, async () => {
    const capture = await openReplicationStream({ host: src.host, port: src.port, password });
    const bytes = await collect(capture.stream);
    expect(rdbVersionFromHeader(bytes)).toBeGreaterThan(0);
  });

  it('captures as an ACL user that only has SYNC and REPLCONF', { timeout: 20_000 }, async () => {
    const capture = await openReplicationStream({ host: src.host, port: src.port, username: 'backup', password: 'backup pass 1' });
    const bytes = await collect(capture.stream);
    expect(bytes.subarray(0, 5).toString()).toBe('REDIS');
  });

  it('fails with TARGET_AUTH_FAILED on a wrong password, without echoing it', { timeout: 10_000 }, async () => {
    const wrong = 'Wrong-Secret-4711';
    const err = await expectRunbookError(openReplicationStream({ host: src.host, port: src.port, password: wrong }), 'TARGET_AUTH_FAILED');
    expect(err.message).not.toContain(wrong);
    expect(err.hint ?? '').not.toContain(wrong);
    const err2 = await expectRunbookError(
      openReplicationStream({ host: src.host, port: src.port, username: 'backup', password: wrong }),
      'TARGET_AUTH_FAILED',
      /WRONGPASS/,
    );
    expect(err2.message).not.toContain(wrong);
  });

  it('fails with TARGET_AUTH_FAILED when the server needs a password and none is given', { timeout: 10_000 }, async () => {
    await expectRunbookError(openReplicationStream({ host: src.host, port: src.port }), 'TARGET_AUTH_FAILED', /NOAUTH/);
  });

  it('fails with CAPTURE_FAILED and an ACL hint when the user may not run SYNC or REPLCONF', { timeout: 10_000 }, async () => {
    const e1 = await expectRunbookError(
      openReplicationStream({ host: src.host, port: src.port, username: 'nosync', password: 'nosync pass 1' }),
      'CAPTURE_FAILED',
      /NOPERM/,
    );
    expect(e1.hint).toMatch(/ACL/);
    const e2 = await expectRunbookError(
      openReplicationStream({ host: src.host, port: src.port, username: 'nothing', password: 'nothing pass 1' }),
      'CAPTURE_FAILED',
      /REPLCONF.*NOPERM/,
    );
    expect(e2.hint).toMatch(/ACL/);
  });
});

describe('unreachable targets', () => {
  it('reports a closed port on 127.0.0.1 as TARGET_UNREACHABLE', { timeout: 10_000 }, async () => {
    const port = await freePort();
    await expectRunbookError(openReplicationStream({ host: '127.0.0.1', port }), 'TARGET_UNREACHABLE', /ECONNREFUSED/);
  });

  it('reports a name that does not resolve as TARGET_UNREACHABLE', { timeout: 10_000 }, async () => {
    await expectRunbookError(
      openReplicationStream({ host: 'no-such-host.invalid', port: 6379, connectTimeoutMs: 3_000 }),
      'TARGET_UNREACHABLE',
    );
  });

  it('reports a TLS connect that never completes as TARGET_UNREACHABLE after connectTimeoutMs', { timeout: 10_000 }, async () => {
    // A TCP listener that never answers the TLS handshake: the connection is never usable.
    const fake = await fakeRedis(() => {});
    const started = Date.now();
    await expectRunbookError(
      openReplicationStream({ host: '127.0.0.1', port: fake.port, tls: true, connectTimeoutMs: 300 }),
      'TARGET_UNREACHABLE',
      /within 300 ms/,
    );
    expect(Date.now() - started).toBeLessThan(3_000);
    await fake.clientClosed;
  });
});

// ---------- fake servers ----------

describe('protocol handling against fake servers', () => {
  it('still captures when REPLCONF rdb-only is rejected, and drops the replication stream after the RDB', { timeout: 10_000 }, async () => {
    const rdb = fakeRdb(300_000);
    let backlog: NodeJS.Timeout | undefined;
    const fake = await fakeRedis(
      handshake(
        (sock) => {
          sock.write('\n\n');
          // The RDB, then (as a pre-6.2 master does) the replication stream right behind it.
          sock.write(Buffer.concat([Buffer.from(`$${rdb.length}\r\n`), rdb, Buffer.from('*1\r\n$4\r\nPING\r\n')]));
          backlog = setInterval(() => sock.writable && sock.write('*1\r\n$4\r\nPING\r\n'), 10);
          sock.on('close', () => clearInterval(backlog));
        },
        { rdbOnly: false },
      ),
    );
    try {
      const capture = await openReplicationStream({ host: '127.0.0.1', port: fake.port, idleTimeoutMs: 2_000 });
      expect(capture.rdbOnly).toBe(false);
      expect(capture.mode).toBe('length');
      expect(capture.declaredSize).toBe(rdb.length);
      const bytes = await collect(capture.stream);
      expect(bytes.equals(rdb)).toBe(true);
      await fake.clientClosed; // we hung up instead of reading the backlog forever
      expect(fake.commands).toEqual([['REPLCONF', 'capa', 'eof'], ['REPLCONF', 'rdb-only', '1'], ['SYNC']]);
      expect(fake.raw[2]).toBe('SYNC\r\n');
    } finally {
      clearInterval(backlog);
    }
  });

  it('sends AUTH as a RESP array so usernames and passwords may contain spaces', { timeout: 5_000 }, async () => {
    const rdb = fakeRdb(100);
    const fake = await fakeRedis(handshake((sock) => sock.write(Buffer.concat([Buffer.from(`$${rdb.length}\r\n`), rdb]))));
    const capture = await openReplicationStream({ host: '127.0.0.1', port: fake.port, username: 'ops user', password: 'p a s s' });
    expect((await collect(capture.stream)).equals(rdb)).toBe(true);
    expect(fake.commands[0]).toEqual(['AUTH', 'ops user', 'p a s s']);
    expect(fake.raw[0]!.startsWith('*3\r\n')).toBe(true);
  });

  it('fails with CAPTURE_FAILED naming the server message when SYNC gets -NOPERM', { timeout: 5_000 }, async () => {
    const fake = await fakeRedis(handshake((sock) => sock.write("-NOPERM this user has no permissions to run the 'sync' command\r\n")));
    const err = await expectRunbookError(openReplicationStream({ host: '127.0.0.1', port: fake.port }), 'CAPTURE_FAILED', /NOPERM.*sync/);
    expect(err.hint).toMatch(/SYNC and REPLCONF/);
  });

  it('fails with CAPTURE_FAILED on a reply that is not a bulk header', { timeout: 5_000 }, async () => {
    const fake = await fakeRedis(handshake((sock) => sock.write('hello world\r\n')));
    await expectRunbookError(openReplicationStream({ host: '127.0.0.1', port: fake.port }), 'CAPTURE_FAILED', /unexpected reply/);
  });

  it('fails with CAPTURE_FAILED when a non-Redis server answers the handshake with garbage', { timeout: 5_000 }, async () => {
    const fake = await fakeRedis((_cmd, sock) => sock.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await expectRunbookError(openReplicationStream({ host: '127.0.0.1', port: fake.port }), 'CAPTURE_FAILED', /unexpected reply/);
  });

  it('refuses a declared size above maxBytes', { timeout: 5_000 }, async () => {
    const fake = await fakeRedis(handshake((sock) => sock.write('$999999999999999\r\nREDIS0011')));
    await expectRunbookError(
      openReplicationStream({ host: '127.0.0.1', port: fake.port, maxBytes: 1024 * 1024 }),
      'CAPTURE_FAILED',
      /999999999999999 bytes/,
    );
    await fake.clientClosed;
  });

  it('errors an eof-mark stream that runs past maxBytes without a mark', { timeout: 5_000 }, async () => {
    const fake = await fakeRedis(
      handshake((sock) => sock.write(Buffer.concat([Buffer.from(`$EOF:${'c'.repeat(40)}\r\n`), fakeRdb(5000)]))),
    );
    const capture = await openReplicationStream({ host: '127.0.0.1', port: fake.port, maxBytes: 1000 });
    await sleep(50); // the failure is already known; it must wait for the consumer instead of being uncaught
    await expectRunbookError(collect(capture.stream), 'CAPTURE_FAILED', /1000-byte limit/);
    await fake.clientClosed;
  });

  it('errors the stream with CAPTURE_FAILED when the server closes after half the declared bytes', { timeout: 5_000 }, async () => {
    const rdb = fakeRdb(200_000);
    const fake = await fakeRedis(
      handshake((sock) => sock.end(Buffer.concat([Buffer.from(`$${rdb.length}\r\n`), rdb.subarray(0, 100_000)]))),
    );
    const capture = await openReplicationStream({ host: '127.0.0.1', port: fake.port });
    await sleep(50); // a consumer that sets up its sink first must still see the failure, through the stream
    await expectRunbookError(collect(capture.stream), 'CAPTURE_FAILED', /closed.*after 100000 of 200000 bytes/);
  });

  it('errors the stream when an eof-mark transfer is cut before the mark', { timeout: 5_000 }, async () => {
    const fake = await fakeRedis(
      handshake((sock) => {
        sock.write(`$EOF:${'a'.repeat(40)}\r\n`);
        sock.end(fakeRdb(5000));
      }),
    );
    const capture = await openReplicationStream({ host: '127.0.0.1', port: fake.port });
    expect(capture.mode).toBe('eof-mark');
    await expectRunbookError(collect(capture.stream), 'CAPTURE_FAILED', /after 4960 bytes, before the end-of-RDB mark/);
  });

  it('fails with CAPTURE_FAILED "stalled" when the server goes quiet during the handshake', { timeout: 5_000 }, async () => {
    const fake = await fakeRedis(handshake(() => {}));
    const started = Date.now();
    await expectRunbookError(
      openReplicationStream({ host: '127.0.0.1', port: fake.port, idleTimeoutMs: 300 }),
      'CAPTURE_FAILED',
      /stalled.*SYNC/,
    );
    expect(Date.now() - started).toBeLessThan(3_000);
    await fake.clientClosed;
  });

  it('errors the stream with CAPTURE_FAILED "stalled" when the server goes quiet mid-transfer', { timeout: 5_000 }, async () => {
    const fake = await fakeRedis(handshake((sock) => sock.write(Buffer.concat([Buffer.from('$1000\r\n'), fakeRdb(10)]))));
    const capture = await openReplicationStream({ host: '127.0.0.1', port: fake.port, idleTimeoutMs: 300 });
    await expectRunbookError(collect(capture.stream), 'CAPTURE_FAILED', /stalled.*after 10 of 1000 bytes/);
    await fake.clientClosed;
  });

  it('keeps the keep-alive newlines out and finds an eof mark split across TCP chunks', { timeout: 5_000 }, async () => {
    const rdb = fakeRdb(70_000);
    const mark = randomBytes(20).toString('hex');
    const fake = await fakeRedis(
      handshake(async (sock) => {
        sock.write('\n');
        await sleep(20);
        sock.write(`\n$EOF:${mark}\r\n`);
        await sleep(20);
        sock.write(rdb.subarray(0, 50_000));
        await sleep(20);
        // Small tail writes, so the held-back tail has to be stitched together from several reads.
        for (const piece of [rdb.subarray(50_000, 69_990), rdb.subarray(69_990, 69_995), rdb.subarray(69_995)]) {
          sock.write(piece);
          await sleep(20);
        }
        for (const piece of [mark.slice(0, 7), mark.slice(7, 8), mark.slice(8, 33), mark.slice(33)]) {
          sock.write(piece);
          await sleep(20);
        }
        // Say nothing more and keep the connection open: the mark alone must end the stream.
      }),
    );
    const capture = await openReplicationStream({ host: '127.0.0.1', port: fake.port, idleTimeoutMs: 2_000 });
    expect(capture.mode).toBe('eof-mark');
    const bytes = await collect(capture.stream);
    expect(bytes.length).toBe(rdb.length);
    expect(bytes.equals(rdb)).toBe(true);
    await fake.clientClosed;
  });

  it('does not mistake a partial match of the mark at a chunk end for the end', { timeout: 5_000 }, async () => {
    const mark = randomBytes(20).toString('hex');
    // The payload ends in the first 39 bytes of the mark, so the bytes around each read boundary look
    // almost like the mark; only the full 40 bytes at the very end may count.
    const rdb = Buffer.concat([fakeRdb(1000), Buffer.from(mark.slice(0, 39))]);
    const fake = await fakeRedis(
      handshake(async (sock) => {
        sock.write(`$EOF:${mark}\r\n`);
        sock.write(rdb);
        await sleep(20);
        for (let i = 0; i < 40; i += 10) {
          sock.write(mark.slice(i, i + 10));
          await sleep(10);
        }
      }),
    );
    const capture = await openReplicationStream({ host: '127.0.0.1', port: fake.port });
    expect((await collect(capture.stream)).equals(rdb)).toBe(true);
  });

  for (const mode of ['eof-mark', 'length'] as const) {
    it(
      `hands on exactly the ${mode} payload in chunks larger than a read, however the server splits its writes`,
      { timeout: 15_000 },
      async () => {
        // 6 MiB in pieces of 1 byte to 200 KiB, with pauses: reads cross slab boundaries, the queue is
        // handed on by size and by timer, and in eof-mark mode the held-back tail straddles all of it.
        const rdb = fakeRdb(6 * 1024 * 1024 + 123);
        const mark = randomBytes(20).toString('hex');
        const fake = await fakeRedis(
          handshake(async (sock) => {
            sock.write(mode === 'eof-mark' ? `$EOF:${mark}\r\n` : `$${rdb.length}\r\n`);
            for (let at = 0, i = 0; at < rdb.length; i++) {
              const size = [1, 39, 41, 4096, 65_535, 200_000, 16_384][i % 7]!;
              sock.write(rdb.subarray(at, at + size));
              at += size;
              if (i % 50 === 49) await sleep(12);
            }
            if (mode === 'eof-mark') sock.write(mark);
          }),
        );
        const capture = await openReplicationStream({ host: '127.0.0.1', port: fake.port });
        expect(capture.mode).toBe(mode);
        const chunks: Buffer[] = [];
        for await (const chunk of capture.stream) chunks.push(chunk as Buffer);
        expect(Buffer.concat(chunks).equals(rdb)).toBe(true);
        expect(Math.max(...chunks.map((c) => c.length))).toBeGreaterThan(64 * 1024);
        await fake.clientClosed;
      },
    );
  }

  it('pauses the socket while the consumer is not reading, so memory stays bounded', { timeout: 15_000 }, async () => {
    const size = 64 * 1024 * 1024;
    const block = randomBytes(1024 * 1024);
    let serverSock: net.Socket | undefined;
    const fake = await fakeRedis(
      handshake((sock) => {
        serverSock = sock;
        sock.write(`$${size}\r\n`);
        for (let i = 0; i < size / block.length; i++) sock.write(block);
      }),
    );
    const capture = await openReplicationStream({ host: '127.0.0.1', port: fake.port, idleTimeoutMs: 200 });
    await sleep(800); // longer than idleTimeoutMs: a slow consumer must not count as a stalled server
    expect(capture.stream.readableLength).toBeLessThan(8 * 1024 * 1024);
    expect(serverSock!.writableLength).toBeGreaterThan(32 * 1024 * 1024); // the rest waits on the server side
    let total = 0;
    await pipeline(
      capture.stream,
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          total += chunk.length;
          cb();
        },
      }),
    );
    expect(total).toBe(size);
    await fake.clientClosed;
  });

  it('destroys the socket when the signal aborts', { timeout: 5_000 }, async () => {
    const fake = await fakeRedis(handshake((sock) => sock.write(Buffer.concat([Buffer.from('$1000\r\n'), fakeRdb(10)]))));
    const ac = new AbortController();
    const capture = await openReplicationStream({ host: '127.0.0.1', port: fake.port, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(collect(capture.stream)).rejects.toMatchObject({ name: 'AbortError' });
    await fake.clientClosed;
  });

  it('rejects at once when the signal is already aborted', { timeout: 5_000 }, async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(openReplicationStream({ host: '127.0.0.1', port: 1, signal: ac.signal })).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('closes the socket when the consumer destroys the stream', { timeout: 5_000 }, async () => {
    const fake = await fakeRedis(handshake((sock) => sock.write(Buffer.concat([Buffer.from('$1000\r\n'), fakeRdb(10)]))));
    const capture = await openReplicationStream({ host: '127.0.0.1', port: fake.port });
    capture.stream.destroy();
    await fake.clientClosed;
  });
});

// ---------- rdbVersionFromHeader ----------

describe('rdbVersionFromHeader', () => {
  it('reads the version from a REDIS header', () => {
    expect(rdbVersionFromHeader(Buffer.from('REDIS0011'))).toBe(11);
    expect(rdbVersionFromHeader(Buffer.from('REDIS0009\xfa\x09redis-ver', 'latin1'))).toBe(9);
    expect(rdbVersionFromHeader(new Uint8Array(Buffer.from('REDIS0012')))).toBe(12);
  });

  it.each([
    ['an empty buffer', Buffer.alloc(0)],
    ['a truncated header', Buffer.from('REDIS001')],
    ['another magic', Buffer.from('REDIX0011')],
    ['lower-case magic', Buffer.from('redis0011')],
    ['a non-numeric version', Buffer.from('REDIS00a1')],
    ['version zero', Buffer.from('REDIS0000')],
    ['a gzip file', Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0])],
  ])('throws RDB_INVALID for %s', (_name, buf) => {
    expect(() => rdbVersionFromHeader(buf)).toThrow(RunbookError);
    try {
      rdbVersionFromHeader(buf);
    } catch (e) {
      expect((e as RunbookError).code).toBe('RDB_INVALID');
    }
  });
});
