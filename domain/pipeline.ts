// One pass over the RDB: hash it, check it with redis-check-rdb, compress it (and decompress that again
// beside the stream: the round trip must hash to the RDB), encrypt it, hash what is stored, and write
// it to every destination at once, each of which hashes what it was handed and commits its copy only if
// that matches. Memory stays constant: every stage honours backpressure, so the slowest sets the pace.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Duplex, PassThrough, Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, constants as zlibConstants } from 'node:zlib';
import { RunbookError } from '../common/errors';
import { rdbVersionFromHeader } from '../common/rdb';
import type { Compression, WriteProof } from '../common/types';
import { childEnv, filterTool, toolPath } from './tools';
import { rdbStreamChecker } from './rdb-check';
import { encryptStream } from './crypto/age';
import type { Store, Written } from './storage';

export interface StoreTarget {
  store: Store;
  key: string;
}

export interface PipelineResult {
  rdb: { version: number; size: number; sha256: string; keys: number; expires: number };
  stored: { size: number; sha256: string };
  copies: { destination: string; location: string; size: number }[];
  /** What each destination proved as it wrote, and the decompression round trip (when asked for). */
  proof: { copies: WriteProof[]; roundTrip: { sha256: string } | null };
}

export interface PipelineOptions {
  compression: Compression;
  compressionLevel?: number;
  /** The age recipients to encrypt to (any one's identity decrypts); absent or empty: stored unencrypted. */
  encryptTo?: string[];
  /** Decompress the compressed stream beside the write; its output must hash to the RDB's SHA-256. */
  roundTrip?: boolean;
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

/** A pass-through that hashes and counts what flows through it; sha256() is final once it has ended. */
export function digester(onHeader?: (head: Buffer) => void): Transform & { sha256(): string; bytes(): number } {
  const hash = createHash('sha256');
  let digest: string | undefined;
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
  return Object.assign(t, { sha256: () => (digest ??= hash.digest('hex')), bytes: () => bytes });
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

interface RoundTrip {
  input: Writable;
  /** The SHA-256 of the decompressed stream (equal to the RDB's: the same bytes, so the same size too). */
  result: Promise<{ sha256: string }>;
  kill(): void;
}

/**
 * The compressed stream decompressed again as it is produced, and hashed: proof that what is stored
 * decompresses to the RDB, without reading it back. The decompressor's output (zstd -d, gzip -d) goes
 * straight into `openssl dgst`, process to process, so the worker's thread (busy with the capture)
 * never handles those bytes; where either program is missing, they are decompressed and hashed here.
 */
function roundTripper(kind: Compression): RoundTrip {
  const failed = (why: string) =>
    new RunbookError(
      'VERIFY_FAILED',
      `the compressed stream does not decompress (${kind}): ${why}; no copy was kept`,
      'the compressor or the worker is at fault: try another compression or level, and check the worker',
    );
  const zstd = toolPath('zstd');
  const found = (p: string) => (p.includes('/') ? existsSync(p) : hasOnPath(p));
  // zstd inflates gzip at half the CPU of gzip -d, where it was built with zlib.
  const program = kind === 'zstd' || (found(zstd) && zstdReadsGzip(zstd)) ? zstd : 'gzip';
  const piped = found('openssl') && found(program);
  const round = piped ? pipedRoundTrip(program, kind, failed) : localRoundTrip(kind, failed);
  round.result.catch(() => {}); // reported through the destinations' expectations
  return round;
}

function localRoundTrip(kind: Compression, failed: (why: string) => Error): RoundTrip {
  const input = new PassThrough({ highWaterMark: 1 << 20 });
  const hash = createHash('sha256');
  const sink = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      cb();
    },
  });
  const dec = decompressor(kind);
  const result = pipeline(input, dec, sink).then(
    () => ({ sha256: hash.digest('hex') }),
    (err: Error) => {
      throw failed(err.message.split('\n')[0]!);
    },
  );
  return { input, result, kill: () => (input.destroy(), dec.destroy()) };
}

let gzipByZstd: boolean | undefined;
function zstdReadsGzip(zstd: string): boolean {
  gzipByZstd ??= /--format=gzip/.test(spawnSync(zstd, ['-H'], { env: childEnv(), encoding: 'utf8', timeout: 5000 }).stdout ?? '');
  return gzipByZstd;
}

function pipedRoundTrip(program: string, kind: Compression, failed: (why: string) => Error): RoundTrip {
  const args = program === 'gzip' ? ['-d', '-c'] : ['-q', '-d', '-c', '--no-progress', ...(kind === 'gzip' ? ['--format=gzip'] : [])];
  const dec = spawn(program, args, { env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  // The digest reads the decompressor's output pipe itself; this process lets go of its end.
  const dgst = spawn('openssl', ['dgst', '-sha256', '-r'], { env: childEnv(), stdio: [dec.stdout, 'pipe', 'pipe'] });
  dec.stdout.destroy();
  dec.stdin.on('error', () => {}); // the decompressor gone: its exit says why
  let out = '';
  let errors = '';
  dgst.stdout.on('data', (d: Buffer) => (out += d.toString()));
  for (const s of [dec.stderr, dgst.stderr]) s.on('data', (d: Buffer) => (errors = (errors + d.toString()).slice(-1024)));
  const exited = (child: ChildProcess) =>
    new Promise<number | string>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => resolve(code ?? signal ?? 'killed'));
    });
  const result = Promise.all([exited(dec), exited(dgst)]).then(
    ([z, d]) => {
      const sha256 = /^[0-9a-f]{64}/.exec(out)?.[0];
      if (z !== 0) throw failed(`${kind} -d failed (${z}): ${errors.trim()}`);
      if (d !== 0 || !sha256) throw failed(`openssl dgst failed (${d}): ${errors.trim()}`);
      return { sha256 };
    },
    (err: Error) => {
      throw failed(err.message);
    },
  );
  return { input: dec.stdin, result, kill: () => (dec.kill('SIGKILL'), dgst.kill('SIGKILL')) };
}

/**
 * Streams `source` once to every destination. Nothing stays half-written if any part fails, and no
 * destination commits a copy whose bytes differ from the stream's (or, with roundTrip, before the
 * compressed stream is known to decompress to the RDB).
 */
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
  const roundTrip = opts.roundTrip && opts.compression !== 'none' ? roundTripper(opts.compression) : undefined;

  // What every destination's bytes must be, asked when its body has ended: by then the stream is hashed.
  let expected: Promise<{ size: number; sha256: string }> | undefined;
  const expect = () =>
    (expected ??= (async () => {
      if (roundTrip) {
        const rt = await roundTrip.result;
        if (rt.sha256 !== raw.sha256()) {
          throw new RunbookError(
            'VERIFY_FAILED',
            `the compressed stream decompresses to other bytes than the RDB's (sha256 ${rt.sha256.slice(0, 12)}…, ` +
              `the RDB's ${raw.sha256().slice(0, 12)}…); no copy was kept`,
            'the compressor or the worker is at fault: try another compression or level, and check the worker',
          );
        }
      }
      return { size: stored.bytes(), sha256: stored.sha256() };
    })());

  // The raw stream feeds both redis-check-rdb and the compressor.
  const toCompress = new PassThrough({ highWaterMark: 1 << 20 });
  const branches: Promise<unknown>[] = [];
  const writes: Promise<Written>[] = [];
  const passes = targets.map(({ store, key }) => {
    const pass = new PassThrough({ highWaterMark: 4 << 20 });
    pass.on('error', () => {}); // reported through the store's write
    writes.push(store.write(key, pass, { expect }));
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
  if (roundTrip) {
    // The compressed bytes go to the round trip beside encryption, before it: what is checked is what is sealed.
    const toEncrypt = new PassThrough({ highWaterMark: 1 << 20 });
    branches.push(
      pipeline(toCompress, compressor(opts.compression, opts.compressionLevel), fanOut([roundTrip.input, toEncrypt])),
      pipeline(toEncrypt, encryptor(opts.encryptTo), stored, progress(), fanOut(passes)),
      roundTrip.result,
    );
  } else {
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
  }

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
    const [, , checked, written] = await Promise.all([main, Promise.all(branches), check.result, Promise.all(writes)]);
    if (headerError) throw headerError;
    const want = await expect();
    // A destination that did not hold its copy to the expectation is held to it here (its copy is
    // then already there, in a folder that no manifest will ever name).
    targets.forEach(({ store, key }, i) => {
      const w = written[i]!;
      if (w.size !== want.size || w.sha256 !== want.sha256) {
        throw new RunbookError(
          'STORAGE_FAILED',
          `destination ${store.name} (${store.location(key)}): the bytes handed to it differ from the backup stream ` +
            `(${w.size} bytes, sha256 ${w.sha256.slice(0, 12)}… written; ${want.size} bytes, sha256 ${want.sha256.slice(0, 12)}… streamed)`,
          'retried while it may clear; again and again points at the worker or the destination',
        );
      }
    });
    return {
      rdb: { version, size: raw.bytes(), sha256: raw.sha256(), ...(checked as { keys: number; expires: number }) },
      stored: { size: stored.bytes(), sha256: stored.sha256() },
      copies: targets.map(({ store, key }, i) => ({ destination: store.name, location: store.location(key), size: written[i]!.size })),
      proof: {
        copies: targets.map(({ store }, i) => {
          const { size, sha256, server } = written[i]!;
          return { destination: store.name, size, sha256, ...(server ? { server } : {}) };
        }),
        roundTrip: roundTrip ? await roundTrip.result : null,
      },
    };
  } catch (err) {
    check.kill();
    roundTrip?.kill();
    for (const p of passes) p.destroy(err as Error);
    source.destroy();
    await Promise.allSettled([main, ...branches, ...writes, check.result]);
    throw headerError ?? err;
  } finally {
    clearInterval(wire);
    opts.signal?.removeEventListener('abort', abortUploads);
  }
}
