// Streaming encryption in the age v1 format (age-encryption.org/v1), so that a backup can always be
// decrypted without this program: `age -d -i key.txt dump.rdb.zst.age | zstd -d > dump.rdb`.
// X25519 recipients only. Node's own crypto does the work (ChaCha20-Poly1305, X25519, HKDF, HMAC):
// nothing is buffered beyond one 64 KiB chunk. The decoder refuses what age refuses and accepts what
// it accepts, as the C2SP test vectors check (test/unit/age-vectors.test.ts).
//
// Format, as the spec has it:
//   header:  "age-encryption.org/v1\n"
//            per recipient: "-> X25519 <b64 ephemeral share>\n<b64 wrapped file key>\n"
//            (a stanza: "->" and its arguments, then a body in lines of 64 columns, ended by a shorter one)
//            "--- <b64 HMAC-SHA256(HKDF(file key, '', 'header'), header up to '---')>\n"
//   payload: 16-byte nonce, then STREAM: ChaCha20-Poly1305 over 64 KiB chunks with the key
//            HKDF(file key, nonce, 'payload') and the nonce <11-byte counter><last-chunk flag>.
// Base64 is unpadded and canonical: age re-encodes the header to check its MAC, so a header spelled
// any other way is not the one that was authenticated.
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
const ARMOR = '-----BEGIN AGE ENCRYPTED FILE-----';
const CHUNK = 64 * 1024;
const TAG = 16;
const COLUMNS = 64;
const MAX_HEADER = 64 * 1024;
const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
/** Canonical unpadded base64, or null: no padding, no stray bits, nothing but the alphabet. */
const unb64 = (s: string): Buffer | null => {
  if (!/^[A-Za-z0-9+/]*$/.test(s) || s.length % 4 === 1) return null;
  const b = Buffer.from(s, 'base64');
  return b64(b) === s ? b : null;
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

const SECRET_PREFIX = 'AGE-SECRET-KEY-1';
/** The prefix, 52 characters of key and 6 of checksum. */
const SECRET_LENGTH = SECRET_PREFIX.length + 58;
const BECH32_CHARS = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';

/**
 * Parses an age identity file: comments and blank lines allowed, one AGE-SECRET-KEY-1 line. Its errors
 * say what is wrong and never show the key beyond its public prefix: they end up in logs and histories.
 */
export function parseIdentity(text: string): AgeIdentity {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const bad = (found: string) =>
    new RunbookError(
      'SECRET_UNRESOLVED',
      `not an age identity: expected ${SECRET_PREFIX}... (bech32, ${SECRET_LENGTH} characters), found ${found}`,
      'it must hold an X25519 identity as `age-keygen` writes it: check for a mistyped, missing or extra character',
    );
  const line = lines.find((l) => l.toUpperCase().startsWith('AGE-SECRET-KEY-'));
  if (!line) throw bad(`no line starting AGE-SECRET-KEY- (${lines.length} line(s) besides comments and blank ones)`);
  const upper = line.toUpperCase();
  if (upper.startsWith('AGE-SECRET-KEY-PQ-1')) throw bad('a post-quantum identity (AGE-SECRET-KEY-PQ-1...), which backups do not use');
  if (!upper.startsWith(SECRET_PREFIX)) throw bad(`a line of ${line.length} characters starting AGE-SECRET-KEY- but not ${SECRET_PREFIX}`);
  const what = `${line.length} characters starting ${SECRET_PREFIX}`;
  if (line.length !== SECRET_LENGTH) throw bad(what);
  const data = line.slice(SECRET_PREFIX.length);
  const outside = [...data.toLowerCase()].flatMap((c, i) => (BECH32_CHARS.includes(c) ? [] : [SECRET_PREFIX.length + i + 1]));
  if (outside.length)
    throw bad(`${what} with ${outside.length} character(s) outside bech32's alphabet (at position ${outside.join(', ')})`);
  if (line !== upper && line !== line.toLowerCase()) throw bad(`${what} mixing upper and lower case`);
  const decoded = bech32.decodeUnsafe(line.toLowerCase(), 1000);
  if (!decoded) throw bad(`${what} with a bad checksum`);
  const raw = bech32.fromWordsUnsafe(decoded.words);
  if (decoded.prefix !== 'age-secret-key-' || !raw || raw.length !== 32) throw bad(`${what} that does not encode a 32-byte key`);
  const secret = Buffer.from(raw);
  const pub = rawPublic(createPublicKey(privateKeyOf(secret)));
  return { secret, recipient: bech32.encode('age', bech32.toWords(pub)) };
}

export function generateIdentity(): string {
  const { privateKey } = generateKeyPairSync('x25519');
  const raw = (privateKey.export({ format: 'der', type: 'pkcs8' }) as Buffer).subarray(PKCS8_X25519.length);
  return bech32.encode('age-secret-key-', bech32.toWords(raw), 1000).toUpperCase();
}

/** The 32-byte key of an X25519 recipient (age1..., 62 characters), or null. */
function recipientKey(recipient: string): Buffer | null {
  if (recipient !== recipient.toLowerCase() && recipient !== recipient.toUpperCase()) return null;
  const decoded = bech32.decodeUnsafe(recipient.toLowerCase(), 1000);
  const raw = decoded && decoded.prefix === 'age' ? bech32.fromWordsUnsafe(decoded.words) : undefined;
  return raw && raw.length === 32 ? Buffer.from(raw) : null;
}

/** A recipient as age-keygen prints it (lower case): the form fingerprints are taken of. */
export function canonicalRecipient(recipient: string, where: string): string {
  const raw = recipientKey(recipient.trim());
  if (!raw)
    throw new RunbookError(
      'CONFIG_INVALID',
      `${where}: "${recipient.slice(0, 12)}…" is not an age X25519 recipient`,
      'expected age1... as `age-keygen -y key.txt` prints it (62 characters): check for a mistyped character',
    );
  return bech32.encode('age', bech32.toWords(raw));
}

/** A short, stable name for a key that reveals nothing of it: what the manifest records. */
export const fingerprint = (recipient: string) => createHash('sha256').update(recipient).digest('hex').slice(0, 16);

/** A stanza's body as age writes it: lines of 64 columns, the last one shorter (empty if need be). */
function stanzaBody(body: Buffer): string {
  const text = b64(body);
  const lines: string[] = [];
  for (let i = 0; i <= text.length; i += COLUMNS) lines.push(text.slice(i, i + COLUMNS));
  return lines.join('\n');
}

function header(fileKey: Buffer, recipients: string[]): Buffer {
  let text = `${INTRO}\n`;
  for (const recipient of recipients) {
    const theirs = recipientKey(recipient);
    if (!theirs) throw new RunbookError('CONFIG_INVALID', `"${recipient.slice(0, 12)}…" is not an age X25519 recipient`);
    const eph = generateKeyPairSync('x25519');
    const share = rawPublic(eph.publicKey);
    const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: publicKeyOf(theirs) });
    const wrapKey = hkdf(shared, Buffer.concat([share, theirs]), 'age-encryption.org/v1/X25519');
    const c = createCipheriv('chacha20-poly1305', wrapKey, Buffer.alloc(12), { authTagLength: TAG });
    text += `-> X25519 ${b64(share)}\n${stanzaBody(Buffer.concat([c.update(fileKey), c.final(), c.getAuthTag()]))}\n`;
  }
  text += '---';
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

/** Encrypts to every recipient given (age1...): any one of their identities can decrypt. */
export function encryptStream(recipients: string | string[]): Transform {
  const to = typeof recipients === 'string' ? [recipients] : recipients;
  if (to.length === 0) throw new RunbookError('CONFIG_INVALID', 'encryption needs at least one recipient');
  const fileKey = randomBytes(16);
  const payloadNonce = randomBytes(16);
  const key = hkdf(fileKey, payloadNonce, 'payload');
  const head = Buffer.concat([header(fileKey, to), payloadNonce]);
  const chunker = new Chunker(CHUNK);
  let counter = 0n;
  let started = false;
  return new Transform({
    transform(data: Buffer, _e, cb: TransformCallback) {
      if (!started) {
        this.push(head);
        started = true;
      }
      chunker.push(data, (chunk) => seal(key, counter++, false, chunk, (b) => this.push(b)));
      cb();
    },
    flush(cb) {
      if (!started) this.push(head);
      seal(key, counter, true, chunker.rest(), (b) => this.push(b));
      cb();
    },
  });
}

const fail = (message: string, hint?: string) => new RunbookError('VERIFY_FAILED', message, hint);
const malformed = (what: string) => fail(`a malformed age header: ${what}`, 'the file is damaged, or was not written by age');

interface Stanza {
  type: string;
  args: string[];
  body: Buffer;
}

interface Header {
  stanzas: Stanza[];
  mac: Buffer;
  /** The header up to and including "---": what the MAC covers. */
  macInput: Buffer;
  /** Its length in bytes, with the MAC line. */
  length: number;
}

/** The header at the start of `buf`, or null while it is incomplete; a malformed one throws. */
function parseHeader(buf: Buffer): Header | null {
  const intro = Buffer.from(`${INTRO}\n`);
  const n = Math.min(buf.length, intro.length);
  if (!buf.subarray(0, n).equals(intro.subarray(0, n))) {
    const text = buf.toString('latin1', 0, 256);
    const first = text.split('\n')[0]!;
    const start = text.trimStart();
    if (start.startsWith(ARMOR) || (start && ARMOR.startsWith(start)))
      throw fail('an ASCII-armored age file (-----BEGIN AGE ENCRYPTED FILE-----), which backups never are', 'decrypt it with `age -d`');
    if (first === `${INTRO}\r`) throw malformed('its lines end in CR LF (was it converted as text?)');
    if (first.startsWith('age-encryption.org/'))
      throw fail(`an age file of an unsupported version (${JSON.stringify(first.slice(0, 40))})`);
    throw fail('not an age file (it does not start with age-encryption.org/v1)');
  }
  let pos = 0;
  const line = (): string | null => {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) return null;
    const text = buf.toString('latin1', pos, nl);
    pos = nl + 1;
    return text;
  };
  line(); // the intro, checked above
  const stanzas: Stanza[] = [];
  for (;;) {
    const start = pos;
    const l = line();
    if (l === null) return null;
    if (l.startsWith('---')) {
      const [dashes, ...args] = l.split(' ');
      if (dashes !== '---' || args.length !== 1) throw malformed('its last line is not "--- " and a MAC');
      const mac = unb64(args[0]!);
      if (!mac || mac.length !== 32) throw malformed('its MAC is not 32 bytes in canonical base64');
      return { stanzas, mac, macInput: buf.subarray(0, start + 3), length: pos };
    }
    if (!l.startsWith('->')) throw malformed(`line ${stanzas.length + 2} is neither a stanza ("-> ...") nor the MAC ("--- ...")`);
    const [arrow, ...args] = l.split(' ');
    if (arrow !== '->' || args.length === 0 || !args.every((a) => /^[\x21-\x7e]+$/.test(a)))
      throw malformed('a stanza line is not "->" and arguments of printable characters, one space apart');
    const body: Buffer[] = [];
    for (;;) {
      const b = line();
      if (b === null) return null;
      const bytes = b.length <= COLUMNS ? unb64(b) : null;
      if (!bytes) throw malformed(`a ${args[0]} stanza's body is not canonical base64 in lines of at most 64 columns`);
      body.push(bytes);
      if (b.length < COLUMNS) break; // only a shorter line (empty included) ends a body
    }
    stanzas.push({ type: args[0]!, args: args.slice(1), body: Buffer.concat(body) });
  }
}

/** Unwraps the file key as age does: identity by identity, stanza by stanza, the first match wins. */
function unwrapFileKey(h: Header, identities: AgeIdentity[]): Buffer {
  if (h.stanzas.some((s) => s.type === 'scrypt'))
    throw fail('this age file is encrypted with a passphrase (scrypt), which backups never are', 'decrypt it with `age -d`');
  for (const id of identities) {
    const ours = recipientKey(id.recipient)!;
    const secret = privateKeyOf(id.secret);
    for (const s of h.stanzas) {
      if (s.type !== 'X25519') continue; // others' stanzas, grease included
      if (s.args.length !== 1) throw malformed(`an X25519 stanza has ${s.args.length} arguments, not 1`);
      const share = unb64(s.args[0]!);
      if (!share || share.length !== 32) throw malformed("an X25519 stanza's share is not 32 bytes in canonical base64");
      if (s.body.length !== 32)
        throw malformed(`an X25519 stanza's body is ${s.body.length} bytes, not 32 (a 16-byte file key and its tag)`);
      let shared: Buffer;
      try {
        shared = diffieHellman({ privateKey: secret, publicKey: publicKeyOf(share) });
      } catch {
        shared = Buffer.alloc(32); // OpenSSL refuses to derive an all-zero secret
      }
      if (shared.every((b) => b === 0)) throw malformed('an X25519 stanza has a low-order share (the shared secret is zero)');
      const wrapKey = hkdf(shared, Buffer.concat([share, ours]), 'age-encryption.org/v1/X25519');
      let fileKey: Buffer;
      try {
        const d = createDecipheriv('chacha20-poly1305', wrapKey, Buffer.alloc(12), { authTagLength: TAG });
        d.setAuthTag(s.body.subarray(16));
        fileKey = Buffer.concat([d.update(s.body.subarray(0, 16)), d.final()]);
      } catch {
        continue; // not this identity's stanza
      }
      const expected = createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header'))
        .update(h.macInput)
        .digest();
      if (!timingSafeEqual(h.mac, expected)) throw fail('the age header was tampered with (its MAC does not match)');
      return fileKey;
    }
  }
  throw fail(
    'none of the configured keys can decrypt this backup',
    'configure the identity of one of its recipients (the manifest lists their fingerprints)',
  );
}

/**
 * Decrypts and authenticates. Any flipped, reordered or missing chunk, a truncated end and data after
 * the last chunk are errors; nothing unauthenticated leaves this stream. As in age, a full chunk is
 * released as soon as it authenticates: as a middle chunk, or else as the last one.
 */
export function decryptStream(identities: AgeIdentity[]): Transform {
  const FULL = CHUNK + TAG;
  let head: Buffer | null = Buffer.alloc(0);
  let key: Buffer | null = null;
  let pending: Buffer = Buffer.alloc(0);
  let counter = 0n;
  let ended = false;
  const attempt = (sealed: Buffer, last: boolean): Buffer | null => {
    const d = createDecipheriv('chacha20-poly1305', key!, nonce(counter, last), { authTagLength: TAG });
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    try {
      return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG)), d.final()]);
    } catch {
      return null;
    }
  };
  const openFull = (sealed: Buffer, push: (b: Buffer) => void) => {
    if (ended) throw fail('the encrypted backup has data after its last chunk');
    let plain = attempt(sealed, false);
    if (!plain) {
      plain = attempt(sealed, true);
      if (!plain) throw fail('the encrypted backup is damaged (a chunk does not authenticate)');
      ended = true;
    }
    counter++;
    push(plain);
  };
  return new Transform({
    transform(data: Buffer, _e, cb) {
      try {
        if (head) {
          head = Buffer.concat([head, data]);
          const h = parseHeader(head);
          if (!h || head.length < h.length + 16) {
            if (head.length > MAX_HEADER) throw fail('not an age file (no header end in its first 64 KiB)');
            return cb();
          }
          key = hkdf(unwrapFileKey(h, identities), head.subarray(h.length, h.length + 16), 'payload');
          data = head.subarray(h.length + 16);
          head = null;
        }
        const push = (b: Buffer) => this.push(b);
        let d = data;
        if (d.length && ended) throw fail('the encrypted backup has data after its last chunk');
        if (pending.length) {
          const take = d.subarray(0, FULL - pending.length);
          pending = Buffer.concat([pending, take]);
          d = d.subarray(take.length);
          if (pending.length < FULL) return cb();
          openFull(pending, push);
        }
        while (d.length >= FULL) {
          openFull(d.subarray(0, FULL), push);
          d = d.subarray(FULL);
        }
        if (d.length && ended) throw fail('the encrypted backup has data after its last chunk');
        pending = d;
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb) {
      try {
        if (head) {
          // A header complete but for its nonce is still checked first: a wrong key says so.
          const h = parseHeader(head);
          if (h) unwrapFileKey(h, identities);
          throw fail(h ? 'the encrypted backup is truncated (no payload nonce)' : 'the encrypted backup ends inside its header');
        }
        if (ended) return cb();
        if (pending.length === 0 && counter > 0n) throw fail('the encrypted backup is truncated (its last chunk is missing)');
        if (pending.length < TAG) throw fail('the encrypted backup is truncated');
        const plain = attempt(pending, true);
        if (!plain) throw fail('the encrypted backup is damaged or truncated (its last chunk does not authenticate)');
        // age writes an empty last chunk only for an empty payload: after a full chunk, the full one is last.
        if (plain.length === 0 && counter > 0n) throw fail('the encrypted backup ends with an empty chunk after a full one');
        this.push(plain);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}
