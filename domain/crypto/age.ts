// Streaming encryption in the age v1 format (age-encryption.org/v1), so that a backup can always be
// decrypted without this program: `age -d -i key.txt dump.rdb.zst.age | zstd -d > dump.rdb`.
// X25519 recipients only. Node's own crypto does the work (ChaCha20-Poly1305, X25519, HKDF, HMAC):
// nothing is buffered beyond one 64 KiB chunk.
//
// Format, as the spec has it:
//   header:  "age-encryption.org/v1\n"
//            "-> X25519 <b64 ephemeral share>\n<b64 wrapped file key>\n"
//            "--- <b64 HMAC-SHA256(HKDF(file key, '', 'header'), header up to '---')>\n"
//   payload: 16-byte nonce, then STREAM: ChaCha20-Poly1305 over 64 KiB chunks with the key
//            HKDF(file key, nonce, 'payload') and the nonce <11-byte counter><last-chunk flag>.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { bech32 } from 'bech32';
import { RunbookError } from '../../common/errors';

const INTRO = 'age-encryption.org/v1';
const CHUNK = 64 * 1024;
const TAG = 16;
const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
const unb64 = (s: string) => {
  if (!/^[A-Za-z0-9+/]*$/.test(s)) throw new Error('bad base64');
  return Buffer.from(s, 'base64');
};
const hkdf = (ikm: Buffer, salt: Buffer, info: string) => Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));

const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');
const privateKeyOf = (raw: Buffer) => createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' });
const publicKeyOf = (raw: Buffer) => createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' });
const rawPublic = (k: KeyObject) => (k.export({ format: 'der', type: 'spki' }) as Buffer).subarray(SPKI_X25519.length);

export interface AgeIdentity {
  /** AGE-SECRET-KEY-1... */
  secret: Buffer;
  /** age1... */
  recipient: string;
}

/** Parses an age identity file: comments and blank lines allowed, one AGE-SECRET-KEY-1 line. */
export function parseIdentity(text: string): AgeIdentity {
  const line = text.split(/\r?\n/).find((l) => l.trim().startsWith('AGE-SECRET-KEY-1'));
  if (!line)
    throw new RunbookError('SECRET_UNRESOLVED', 'not an age identity (no AGE-SECRET-KEY-1 line)', 'generate one with `age-keygen`');
  const { prefix, words } = bech32.decode(line.trim().toLowerCase(), 1000);
  const secret = Buffer.from(bech32.fromWords(words));
  if (prefix !== 'age-secret-key-' || secret.length !== 32) throw new RunbookError('SECRET_UNRESOLVED', 'a malformed age identity');
  const pub = rawPublic(createPublicKey(privateKeyOf(secret)));
  return { secret, recipient: bech32.encode('age', bech32.toWords(pub)) };
}

export function generateIdentity(): string {
  const { privateKey } = generateKeyPairSync('x25519');
  const raw = (privateKey.export({ format: 'der', type: 'pkcs8' }) as Buffer).subarray(PKCS8_X25519.length);
  return bech32.encode('age-secret-key-', bech32.toWords(raw), 1000).toUpperCase();
}

function parseRecipient(recipient: string): Buffer {
  const { prefix, words } = bech32.decode(recipient, 1000);
  const raw = Buffer.from(bech32.fromWords(words));
  if (prefix !== 'age' || raw.length !== 32)
    throw new RunbookError('CONFIG_INVALID', `"${recipient.slice(0, 20)}…" is not an age X25519 recipient`);
  return raw;
}

/** A short, stable name for a key that reveals nothing of it: what the manifest records. */
export const fingerprint = (recipient: string) => createHash('sha256').update(recipient).digest('hex').slice(0, 16);

function header(fileKey: Buffer, recipient: string): Buffer {
  const theirs = parseRecipient(recipient);
  const eph = generateKeyPairSync('x25519');
  const share = rawPublic(eph.publicKey);
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: publicKeyOf(theirs) });
  const wrapKey = hkdf(shared, Buffer.concat([share, theirs]), 'age-encryption.org/v1/X25519');
  const c = createCipheriv('chacha20-poly1305', wrapKey, Buffer.alloc(12), { authTagLength: TAG });
  const body = Buffer.concat([c.update(fileKey), c.final(), c.getAuthTag()]);
  const text = `${INTRO}\n-> X25519 ${b64(share)}\n${b64(body)}\n---`;
  const mac = createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header'))
    .update(text)
    .digest();
  return Buffer.from(`${text} ${b64(mac)}\n`);
}

function nonce(counter: bigint, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(counter, 3); // an 11-byte big-endian counter: 2^64 chunks is more than enough
  n[11] = last ? 1 : 0;
  return n;
}

/** Seals one chunk, handing on its pieces without copying them together. */
function seal(key: Buffer, counter: bigint, last: boolean, plain: Buffer, push: (b: Buffer) => void): void {
  const c = createCipheriv('chacha20-poly1305', key, nonce(counter, last), { authTagLength: TAG });
  push(c.update(plain));
  c.final();
  push(c.getAuthTag());
}

/**
 * Cuts a stream into fixed-size pieces, holding back the newest one (the last chunk is flagged as
 * such). Pieces are slices of the incoming buffers: only a piece that straddles two of them is copied.
 */
class Chunker {
  private held: Buffer | null = null;
  constructor(private readonly size: number) {}
  push(data: Buffer, emit: (chunk: Buffer) => void): void {
    let d = data;
    if (this.held) {
      if (this.held.length < this.size) {
        const take = d.subarray(0, this.size - this.held.length);
        this.held = Buffer.concat([this.held, take]);
        d = d.subarray(take.length);
      }
      if (d.length === 0) return; // it may be the last chunk
      emit(this.held);
      this.held = null;
    }
    while (d.length > this.size) {
      emit(d.subarray(0, this.size));
      d = d.subarray(this.size);
    }
    this.held = d.length ? d : null;
  }
  rest(): Buffer {
    return this.held ?? Buffer.alloc(0);
  }
}

export function encryptStream(recipient: string): Transform {
  const fileKey = randomBytes(16);
  const payloadNonce = randomBytes(16);
  const key = hkdf(fileKey, payloadNonce, 'payload');
  const chunker = new Chunker(CHUNK);
  let counter = 0n;
  let started = false;
  return new Transform({
    transform(data: Buffer, _e, cb: TransformCallback) {
      if (!started) {
        this.push(Buffer.concat([header(fileKey, recipient), payloadNonce]));
        started = true;
      }
      chunker.push(data, (chunk) => seal(key, counter++, false, chunk, (b) => this.push(b)));
      cb();
    },
    flush(cb) {
      if (!started) this.push(Buffer.concat([header(fileKey, recipient), payloadNonce]));
      seal(key, counter, true, chunker.rest(), (b) => this.push(b));
      cb();
    },
  });
}

const fail = (message: string, hint?: string) => new RunbookError('VERIFY_FAILED', message, hint);

function unwrapFileKey(headerText: string, identities: AgeIdentity[]): Buffer {
  const lines = headerText.split('\n');
  if (lines[0] !== INTRO) throw fail('not an age file');
  const macLine = lines.at(-1)!;
  const stanzas: { args: string[]; body: Buffer }[] = [];
  for (let i = 1; i < lines.length - 1; i += 2) {
    if (!lines[i]!.startsWith('-> ')) throw fail('a damaged age header');
    stanzas.push({ args: lines[i]!.slice(3).split(' '), body: unb64(lines[i + 1] ?? '') });
  }
  for (const s of stanzas.filter((x) => x.args[0] === 'X25519' && x.args.length === 2 && x.body.length === 32)) {
    const share = unb64(s.args[1]!);
    if (share.length !== 32) continue;
    for (const id of identities) {
      const ours = parseRecipient(id.recipient);
      const shared = diffieHellman({ privateKey: privateKeyOf(id.secret), publicKey: publicKeyOf(share) });
      const wrapKey = hkdf(shared, Buffer.concat([share, ours]), 'age-encryption.org/v1/X25519');
      try {
        const d = createDecipheriv('chacha20-poly1305', wrapKey, Buffer.alloc(12), { authTagLength: TAG });
        d.setAuthTag(s.body.subarray(16));
        const fileKey = Buffer.concat([d.update(s.body.subarray(0, 16)), d.final()]);
        const expected = createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header'))
          .update(headerText.slice(0, headerText.length - macLine.length) + '---')
          .digest();
        if (!macLine.startsWith('--- ') || !timingSafeEqual(unb64(macLine.slice(4)), expected))
          throw fail('the age header was tampered with');
        return fileKey;
      } catch (err) {
        if (err instanceof RunbookError) throw err;
        // not this identity
      }
    }
  }
  throw fail('none of the configured keys can decrypt this backup', 'configure the key whose id the manifest names');
}

/**
 * Decrypts and authenticates. Any flipped, reordered or missing chunk, and a truncated end, is an
 * error before the bytes concerned are passed on: nothing unauthenticated leaves this stream.
 */
export function decryptStream(identities: AgeIdentity[]): Transform {
  let head: Buffer | null = Buffer.alloc(0);
  let key: Buffer | null = null;
  const chunker = new Chunker(CHUNK + TAG);
  let counter = 0n;
  const open = (sealed: Buffer, last: boolean) => {
    const d = createDecipheriv('chacha20-poly1305', key!, nonce(counter++, last), { authTagLength: TAG });
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    try {
      return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG)), d.final()]);
    } catch {
      throw fail(
        last
          ? 'the encrypted backup is damaged or truncated (its last chunk does not authenticate)'
          : 'the encrypted backup is damaged (a chunk does not authenticate)',
      );
    }
  };
  return new Transform({
    transform(data: Buffer, _e, cb) {
      try {
        if (head) {
          head = Buffer.concat([head, data]);
          const end = head.indexOf('\n---');
          const nl = end < 0 ? -1 : head.indexOf('\n', end + 4);
          if (nl < 0 || head.length < nl + 1 + 16) {
            if (head.length > 64 * 1024) throw fail('not an age file (no header end)');
            return cb();
          }
          key = hkdf(unwrapFileKey(head.subarray(0, nl).toString('latin1'), identities), head.subarray(nl + 1, nl + 17), 'payload');
          data = head.subarray(nl + 17);
          head = null;
        }
        chunker.push(data, (sealed) => this.push(open(sealed, false)));
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb) {
      try {
        if (head || !key) throw fail('the encrypted backup ends inside its header');
        const rest = chunker.rest();
        if (rest.length < TAG) throw fail('the encrypted backup is truncated');
        this.push(open(rest, true));
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}
