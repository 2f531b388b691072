// The worker's own signature on what it writes to storage (manifests, drill reports, audit records):
// Ed25519 over the canonical JSON of the object without its `signature`. Storage is not trusted: a
// file counts only when a key listed in `signing.trust` signed it.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import type { Config } from '../../common/config';
import { RunbookError } from '../../common/errors';
import { resolveSecret } from '../secrets';
import { canonicalJson } from '../../common/canonical-json';
import type { Signature } from '../../common/signature';

export type { Signature };

export type Signed<T> = T & { signature?: Signature };

export { canonicalJson };

const DOMAIN = 'redis-runbooks artifact v1\n';
const bytesToSign = (obj: object) => {
  const { signature: _drop, ...rest } = obj as { signature?: unknown };
  return Buffer.from(DOMAIN + canonicalJson(rest));
};

const rawOf = (key: KeyObject) => Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url');
export const publicKeyText = (key: KeyObject) => `ed25519:${rawOf(key).toString('base64')}`;
export const keyIdOf = (publicText: string) =>
  createHash('sha256')
    .update(Buffer.from(publicText.slice('ed25519:'.length), 'base64'))
    .digest('hex')
    .slice(0, 16);

function publicKeyFrom(text: string): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(text.slice(8), 'base64').toString('base64url') },
    format: 'jwk',
  });
}

export interface Signer {
  keyId: string;
  publicKey: string;
  sign<T extends object>(obj: T): Signed<T>;
}

/** A new signing key: the private half as PKCS#8 PEM (to store as a secret), the public half for `signing.trust`. */
export function generateSigningKey(): { privatePem: string; publicKey: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const text = publicKeyText(publicKey);
  return { privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), publicKey: text, keyId: keyIdOf(text) };
}

/** The worker's signer, from `signing.key`. The error never quotes the key. */
export function signerFor(config: Config): Signer {
  const ref = config.signing?.key;
  if (!ref) {
    throw new RunbookError(
      'CONFIG_INVALID',
      'signing.key is not set: the worker signs every manifest, drill report and audit record, and cannot without its key',
      'make one with `runbook keys signing --out <file>` and set signing.key: file:<file> and its public key under signing.trust',
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(resolveSecret(ref, 'signing.key'));
  } catch (err) {
    if (err instanceof RunbookError) throw err;
    throw new RunbookError(
      'SECRET_UNRESOLVED',
      `signing.key (${ref}) does not hold a private key in PEM form`,
      'make one with `runbook keys signing`',
    );
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new RunbookError(
      'SECRET_UNRESOLVED',
      `signing.key (${ref}) is a ${key.asymmetricKeyType} key, not Ed25519`,
      'make one with `runbook keys signing`',
    );
  }
  const publicKey = publicKeyText(createPublicKey(key));
  if (!config.signing!.trust.includes(publicKey)) {
    throw new RunbookError(
      'CONFIG_INVALID',
      `signing.key's public key ${publicKey} is not in signing.trust: nothing this worker signs would be trusted`,
      `add "${publicKey}" to signing.trust`,
    );
  }
  const keyId = keyIdOf(publicKey);
  return {
    keyId,
    publicKey,
    sign: (obj) => {
      const { signature: _old, ...rest } = obj as Signed<typeof obj>;
      return { ...rest, signature: { alg: 'ed25519', keyId, value: sign(null, bytesToSign(rest), key).toString('base64') } } as Signed<
        typeof obj
      >;
    },
  };
}

export type Verdict = { ok: true; keyId: string } | { ok: false; state: 'unsigned' | 'forged'; reason: string };

/** Whether a stored object carries a signature by a trusted key over exactly its content. */
export function verifierFor(config: Pick<Config, 'signing'>) {
  const trusted = new Map((config.signing?.trust ?? []).map((t) => [keyIdOf(t), publicKeyFrom(t)]));
  return (obj: object): Verdict => {
    const sig = (obj as Signed<object>).signature;
    if (!sig) return { ok: false, state: 'unsigned', reason: 'it carries no signature' };
    const key = trusted.get(sig.keyId);
    if (sig.alg !== 'ed25519' || !key) {
      return { ok: false, state: 'forged', reason: `it is signed by key ${String(sig.keyId)}, which is not in signing.trust` };
    }
    let good: boolean;
    try {
      good = verify(null, bytesToSign(obj), key, Buffer.from(sig.value, 'base64'));
    } catch {
      good = false; // a value that is not even a signature
    }
    return good
      ? { ok: true, keyId: sig.keyId }
      : { ok: false, state: 'forged', reason: `its signature by key ${sig.keyId} does not match its content` };
  };
}
export type Verifier = ReturnType<typeof verifierFor>;
