// People for tests: real SSH keys made by ssh-keygen, the config's `people:` section for them, and
// keys that ssh-keygen cannot make here (a hardware key without the hardware, a SHA-1 RSA signer),
// built with node:crypto to the letter of PROTOCOL.sshsig and PROTOCOL.u2f.
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

export interface TestPerson {
  /** The private key file (no passphrase); its public half is `${keyFile}.pub`. */
  keyFile: string;
  /** The .pub line: "type base64 name". */
  publicKey: string;
}

export type KeyType = 'ed25519' | 'ecdsa' | 'rsa';

/** A key pair per name, `<dir>/<name>` and `<dir>/<name>.pub`, commented with the name. */
export function makePeople<N extends string>(dir: string, names: readonly N[], type: KeyType = 'ed25519'): Record<N, TestPerson> {
  const people = {} as Record<N, TestPerson>;
  for (const name of names) {
    const keyFile = path.join(dir, name);
    rmSync(keyFile, { force: true });
    rmSync(`${keyFile}.pub`, { force: true });
    execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', name, '-f', keyFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    people[name] = { keyFile, publicKey: readFileSync(`${keyFile}.pub`, 'utf8').trim() };
  }
  return people;
}

/** The config's `people:` section for them. */
export function peopleYaml(people: Record<string, { publicKey: string }>): string {
  const lines = ['people:'];
  for (const [name, { publicKey }] of Object.entries(people)) lines.push(`  ${name}:`, `    keys: [${JSON.stringify(publicKey)}]`);
  return `${lines.join('\n')}\n`;
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
export const sshString = (b: Buffer | string) => {
  const bytes = typeof b === 'string' ? Buffer.from(b) : b;
  return Buffer.concat([u32(bytes.length), bytes]);
};
/** An unsigned big-endian integer as an SSH mpint: no needless zeros, a zero byte before a high bit. */
const mpint = (b: Buffer) => {
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  const v = b.subarray(i);
  return sshString(v.length && v[0] & 0x80 ? Buffer.concat([Buffer.alloc(1), v]) : v);
};
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

/** What an SSHSIG signature signs. */
export function sshsigSignedData(message: string, namespace: string, hashAlg = 'sha512'): Buffer {
  const digest = createHash(hashAlg).update(message).digest();
  return Buffer.concat([Buffer.from('SSHSIG'), sshString(namespace), sshString(''), sshString(hashAlg), sshString(digest)]);
}

export interface SshsigParts {
  keyBlob: Buffer;
  sigBlob: Buffer;
  namespace: string;
  hashAlg?: string;
  magic?: string;
  version?: number;
}

/** An armored SSHSIG from its parts: any of them can be set wrong on purpose. */
export function armorSshsig(p: SshsigParts): string {
  const blob = Buffer.concat([
    Buffer.from(p.magic ?? 'SSHSIG'),
    u32(p.version ?? 1),
    sshString(p.keyBlob),
    sshString(p.namespace),
    sshString(''),
    sshString(p.hashAlg ?? 'sha512'),
    sshString(p.sigBlob),
  ]);
  return armorBlob(blob);
}

export function armorBlob(blob: Buffer): string {
  const body = blob
    .toString('base64')
    .match(/.{1,70}/g)!
    .join('\n');
  return `-----BEGIN SSH SIGNATURE-----\n${body}\n-----END SSH SIGNATURE-----\n`;
}

/** The decoded blob of an armored signature. */
export const unarmor = (armored: string) =>
  Buffer.from(
    armored
      .split('\n')
      .filter((l) => l && !l.startsWith('-----'))
      .join(''),
    'base64',
  );

export interface SignOpts {
  namespace?: string;
  /** Hardware keys: PROTOCOL.u2f flags (0x01 = a touch) and counter. */
  flags?: number;
  counter?: number;
  /** RSA: the signature algorithm. */
  rsaSigType?: 'ssh-rsa' | 'rsa-sha2-256' | 'rsa-sha2-512';
}

export interface SoftwareKey {
  /** The public key line, as a .pub file holds it. */
  publicKey: string;
  keyBlob: Buffer;
  sign(message: string, opts?: SignOpts): string;
}

/**
 * A key signing as a FIDO hardware key does (sk-ssh-ed25519, sk-ecdsa-sha2-nistp256), or as an RSA
 * key with a chosen signature algorithm (ssh-rsa is SHA-1), without hardware or ssh-keygen.
 */
export function softwareKey(kind: 'sk-ed25519' | 'sk-ecdsa' | 'rsa', application = 'ssh:'): SoftwareKey {
  if (kind === 'rsa') {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = publicKey.export({ format: 'jwk' });
    const keyBlob = Buffer.concat([sshString('ssh-rsa'), mpint(Buffer.from(jwk.e!, 'base64url')), mpint(Buffer.from(jwk.n!, 'base64url'))]);
    return {
      keyBlob,
      publicKey: `ssh-rsa ${keyBlob.toString('base64')}`,
      sign(message, { namespace = 'redis-runbooks', rsaSigType = 'rsa-sha2-512' } = {}) {
        const hash = { 'ssh-rsa': 'sha1', 'rsa-sha2-256': 'sha256', 'rsa-sha2-512': 'sha512' }[rsaSigType];
        const sig = sign(hash, sshsigSignedData(message, namespace), privateKey);
        return armorSshsig({ keyBlob, namespace, sigBlob: Buffer.concat([sshString(rsaSigType), sshString(sig)]) });
      },
    };
  }
  const type = kind === 'sk-ed25519' ? 'sk-ssh-ed25519@openssh.com' : 'sk-ecdsa-sha2-nistp256@openssh.com';
  const { privateKey, publicKey } =
    kind === 'sk-ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x!, 'base64url');
  const keyBlob =
    kind === 'sk-ed25519'
      ? Buffer.concat([sshString(type), sshString(x), sshString(application)])
      : Buffer.concat([
          sshString(type),
          sshString('nistp256'),
          sshString(Buffer.concat([Buffer.from([4]), x, Buffer.from(jwk.y!, 'base64url')])),
          sshString(application),
        ]);
  return {
    keyBlob,
    publicKey: `${type} ${keyBlob.toString('base64')}`,
    sign(message, { namespace = 'redis-runbooks', flags = 0x01, counter = 1 } = {}) {
      const signed = Buffer.concat([
        sha256(Buffer.from(application)),
        Buffer.from([flags]),
        u32(counter),
        sha256(sshsigSignedData(message, namespace)),
      ]);
      let sig: Buffer;
      if (kind === 'sk-ed25519') {
        sig = sshString(sign(null, signed, privateKey));
      } else {
        const rs = sign('sha256', signed, { key: privateKey, dsaEncoding: 'ieee-p1363' });
        sig = sshString(Buffer.concat([mpint(rs.subarray(0, 32)), mpint(rs.subarray(32))]));
      }
      const sigBlob = Buffer.concat([sshString(type), sig, Buffer.from([flags]), u32(counter)]);
      return armorSshsig({ keyBlob, namespace, sigBlob });
    },
  };
}
