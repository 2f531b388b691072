// The dataset shapes of the backup benchmark, written into a throwaway redis-server.
import { spawn } from 'node:child_process';
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
export async function fillLargeValues(
  client: Redis,
  count: number,
  onProgress?: (done: number) => void,
  /** Keys blob:0 to blob:<from - 1> are there already: add the others (values unlike theirs). */
  from = 0,
): Promise<void> {
  const iv = Buffer.alloc(16, 0);
  iv.writeUInt32BE(from, 0);
  const prng = createCipheriv('aes-128-ctr', Buffer.alloc(16, 0x5e), iv);
  const zeros = Buffer.alloc(LARGE_VALUE_SIZE);
  const segments = LARGE_VALUE_SIZE / SEGMENT;
  const table = new Uint8Array(256);
  for (let i = 0; i < 256; i++) table[i] = ALPHABET[i % ALPHABET.length]!;
  const batch = 100; // ~5 MB per pipeline round trip
  for (let start = from; start < count; start += batch) {
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

// ---- (iii) mixed: every type, two databases, values that are neither periodic nor random noise ----

/** Seeded bytes (AES-128-CTR, fixed key) read through a cursor: the same dataset on every run. */
class Rand {
  private readonly prng = createCipheriv('aes-128-ctr', Buffer.alloc(16, 0x3c), Buffer.alloc(16, 0));
  private readonly zeros = Buffer.alloc(1 << 20);
  private buf = Buffer.alloc(0);
  private at = 0;

  u8(): number {
    if (this.at >= this.buf.length) {
      this.buf = this.prng.update(this.zeros);
      this.at = 0;
    }
    return this.buf[this.at++]!;
  }
  /** 0 <= n < max (max <= 65536). */
  int(max: number): number {
    return ((this.u8() << 8) | this.u8()) % max;
  }
  between(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }
  /** `n` characters from `alphabet` (64 of them: 6 bits of entropy each). */
  chars(n: number, alphabet = ALPHABET_STR): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[this.u8() & 63];
    return s;
  }
  hex(n: number): string {
    return this.chars(n, HEX64);
  }
  word(): string {
    return WORDS[this.u8() % WORDS.length]!;
  }
}

const ALPHABET_STR = ALPHABET.toString('latin1');
const HEX64 = '0123456789abcdef'.repeat(4);
// A small vocabulary gives the values the structure of real records: field names, enums, words.
const WORDS = (
  'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec ' +
  'romeo sierra tango uniform victor whiskey xray yankee zulu active pending closed open paid refunded shipped ' +
  'cart order user session token device mobile desktop tablet click view search login logout signup checkout ' +
  'paris london berlin madrid rome tokyo lagos lima quito oslo riga sofia kyiv delhi seoul lisbon dublin vienna ' +
  'red green blue black white amber azure coral ivory olive plum ruby teal violet premium basic trial enterprise'
).split(' ');

/**
 * One record of about `size` bytes: JSON-ish fields (an id, a timestamp, words) as far as they fit,
 * then text of words and random runs. zstd finds the structure (about 2x), LZF less, and no two
 * records are alike.
 */
function record(r: Rand, size: number, wordsIn10 = 6): string {
  if (size < 24) return `${r.word()}:${r.hex(Math.max(2, size - 8))}`;
  let s = `{"id":"${r.hex(12)}"`;
  if (size > 60) s += `,"ts":${1_700_000_000_000 + r.int(65536) * 65536 + r.int(65536)}`;
  if (size > 90) s += `,"user":"${r.word()}-${r.int(50000)}","state":"${r.word()}"`;
  s += ',"text":"';
  while (s.length < size - 2) s += r.int(10) < wordsIn10 ? `${r.word()} ` : `${r.chars(r.between(3, 9))} `;
  return `${s.trimEnd()}"}`;
}

/** Large values hold fewer words: LZF (8 KiB window) would otherwise shrink them by a third. */
const LARGE_WORDS = 3;

/** A value of around `size` bytes: records end to end. */
function blob(r: Rand, size: number): string {
  let s = '';
  while (s.length < size - 200) s += record(r, r.between(120, 400), LARGE_WORDS);
  return s + record(r, Math.max(60, size - s.length), LARGE_WORDS);
}

function resp(args: (string | number)[]): string {
  let s = `*${args.length}\r\n`;
  for (const a of args) {
    const v = String(a);
    s += `$${v.length}\r\n${v}\r\n`; // every generated string is ASCII: length = byte length
  }
  return s;
}

/** The commands that write one key of the mixed dataset (type chosen by `kind`). */
function mixedKey(r: Rand, i: number, large: boolean): string[] {
  const kind = r.int(100);
  const size = large ? r.between(40_000, 60_000) : r.between(40, 200);
  // Collections: `n` elements of `each` bytes; large ones pass the listpack limits (128 entries, 64 bytes).
  const n = large ? r.between(80, 160) : r.between(2, 8);
  const each = large ? Math.round(size / n) : r.between(8, 30);
  const words = large ? LARGE_WORDS : 6;
  const out: string[] = [];
  let key: string;
  if (kind < 50) {
    key = `str:${i}`;
    out.push(resp(['SET', key, large ? blob(r, size) : record(r, size)]));
  } else if (kind < 55) {
    key = `cnt:${i}`;
    out.push(resp(['SET', key, r.int(65536) * r.int(65536)])); // integer-encoded
  } else if (kind < 67) {
    key = `hash:${i}`;
    const args: (string | number)[] = ['HSET', key];
    for (let j = 0; j < n; j++) args.push(`${r.word()}_${j}`, record(r, each, words));
    out.push(resp(args));
  } else if (kind < 77) {
    key = `list:${i}`;
    const args: (string | number)[] = ['RPUSH', key];
    for (let j = 0; j < n; j++) args.push(record(r, each, words));
    out.push(resp(args));
  } else if (kind < 85) {
    key = `set:${i}`;
    const args: (string | number)[] = ['SADD', key];
    // Half of the small sets are integers only (intset encoding).
    const ints = !large && kind < 81;
    for (let j = 0; j < n; j++) args.push(ints ? r.int(65536) * 1000 + j : `${r.hex(8)}:${record(r, each, words)}`);
    out.push(resp(args));
  } else if (kind < 95) {
    key = `zset:${i}`;
    const args: (string | number)[] = ['ZADD', key];
    for (let j = 0; j < n; j++) args.push((r.int(65536) / 7).toFixed(3), `${r.hex(8)}:${record(r, each, words)}`);
    out.push(resp(args));
  } else {
    key = `stream:${i}`;
    const entries = large ? Math.round(n / 2) : r.between(2, 6);
    for (let j = 0; j < entries; j++) {
      out.push(
        resp(['XADD', key, `${1_700_000_000_000 + i}-${j + 1}`, 'event', r.word(), 'body', record(r, large ? each * 2 : each, words)]),
      );
    }
  }
  // One key in ten expires, far enough ahead never to expire during a run.
  if (r.int(10) === 0) out.push(resp(['PEXPIREAT', key, 4_000_000_000_000 + r.int(65536)]));
  return out;
}

/**
 * (iii) every type (strings, integers, hashes, lists, sets, sorted sets, streams), one key in ten with
 * a TTL, 70% in db 0 and 30% in db 1, records no two alike. `large`: each key holds ~50 KB (40-60 KB)
 * in one value or in 80-160 elements; otherwise 40-200 bytes, collections of 2-8 elements of 8-30 bytes.
 * Written through `redis-cli --pipe`: ~10x faster than a client's pipeline.
 */
export async function fillMixed(
  redisCli: string,
  port: number,
  count: number,
  opts: { large?: boolean; password?: string; onProgress?: (done: number) => void } = {},
): Promise<void> {
  const r = new Rand();
  const child = spawn(redisCli, ['-p', String(port), '--pipe'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: opts.password ? { ...process.env, REDISCLI_AUTH: opts.password } : process.env,
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const split = Math.round(count * 0.7);
  const write = (s: string) =>
    child.stdin.write(s) ? Promise.resolve() : new Promise<void>((resolve) => child.stdin.once('drain', resolve));
  let parts: string[] = [resp(['SELECT', 0])];
  let size = 0;
  for (let i = 0; i < count; i++) {
    if (i === split) parts.push(resp(['SELECT', 1]));
    for (const c of mixedKey(r, i, !!opts.large)) {
      parts.push(c);
      size += c.length;
    }
    if (size > 4 << 20) {
      await write(parts.join(''));
      parts = [];
      size = 0;
      opts.onProgress?.(i + 1);
    }
  }
  child.stdin.end(parts.join(''));
  const code = await exited;
  const errors = Number(/errors: (\d+)/.exec(out)?.[1] ?? NaN);
  if (code !== 0 || errors !== 0) throw new Error(`redis-cli --pipe failed (exit ${code}): ${out.trim().slice(-500)}`);
  opts.onProgress?.(count);
}
