// The two dataset shapes of the backup benchmark, written into a throwaway redis-server.
import { createCipheriv } from 'node:crypto';
import type { Redis } from 'ioredis';

/** (i) many small keys: DEBUG POPULATE writes "key:N" -> "value:N" padded to `size` bytes. */
export async function populateSmallKeys(client: Redis, keys: number, size = 200): Promise<void> {
  await client.call('DEBUG', 'POPULATE', String(keys), 'key', String(size));
}

export const LARGE_VALUE_SIZE = 50 * 1024;
const SEGMENT = 1024;
/** Repeats copy the segment this far back: beyond LZF's 8 KiB window, inside gzip's 32 KiB and zstd's. */
const REPEAT_DISTANCE = 12;
/** Share of the segments after the first REPEAT_DISTANCE that are fresh rather than repeats. */
const FRESH_SHARE = 0.35;
const ALPHABET = Buffer.from('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/');

/**
 * (ii) large values of seeded pseudo-random data, partly compressible. DEBUG POPULATE values compress
 * absurdly well, so each 50 KiB value is built from 1 KiB segments: fresh ones are random base64
 * characters (6 bits of entropy per byte: ~1.33x by entropy coding alone), the others repeat the
 * segment 12 KiB back. Redis's own RDB compression (LZF, 8 KiB window) finds nothing to shrink, so
 * the RDB is about as large as the data (~1 GB at 20,000 values), while zstd -1 and gzip compress it
 * about 2.5x. The PRNG is AES-128-CTR with a fixed key: the same bytes on every run.
 */
export async function fillLargeValues(client: Redis, count: number, onProgress?: (done: number) => void): Promise<void> {
  const prng = createCipheriv('aes-128-ctr', Buffer.alloc(16, 0x5e), Buffer.alloc(16, 0));
  const zeros = Buffer.alloc(LARGE_VALUE_SIZE);
  const segments = LARGE_VALUE_SIZE / SEGMENT;
  const table = new Uint8Array(256);
  for (let i = 0; i < 256; i++) table[i] = ALPHABET[i % ALPHABET.length]!;
  const batch = 100; // ~5 MB per pipeline round trip
  for (let start = 0; start < count; start += batch) {
    const pipe = client.pipeline();
    for (let i = start; i < Math.min(count, start + batch); i++) {
      const v: Buffer = prng.update(zeros);
      const choice: Buffer = prng.update(zeros.subarray(0, segments));
      for (let s = 0; s < segments; s++) {
        const o = s * SEGMENT;
        if (s < REPEAT_DISTANCE || choice[s]! < FRESH_SHARE * 256) {
          for (let j = o; j < o + SEGMENT; j++) v[j] = table[v[j]!]!;
        } else {
          v.copy(v, o, o - REPEAT_DISTANCE * SEGMENT, o - (REPEAT_DISTANCE - 1) * SEGMENT);
        }
      }
      pipe.set(`blob:${i}`, v);
    }
    const results = await pipe.exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0];
    onProgress?.(Math.min(count, start + batch));
  }
}
