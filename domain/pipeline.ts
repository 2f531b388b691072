// One pass over the RDB: hash it, check it with redis-check-rdb, compress it, (encrypt it: the seam
// below), hash what is stored, and write it to every destination at once. Memory stays constant:
// every stage honours backpressure, so the slowest destination sets the pace.
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Duplex, PassThrough, Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, constants as zlibConstants } from 'node:zlib';
import { rdbVersionFromHeader } from '../common/rdb';
import type { Compression } from '../common/types';
import { filterTool, toolPath } from './tools';
import { rdbStreamChecker } from './rdb-check';
import { encryptStream } from './crypto/age';
import type { Store } from './storage';

export interface StoreTarget {
  store: Store;
  key: string;
}

export interface PipelineResult {
  rdb: { version: number; size: number; sha256: string; keys: number; expires: number };
  stored: { size: number; sha256: string };
  copies: { destination: string; location: string; size: number }[];
}

export interface PipelineOptions {
  compression: Compression;
  compressionLevel?: number;
  /** The age recipients to encrypt to (any one's identity decrypts); absent or empty: stored unencrypted. */
  encryptTo?: string[];
  /** Called with the raw bytes read so far, at most about once a second. */
  onProgress?: (rawBytes: number, storedBytes: number) => void;
  /** Called, at most once a second, with the bytes sent to the destinations' servers since the last call. */
  onWire?: (bytes: number) => void;
  signal?: AbortSignal;
}

export function compressor(kind: Compression, level?: number): Duplex {
  if (kind === 'gzip') return createGzip({ level: level ?? 1, chunkSize: 256 * 1024 });
  if (kind === 'none') return new PassThrough();
  // The zstd program: streaming, several times faster than Node's gzip, and readable by any zstd.
  return filterTool(toolPath('zstd'), ['-q', '-c', `-${level ?? 1}`, '--no-progress'], 'zstd', 'RDB_INVALID');
}

export function decompressor(kind: Compression): Duplex {
  if (kind === 'gzip') return createGunzip({ chunkSize: 256 * 1024, finishFlush: zlibConstants.Z_SYNC_FLUSH });
  if (kind === 'none') return new PassThrough();
  return filterTool(toolPath('zstd'), ['-q', '-d', '-c', '--no-progress'], 'zstd -d', 'RDB_INVALID');
}

/**
 * Encryption at rest (age, X25519) to the target's recipients (its key's or a configured one, and the
 * break-glass ones); compressed bytes in, sealed chunks out. The age program does it beside the worker's thread, which the capture keeps busy; our own
 * implementation of the same format (crypto/age.ts) is the fallback and does all the reading.
 */
export function encryptor(recipients?: string[]): Duplex {
  if (!recipients?.length) return new PassThrough();
  const age = toolPath('age');
  return age !== 'age' || hasOnPath('age')
    ? filterTool(age, ['-e', ...recipients.flatMap((r) => ['-r', r])], 'age', 'RDB_INVALID')
    : encryptStream(recipients);
}

function hasOnPath(program: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir && existsSync(`${dir}/${program}`));
}

/** A pass-through that hashes and counts what flows through it. */
export function digester(onHeader?: (head: Buffer) => void): Transform & { sha256(): string; bytes(): number } {
  const hash = createHash('sha256');
  let bytes = 0;
  let head: Buffer | null = onHeader ? Buffer.alloc(0) : null;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      if (head && onHeader) {
        head = Buffer.concat([head, chunk.subarray(0, 9 - head.length)]);
        if (head.length >= 9) {
          onHeader(head);
          head = null;
        }
      }
      cb(null, chunk);
    },
    flush(cb) {
      if (head && onHeader) onHeader(head);
      cb();
    },
  });
  return Object.assign(t, { sha256: () => hash.digest('hex'), bytes: () => bytes });
}

/**
 * A Writable that copies every chunk to several writables and waits for the slowest:
 * used for the destinations and for redis-check-rdb beside the main flow.
 */
export function fanOut(sinks: Writable[]): Writable {
  return new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      // A sink that is gone (destroyed) is not written to nor waited for: it never drains, and its
      // failure is reported where it is consumed (the store's write, redis-check-rdb's result).
      let waiting = 0;
      const done = () => --waiting === 0 && cb();
      for (const s of sinks) {
        if (s.destroyed || s.write(chunk) || s.destroyed) continue;
        waiting++;
        const onDrain = () => (s.off('close', onClose), done());
        const onClose = () => (s.off('drain', onDrain), done());
        s.once('drain', onDrain);
        s.once('close', onClose);
      }
      if (waiting === 0) cb();
    },
    final(cb) {
      // Finished only when every sink has taken everything: autoDestroy follows 'finish'.
      let open = sinks.length;
      if (open === 0) return cb();
      for (const s of sinks) {
        s.end(() => --open === 0 && cb());
      }
    },
    destroy(err, cb) {
      if (err) for (const s of sinks) if (!s.destroyed) s.destroy(err);
      cb(err);
    },
  });
}

/** Streams `source` once to every destination. Nothing stays half-written if any part fails. */
export async function storeRdb(source: Readable, targets: StoreTarget[], opts: PipelineOptions): Promise<PipelineResult> {
  let version = 0;
  let headerError: Error | null = null;
  const raw = digester((head) => {
    try {
      version = rdbVersionFromHeader(head);
    } catch (err) {
      headerError = err as Error;
      raw.destroy(err as Error);
    }
  });
  const stored = digester();
  const check = rdbStreamChecker();

  // The raw stream feeds both redis-check-rdb and the compressor.
  const toCompress = new PassThrough({ highWaterMark: 1 << 20 });
  const branches: Promise<unknown>[] = [];
  const passes = targets.map(({ store, key }) => {
    const pass = new PassThrough({ highWaterMark: 4 << 20 });
    pass.on('error', () => {}); // reported through the store's write
    branches.push(store.write(key, pass));
    return pass;
  });
  // Progress is reported from both ends: bytes read from Redis, and bytes handed to the destinations.
  let lastReport = 0;
  const progress = () =>
    new Transform({
      transform(chunk: Buffer, _e, cb) {
        const now = Date.now();
        if (opts.onProgress && now - lastReport > 1000) {
          lastReport = now;
          opts.onProgress(raw.bytes(), stored.bytes());
        }
        cb(null, chunk);
      },
    });
  branches.push(
    pipeline(
      toCompress,
      compressor(opts.compression, opts.compressionLevel),
      encryptor(opts.encryptTo),
      stored,
      progress(),
      fanOut(passes),
    ),
  );

  const main = pipeline(source, raw, progress(), fanOut([check.stdin, toCompress]), { signal: opts.signal });
  // Aborted (cancelled, or stalled) after Redis finished: the uploads still under way stop too.
  const abortUploads = () => passes.forEach((p) => p.destroy(opts.signal?.reason as Error));
  opts.signal?.addEventListener('abort', abortUploads, { once: true });
  // The bytes on the wire to each destination: a slow uplink that still sends is alive, even while
  // the stream before it waits for a part to go out.
  let onWire = targets.reduce((n, { store }) => n + (store.bytesOnWire?.() ?? 0), 0);
  const wire = setInterval(() => {
    const now = targets.reduce((n, { store }) => n + (store.bytesOnWire?.() ?? 0), 0);
    if (now !== onWire) opts.onWire?.(now - onWire);
    onWire = now;
  }, 1000);
  try {
    const [, , checked] = await Promise.all([main, Promise.all(branches), check.result]);
    if (headerError) throw headerError;
    const sizes = await Promise.all(branches.slice(0, targets.length));
    return {
      rdb: { version, size: raw.bytes(), sha256: raw.sha256(), ...(checked as { keys: number; expires: number }) },
      stored: { size: stored.bytes(), sha256: stored.sha256() },
      copies: targets.map(({ store, key }, i) => ({ destination: store.name, location: store.location(key), size: sizes[i] as number })),
    };
  } catch (err) {
    check.kill();
    for (const p of passes) p.destroy(err as Error);
    source.destroy();
    await Promise.allSettled([main, ...branches, check.result]);
    throw headerError ?? err;
  } finally {
    clearInterval(wire);
    opts.signal?.removeEventListener('abort', abortUploads);
  }
}
