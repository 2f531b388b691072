// People's signatures. A person is known by an SSH public key; the CLI signs a text statement with
// `ssh-keygen -Y sign` (so keys held by ssh-agent and hardware keys work) and the worker verifies the
// SSHSIG signature (OpenSSH's PROTOCOL.sshsig) here, in-process, with no program to trust. Keys and
// signature blobs are read with sshpk; the SSHSIG envelope and the hardware keys (sk-*, PROTOCOL.u2f)
// that sshpk does not know are read here.
import { spawn } from 'node:child_process';
import { constants, createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sshpk from 'sshpk';
import { RunbookError, type ErrorCode } from '../../common/errors';
import { childEnv } from '../tools';

/** The namespace of every signature of this project: a signature made for git or for a file never counts here. */
export const SSHSIG_NAMESPACE = 'redis-runbooks';

const MAGIC = Buffer.from('SSHSIG');
const ARMOR_BEGIN = '-----BEGIN SSH SIGNATURE-----';
const ARMOR_END = '-----END SSH SIGNATURE-----';
/** OpenSSH accepts 1024 bits; an approval to replace a database deserves more. */
const RSA_MIN_BITS = 2048;
const SK_ED25519 = 'sk-ssh-ed25519@openssh.com';
const SK_ECDSA = 'sk-ecdsa-sha2-nistp256@openssh.com';
const ECDSA_HASH: Record<string, string> = {
  'ecdsa-sha2-nistp256': 'sha256',
  'ecdsa-sha2-nistp384': 'sha384',
  'ecdsa-sha2-nistp521': 'sha512',
};
const KEY_TYPES = ['ssh-ed25519', ...Object.keys(ECDSA_HASH), 'ssh-rsa', SK_ED25519, SK_ECDSA];
/** PROTOCOL.u2f: the hardware key saw a touch. Required, as sshd does unless told no-touch-required. */
const SK_USER_PRESENT = 0x01;

/** For messages: what a signature or a file says, quoted and cut short (it may be anything). */
const quote = (s: string) => JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);

/** Reads SSH wire encoding (RFC 4251): any read past the end calls `short`. */
class Reader {
  private off = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly short: () => never,
  ) {}
  take(n: number): Buffer {
    if (n > this.buf.length - this.off) this.short();
    this.off += n;
    return this.buf.subarray(this.off - n, this.off);
  }
  u8 = () => this.take(1)[0];
  u32 = () => this.take(4).readUInt32BE(0);
  string = () => this.take(this.u32());
  text = () => this.string().toString('latin1');
  get done() {
    return this.off === this.buf.length;
  }
}

const sshString = (b: Buffer) => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

/** Base64 that decodes and encodes back to itself: Buffer.from would quietly skip anything else. */
function strictBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64').replace(/=+$/, '') === text.replace(/=+$/, '') ? bytes : undefined;
}

interface SshKey {
  type: string;
  blob: Buffer;
  key: KeyObject;
  /** A hardware key's application ("ssh:"): its signatures cover the application's hash. */
  application?: Buffer;
}

/** A public key from its wire blob, refusing what is malformed, weak or not supported. */
function parseKeyBlob(blob: Buffer, code: ErrorCode, where: string): SshKey {
  const bad = (why: string, hint?: string): never => {
    throw new RunbookError(code, `${where}: ${why}`, hint);
  };
  const r = new Reader(blob, () => bad('the public key is truncated'));
  const type = r.text();
  if (type.endsWith('-cert-v01@openssh.com')) {
    bad(`${quote(type)} is an SSH certificate, and certificates are not supported`, 'list the plain public key (the .pub file) instead');
  }
  if (!KEY_TYPES.includes(type)) bad(`unsupported SSH key type ${quote(type)}`, `use a key of one of these types: ${KEY_TYPES.join(', ')}`);
  try {
    if (type === SK_ED25519) {
      const pk = r.string();
      const application = r.string();
      if (!r.done || pk.length !== 32) bad(`the ${type} public key is malformed`);
      const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: pk.toString('base64url') }, format: 'jwk' });
      return { type, blob, key, application };
    }
    if (type === SK_ECDSA) {
      const curve = r.text();
      const q = r.string();
      const application = r.string();
      if (!r.done || curve !== 'nistp256' || q.length !== 65 || q[0] !== 4) bad(`the ${type} public key is malformed`);
      const [x, y] = [q.subarray(1, 33), q.subarray(33)].map((c) => c.toString('base64url'));
      return { type, blob, key: createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' }), application };
    }
    const parsed = sshpk.parseKey(blob, 'rfc4253');
    // Only the one canonical encoding: no trailing bytes, no curve that disagrees with the type.
    if (!parsed.toBuffer('rfc4253', {}).equals(blob)) bad(`the ${type} public key is malformed`);
    if (type === 'ssh-rsa' && parsed.size < RSA_MIN_BITS) {
      bad(`the RSA key has ${parsed.size} bits, fewer than the ${RSA_MIN_BITS} required`, 'use an Ed25519 key: ssh-keygen -t ed25519');
    }
    return { type, blob, key: createPublicKey(parsed.toString('pkcs8')) };
  } catch (err) {
    if (err instanceof RunbookError) throw err;
    return bad(`the ${type} public key is malformed`);
  }
}

/** The key of a line "type base64 [comment]". */
function parseKeyLine(line: string, code: ErrorCode, where: string): SshKey {
  const [type, b64] = String(line).trim().split(/\s+/);
  if (!type || !b64) {
    throw new RunbookError(
      code,
      `${where}: ${quote(String(line))} is not an SSH public key line`,
      'give a line "<type> <base64> [comment]", such as the contents of ~/.ssh/id_ed25519.pub',
    );
  }
  const blob = strictBase64(b64);
  if (!blob) throw new RunbookError(code, `${where}: the ${quote(type)} key is not valid base64`, 'copy the whole line of the .pub file');
  const key = parseKeyBlob(blob, code, where);
  if (key.type !== type) throw new RunbookError(code, `${where}: the line says ${quote(type)} but holds a ${key.type} key`);
  return key;
}

const lineOf = (key: SshKey) => `${key.type} ${key.blob.toString('base64')}`;
const fingerprintOf = (blob: Buffer) => `SHA256:${sha256(blob).toString('base64').replace(/=+$/, '')}`;

/** "type base64" without the comment: how keys are compared. Throws CONFIG_INVALID on a malformed or unsupported key. */
export function normalizeSshPublicKey(line: string): string {
  return lineOf(parseKeyLine(line, 'CONFIG_INVALID', `SSH public key ${quote(String(line))}`));
}

/** The key's fingerprint exactly as `ssh-keygen -l` prints it: "SHA256:" and unpadded base64. */
export function sshFingerprint(line: string): string {
  return fingerprintOf(parseKeyLine(line, 'CONFIG_INVALID', `SSH public key ${quote(String(line))}`).blob);
}

const invalid = (message: string, hint?: string): never => {
  throw new RunbookError('SIGNATURE_INVALID', message, hint);
};

function dearmor(armored: string): Buffer {
  if (typeof armored !== 'string' || !armored.trim()) return invalid('the SSH signature is empty');
  const lines = armored
    .trim()
    .split(/\r?\n/)
    .map((l) => l.trim());
  if (lines[0] !== ARMOR_BEGIN) return invalid(`not an SSH signature: it does not start with "${ARMOR_BEGIN}"`);
  const end = lines.indexOf(ARMOR_END);
  if (end < 0) return invalid(`the SSH signature is cut short: no "${ARMOR_END}" line`);
  if (end !== lines.length - 1) return invalid('the SSH signature has text after its end line');
  const blob = strictBase64(lines.slice(1, end).join(''));
  return blob ?? invalid('the SSH signature is garbled: its body is not base64');
}

/** Does `sigBlob` (an SSH signature of the key's type) sign `data` with `key`? Refuses what it cannot judge. */
function checkSignature(key: SshKey, data: Buffer, sigBlob: Buffer): boolean {
  const r = new Reader(sigBlob, () => invalid('the SSH signature is truncated'));
  const sigType = r.text();
  const expect = (type: string) => {
    if (sigType !== type) invalid(`the signature is of type ${quote(sigType)}, which a ${key.type} key does not make`);
  };
  const ended = <T>(v: T): T => (r.done ? v : invalid('the SSH signature has trailing bytes'));
  const ecdsaDer = (type: string, inner: Buffer) =>
    sshpk.parseSignature(Buffer.concat([sshString(Buffer.from(type)), sshString(inner)]), 'ecdsa', 'ssh').toBuffer('asn1');
  // PROTOCOL.u2f: the key signs its application's hash, flags, counter and the data's hash.
  const skSigned = (flags: number, counter: Buffer) =>
    Buffer.concat([sha256(key.application!), Buffer.from([flags]), counter, sha256(data)]);
  const userPresent = (flags: number) => {
    if (!(flags & SK_USER_PRESENT)) {
      invalid('the hardware key signed without user presence: nobody touched it', 'sign again and touch the key when it blinks');
    }
  };

  switch (key.type) {
    case 'ssh-ed25519': {
      expect(key.type);
      const sig = ended(r.string());
      return sig.length === 64 && verify(null, data, key.key, sig);
    }
    case 'ssh-rsa': {
      if (sigType === 'ssh-rsa') {
        invalid(
          'the RSA signature uses SHA-1 (ssh-rsa), which is refused',
          'sign with a current ssh-keygen, which makes rsa-sha2-512 signatures',
        );
      }
      const hash = { 'rsa-sha2-256': 'sha256', 'rsa-sha2-512': 'sha512' }[sigType];
      if (!hash) return invalid(`the signature is of type ${quote(sigType)}, which an ssh-rsa key does not make`);
      let sig = ended(r.string());
      const size = Math.ceil((key.key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
      if (sig.length > size) return false;
      // OpenSSH pads a short signature to the modulus size before checking it; so does this.
      sig = Buffer.concat([Buffer.alloc(size - sig.length), sig]);
      return verify(hash, data, { key: key.key, padding: constants.RSA_PKCS1_PADDING }, sig);
    }
    case SK_ED25519: {
      expect(key.type);
      const sig = r.string();
      const flags = r.u8();
      const counter = ended(r.take(4));
      const ok = sig.length === 64 && verify(null, skSigned(flags, counter), key.key, sig);
      if (ok) userPresent(flags);
      return ok;
    }
    case SK_ECDSA: {
      if (sigType.startsWith('webauthn-')) invalid(`${quote(sigType)} signatures (made through a web browser) are not supported`);
      expect(key.type);
      const inner = r.string();
      const flags = r.u8();
      const counter = ended(r.take(4));
      const ok = verify('sha256', skSigned(flags, counter), key.key, ecdsaDer('ecdsa-sha2-nistp256', inner));
      if (ok) userPresent(flags);
      return ok;
    }
    default: {
      expect(key.type);
      const inner = ended(r.string());
      return verify(ECDSA_HASH[key.type], data, key.key, ecdsaDer(key.type, inner));
    }
  }
}

/**
 * Verifies an armored SSHSIG signature of `message` for `namespace`, with the public key the
 * signature carries, and returns that key: the caller decides whether it is a key it trusts.
 * Every refusal is a RunbookError SIGNATURE_INVALID saying why.
 */
export function verifySshSignature(
  message: string | Buffer,
  armored: string,
  namespace: string = SSHSIG_NAMESPACE,
): { publicKey: string; fingerprint: string } {
  try {
    const r = new Reader(dearmor(armored), () => invalid('the SSH signature is truncated'));
    if (!r.take(MAGIC.length).equals(MAGIC)) invalid('not an SSH signature: the SSHSIG magic is missing');
    const version = r.u32();
    if (version !== 1) invalid(`SSH signature version ${version} is not supported (only version 1 is)`);
    const keyBlob = r.string();
    const ns = r.string();
    const reserved = r.string();
    const hashAlg = r.text();
    const sigBlob = r.string();
    if (!r.done) invalid('the SSH signature has trailing bytes');
    if (!ns.equals(Buffer.from(namespace))) {
      invalid(
        `the signature was made for namespace ${quote(ns.toString())}, not ${quote(namespace)}`,
        `sign with \`ssh-keygen -Y sign -n ${namespace}\` (as the runbook CLI does)`,
      );
    }
    if (hashAlg !== 'sha256' && hashAlg !== 'sha512') invalid(`the signature's hash algorithm ${quote(hashAlg)} is not supported`);
    const key = parseKeyBlob(keyBlob, 'SIGNATURE_INVALID', "the signature's key");
    const digest = createHash(hashAlg)
      .update(typeof message === 'string' ? Buffer.from(message, 'utf8') : message)
      .digest();
    const signed = Buffer.concat([MAGIC, sshString(ns), sshString(reserved), sshString(Buffer.from(hashAlg)), sshString(digest)]);
    let ok: boolean;
    try {
      ok = checkSignature(key, signed, sigBlob);
    } catch (err) {
      if (err instanceof RunbookError) throw err;
      ok = false;
    }
    if (!ok) {
      invalid(
        `the SSH signature by ${fingerprintOf(keyBlob)} does not match: the statement was changed after it was signed, or the signature is forged`,
        'sign the statement again',
      );
    }
    return { publicKey: lineOf(key), fingerprint: fingerprintOf(keyBlob) };
  } catch (err) {
    if (err instanceof RunbookError) throw err;
    throw new RunbookError('SIGNATURE_INVALID', `the SSH signature is malformed (${(err as Error)?.message ?? String(err)})`);
  }
}

/** One whitespace-delimited token from `i`, where double quotes keep spaces inside it. */
function token(line: string, i: number): { text: string; end: number } | undefined {
  while (i < line.length && /\s/.test(line[i])) i++;
  if (i >= line.length) return undefined;
  let end = i;
  let quoted = false;
  while (end < line.length && (quoted || !/\s/.test(line[end]))) {
    if (line[end] === '"') quoted = !quoted;
    end++;
  }
  if (quoted) return { text: '', end: -1 };
  return { text: line.slice(i, end), end };
}

/** Splits on commas outside double quotes. */
const splitOptions = (text: string) => text.match(/(?:[^,"]|"[^"]*")+/g) ?? [];
const unquote = (s: string) => (s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s);

/** OpenSSH's pattern lists: `*` and `?` wildcards, `!` negates, and a negated match refuses. */
function matchesPatternList(value: string, list: string): boolean {
  let matched = false;
  for (const raw of list.split(',')) {
    const negated = raw.startsWith('!');
    const pattern = negated ? raw.slice(1) : raw;
    const re = new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    );
    if (re.test(value)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** OpenSSH's timestamps: YYYYMMDD[HHMM[SS]], local time unless it ends in Z. */
function parseTimestamp(text: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z?)$/i.exec(text);
  if (!m) return undefined;
  const want = m.slice(1, 7).map((v) => Number(v ?? 0));
  const [y, mo, d, h, mi, s] = want;
  const utc = m[7] !== '';
  const date = utc ? new Date(Date.UTC(y, mo - 1, d, h, mi, s)) : new Date(y, mo - 1, d, h, mi, s);
  const got = utc
    ? [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()]
    : [date.getFullYear(), date.getMonth() + 1, date.getDate(), date.getHours(), date.getMinutes(), date.getSeconds()];
  // A 31st of February or a 25th hour rolls over: refuse it rather than guess.
  return got.every((v, i) => v === want[i]) ? date : undefined;
}

/**
 * The entries of an allowed-signers file (ssh-keygen(1) ALLOWED SIGNERS, as git uses it) that count
 * for `namespace` at `now`: "principals [options] keytype base64 [comment]". An entry whose
 * `namespaces=` does not list ours, or outside its `valid-after`/`valid-before`, does not count;
 * `cert-authority` and principal patterns are refused. Errors name the file and line.
 */
export function parseAllowedSigners(
  text: string,
  file: string,
  namespace: string = SSHSIG_NAMESPACE,
  now: Date = new Date(),
): { principals: string[]; publicKey: string }[] {
  const entries: { principals: string[]; publicKey: string }[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    const where = `${file}:${index + 1}`;
    const bad = (why: string, hint?: string): never => {
      throw new RunbookError('CONFIG_INVALID', `${where}: ${why}`, hint);
    };
    if (!line.trim() || line.trim().startsWith('#')) return;
    const first = token(line, 0)!;
    if (first.end < 0) bad('a double quote is not closed');
    const principals = unquote(first.text).split(',');
    for (const p of principals) {
      if (!p) bad('an empty principal in the comma-separated list');
      if (/[*?]/.test(p) || p.startsWith('!')) bad(`principal patterns (${quote(p)}) are not supported`, 'list each name');
    }
    let next = token(line, first.end);
    if (!next) return bad('no public key after the principals', 'write "name[,name...] [options] <type> <base64> [comment]"');
    if (next.end < 0) bad('a double quote is not closed');
    let valid = true;
    // Options come before the key; a key type never holds '=', ',' or '"'.
    if (/[=,"]/.test(next.text) || next.text.toLowerCase() === 'cert-authority' || !/^(ssh|ecdsa|sk|rsa)-/.test(next.text)) {
      for (const opt of splitOptions(next.text)) {
        const eq = opt.indexOf('=');
        const name = (eq < 0 ? opt : opt.slice(0, eq)).toLowerCase();
        const value = eq < 0 ? undefined : unquote(opt.slice(eq + 1));
        if (name === 'cert-authority') {
          bad('cert-authority entries are not supported: SSH certificates are not accepted', "list each person's own public key instead");
        } else if (name === 'namespaces' && value) {
          if (!matchesPatternList(namespace, value)) valid = false;
        } else if ((name === 'valid-after' || name === 'valid-before') && value) {
          const at = parseTimestamp(value) ?? bad(`${name}=${quote(value)} is not a time of the form YYYYMMDD[HHMM[SS]][Z]`);
          if (name === 'valid-after' ? now < at : now > at) valid = false;
        } else {
          bad(
            `unknown or incomplete option ${quote(opt)}`,
            'the options known are namespaces="...", valid-after="...", valid-before="..."',
          );
        }
      }
      next = token(line, next.end);
      if (!next) return bad('no public key after the options');
    }
    const rest = line.slice(next.end - next.text.length);
    const key = parseKeyLine(rest, 'CONFIG_INVALID', where);
    if (valid) entries.push({ principals, publicKey: lineOf(key) });
  });
  return entries;
}

export interface SignOptions {
  /** Bounds the wait (a hardware key waits for a touch). Default 60 s. */
  timeoutMs?: number;
}

/**
 * Signs `message` with `ssh-keygen -Y sign`: `keyFile` is a private key without passphrase, or a
 * public key (or private key) whose private half ssh-agent holds. ssh-keygen runs without a
 * terminal and with stdin closed, so a key that needs a passphrase fails at once instead of asking.
 */
export async function signWithSshKey(
  message: string,
  keyFile: string,
  namespace: string = SSHSIG_NAMESPACE,
  opts: SignOptions = {},
): Promise<string> {
  if (!existsSync(keyFile)) {
    throw new RunbookError(
      'BAD_INPUT',
      `no SSH key at ${keyFile}`,
      'give your private key file (such as ~/.ssh/id_ed25519), or the .pub file of a key that ssh-agent holds',
    );
  }
  const agent = process.env.SSH_AUTH_SOCK;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-sign-'));
  try {
    // The statement goes in a file, not on stdin: asked for a passphrase, ssh-keygen would read stdin.
    const statement = path.join(dir, 'statement');
    writeFileSync(statement, message);
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const run = await runKeygen(['-Y', 'sign', '-n', namespace, '-f', keyFile, statement], agent, timeoutMs);
    const why = run.stderr
      .split('\n')
      .filter((l) => l.trim() && !/^(Signing file|Write signature to) /.test(l))
      .slice(-3)
      .join(' | ');
    if (run.timedOut) {
      throw new RunbookError(
        'TOOL_FAILED',
        `ssh-keygen did not sign with ${keyFile} within ${timeoutMs / 1000} s`,
        'a hardware key waits for a touch: touch it when it blinks',
      );
    }
    if (run.exitCode !== 0) {
      if (/passphrase/i.test(why)) {
        throw new RunbookError(
          'BAD_INPUT',
          `the SSH key ${keyFile} is protected by a passphrase and ssh-agent does not hold it`,
          `add it to ssh-agent (\`ssh-add ${keyFile}\`) and try again`,
        );
      }
      if (/No private key found/i.test(why)) {
        throw new RunbookError(
          'BAD_INPUT',
          `${keyFile} is a public key, and ${agent ? 'ssh-agent does not hold its private half' : 'no ssh-agent is reachable (SSH_AUTH_SOCK is not set)'}`,
          'add the private key to ssh-agent (`ssh-add <private key file>`), or give the private key file',
        );
      }
      if (/Couldn't load public key/i.test(why)) {
        throw new RunbookError(
          'BAD_INPUT',
          `${keyFile} is not an SSH key`,
          'give your private key file, or the .pub file of a key that ssh-agent holds',
        );
      }
      throw new RunbookError(
        'TOOL_FAILED',
        `ssh-keygen could not sign with ${keyFile} (${run.exitCode ?? run.signal})${why ? `: ${why}` : ''}`,
      );
    }
    const armored = readFileSync(`${statement}.sig`, 'utf8');
    try {
      verifySshSignature(message, armored, namespace);
    } catch (err) {
      const reason = err instanceof RunbookError ? err.message : String(err);
      throw new RunbookError('BAD_INPUT', `the signature made with ${keyFile} would not count: ${reason}`, (err as RunbookError).hint);
    }
    return armored;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface KeygenRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  timedOut: boolean;
}

/**
 * ssh-keygen in a session of its own (detached: no controlling terminal to prompt on) with stdin
 * closed and a timeout. runTool does not do the former, hence this.
 */
function runKeygen(args: string[], agent: string | undefined, timeoutMs: number): Promise<KeygenRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh-keygen', args, {
      env: childEnv(agent ? { SSH_AUTH_SOCK: agent } : {}),
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
    let timedOut = false;
    const timer = setTimeout(() => ((timedOut = true), child.kill('SIGKILL')), timeoutMs);
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new RunbookError(
          'TOOL_FAILED',
          `ssh-keygen could not run: ${err.message}`,
          err.code === 'ENOENT' ? 'install the OpenSSH client (Debian: openssh-client)' : undefined,
        ),
      );
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({ exitCode, signal, stderr, timedOut });
    });
  });
}
