// The age format's published test vectors: C2SP's CCTV collection (github.com/C2SP/CCTV, folder
// age/testdata), as its authors publish it in the package cctv-age (a dev dependency; the vectors are
// 0BSD, CC0 1.0 or Unlicense, at the user's choice). Our decoder must decrypt what age decrypts, to the
// same bytes, and refuse what age refuses with a RunbookError, never a crash. X25519, header, STREAM
// and MAC vectors run in full; passphrase (scrypt), post-quantum (hybrid) and ASCII-armored files are
// refused with a message that says so: backups are never written that way.
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inflateSync } from 'node:zlib';
import * as cctv from 'cctv-age';
import { describe, expect, it } from 'vitest';
import { RunbookError } from '../../common/errors';
import { decryptStream, generateIdentity, parseIdentity, type AgeIdentity } from '../../domain/crypto/age';

interface Vector {
  name: string;
  expect: string;
  payload?: string;
  identities: string[];
  passphrases: string[];
  armored: boolean;
  file: Buffer;
}

const KNOWN = new Set(['expect', 'payload', 'identity', 'passphrase', 'armored', 'compressed', 'file key', 'comment']);

function parseVector(name: string, bytes: Uint8Array): Vector {
  const all = Buffer.from(bytes);
  const end = all.indexOf('\n\n');
  const v: Vector = { name, expect: '', identities: [], passphrases: [], armored: false, file: all.subarray(end + 2) };
  let compressed = false;
  for (const line of all.subarray(0, end).toString().split('\n')) {
    const [key, value] = [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)];
    expect(KNOWN.has(key), `${name}: unknown key "${key}"`).toBe(true);
    if (key === 'expect') v.expect = value;
    if (key === 'payload') v.payload = value;
    if (key === 'identity') v.identities.push(value);
    if (key === 'passphrase') v.passphrases.push(value);
    if (key === 'armored') v.armored = value === 'yes';
    if (key === 'compressed') compressed = value === 'zlib';
  }
  if (compressed) v.file = inflateSync(v.file);
  return v;
}

const vectors = Object.entries(cctv as Record<string, Uint8Array>)
  .filter(([, b]) => b instanceof Uint8Array)
  .map(([name, b]) => parseVector(name, b));

/** Decrypts in pieces of an odd size, so that the header and chunks straddle writes; what was released, and the error. */
async function decrypt(file: Buffer, identities: AgeIdentity[], piece: number) {
  const released: Buffer[] = [];
  const pieces = function* () {
    for (let i = 0; i < file.length; i += piece) yield file.subarray(i, i + piece);
  };
  const error = await pipeline(
    Readable.from(pieces()),
    decryptStream(identities),
    new Writable({ write: (c: Buffer, _e, cb) => (released.push(c), cb()) }),
  ).then(
    () => undefined,
    (err: unknown) => err,
  );
  return { sha256: createHash('sha256').update(Buffer.concat(released)).digest('hex'), error };
}

const isX25519 = (k: string) => k.startsWith('AGE-SECRET-KEY-1');
const family = (v: Vector) =>
  v.armored ? 'armored' : v.passphrases.length ? 'scrypt' : v.identities.some((k) => !isX25519(k)) ? 'hybrid' : 'x25519';

describe('the age test vectors (C2SP CCTV)', () => {
  it('are all there, of every kind', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(143);
    const kinds = new Set(vectors.map(family));
    expect([...kinds].sort()).toEqual(['armored', 'hybrid', 'scrypt', 'x25519']);
    expect(vectors.filter((v) => family(v) === 'x25519').length).toBeGreaterThanOrEqual(60);
  });

  const x25519 = vectors.filter((v) => family(v) === 'x25519');

  it.each(x25519.filter((v) => v.expect === 'success').map((v) => [v.name, v] as const))(
    '%s: decrypts to the payload age decrypts',
    async (_name, v) => {
      const ids = v.identities.map(parseIdentity);
      for (const piece of [v.file.length || 1, 4093, 7]) {
        if (piece === 7 && v.file.length > 100_000) continue;
        const r = await decrypt(v.file, ids, piece);
        expect(r.error).toBeUndefined();
        expect(r.sha256).toBe(v.payload);
      }
    },
  );

  const failures = x25519.filter((v) => v.expect !== 'success');
  it.each(failures.map((v) => [v.name, v.expect, v] as const))('%s: refused (%s), as age refuses it', async (_name, kind, v) => {
    const ids = v.identities.map(parseIdentity);
    for (const piece of [v.file.length || 1, 4093]) {
      const r = await decrypt(v.file, ids, piece);
      expect(r.error).toBeInstanceOf(RunbookError);
      const message = (r.error as Error).message;
      if (kind === 'no match') expect(message).toMatch(/none of the configured keys can decrypt/);
      else if (kind === 'HMAC failure') expect(message).toMatch(/tampered/);
      else if (kind === 'header failure') expect(message).toMatch(/header|not an age file|unsupported version|no payload nonce/);
      else {
        expect(kind).toBe('payload failure');
        expect(message).toMatch(/damaged|truncated|empty chunk|after its last chunk/);
        // Only authenticated plaintext was released: age's reference releases the same.
        expect(r.sha256).toBe(v.payload);
      }
    }
  });

  it.each(vectors.filter((v) => family(v) === 'scrypt').map((v) => [v.name, v] as const))(
    '%s: a passphrase-encrypted file is refused',
    async (_name, v) => {
      const ids = [...v.identities.map(parseIdentity), parseIdentity(generateIdentity())];
      const r = await decrypt(v.file, ids, v.file.length || 1);
      expect(r.error).toBeInstanceOf(RunbookError);
      expect(r.sha256).toBe(createHash('sha256').digest('hex'));
      if (v.expect === 'success') expect((r.error as Error).message).toMatch(/passphrase \(scrypt\)/);
    },
  );

  it.each(vectors.filter((v) => family(v) === 'hybrid').map((v) => [v.name, v] as const))(
    '%s: a post-quantum identity is refused, and the file with it',
    async (_name, v) => {
      for (const k of v.identities.filter((i) => !isX25519(i))) {
        expect(() => parseIdentity(k)).toThrow(RunbookError);
        expect(() => parseIdentity(k)).toThrow(/post-quantum/);
      }
      const ids = [...v.identities.filter(isX25519).map(parseIdentity), parseIdentity(generateIdentity())];
      const r = await decrypt(v.file, ids, v.file.length || 1);
      expect(r.error).toBeInstanceOf(RunbookError);
    },
  );

  it.each(vectors.filter((v) => family(v) === 'armored').map((v) => [v.name, v] as const))(
    '%s: an ASCII-armored file is refused',
    async (_name, v) => {
      const ids = [...v.identities.filter(isX25519).map(parseIdentity), parseIdentity(generateIdentity())];
      const r = await decrypt(v.file, ids, v.file.length || 1);
      expect(r.error).toBeInstanceOf(RunbookError);
      if (v.file.toString('latin1').trimStart().startsWith('-----BEGIN AGE ENCRYPTED FILE-----'))
        expect((r.error as Error).message).toMatch(/ASCII-armored/);
    },
  );
});
