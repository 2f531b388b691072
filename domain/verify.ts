// Proof that a stored copy is what was written: its bytes hash to the manifest's stored checksum,
// and decompressed they hash to the raw RDB's checksum (which redis-check-rdb approved at capture).
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PassThrough } from 'node:stream';
import { RunbookError } from '../common/errors';
import type { Compression, CopyCheck, Encryption } from '../common/types';
import { decryptStream } from './crypto/age';
import type { Keyring } from './crypto/keys';
import { decompressor, digester } from './pipeline';
import type { Store } from './storage';

export interface ExpectedArtifact {
  size: number;
  sha256: string;
  compression: Compression;
  encryption: Encryption | null;
  rdb: { size: number; sha256: string };
}

export interface ReadOptions {
  keys?: Keyring;
  signal?: AbortSignal;
  /**
   * 'full' (default): also decrypt and decompress, and check the RDB's checksum. 'stored': the stored
   * bytes only; enough for a second copy once one copy with the same stored checksum passed 'full'.
   */
  depth?: 'full' | 'stored';
  /** Told of every stored chunk read: progress, for a heartbeat that stops when the read does. */
  onBytes?: (n: number) => void;
}

export async function verifyCopy(store: Store, key: string, expected: ExpectedArtifact, opts: ReadOptions = {}): Promise<CopyCheck> {
  const { signal } = opts;
  // A missing or wrong key is a configuration problem, not a damaged copy: it is thrown, not reported.
  if (expected.encryption && !opts.keys)
    throw new RunbookError('SECRET_UNRESOLVED', 'this backup is encrypted and no keys were given to read it');
  const full = opts.depth !== 'stored';
  const decrypt = full && expected.encryption ? decryptStream(opts.keys!.identitiesFor(expected.encryption)) : new PassThrough();
  const stored = digester();
  const raw = digester();
  try {
    const source = await store.read(key);
    const sink = new Writable({ highWaterMark: 1 << 20, write: (_c, _e, cb) => cb() });
    const counted = opts.onBytes ? counter(opts.onBytes) : new PassThrough();
    if (full) await pipeline(source, counted, stored, decrypt, decompressor(expected.compression), raw, sink, { signal });
    else await pipeline(source, counted, stored, sink, { signal });
  } catch (err) {
    // A copy that cannot be read or decompressed is a failed check, not a crash of the check.
    if (signal?.aborted) throw err;
    return { destination: store.name, ok: false, detail: `unreadable: ${(err as Error).message.split('\n')[0]}` };
  }
  const problems: string[] = [];
  if (stored.bytes() !== expected.size) problems.push(`size ${stored.bytes()} != ${expected.size}`);
  const sha = stored.sha256();
  if (sha !== expected.sha256) problems.push(`sha256 ${sha.slice(0, 12)}… != ${expected.sha256.slice(0, 12)}…`);
  const rawSha = full ? raw.sha256() : '';
  if (full && problems.length === 0 && (raw.bytes() !== expected.rdb.size || rawSha !== expected.rdb.sha256)) {
    problems.push('decompressed RDB does not match its checksum');
  }
  const ok = `sha256 ${sha.slice(0, 12)}… ok${full ? `, RDB sha256 ${rawSha.slice(0, 12)}… ok` : ' (same bytes as the fully checked copy)'}`;
  return { destination: store.name, ok: problems.length === 0, detail: problems.length ? problems.join('; ') : ok };
}

/** A pass-through that tells of every chunk: progress for a heartbeat that stops when the bytes do. */
export function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}
