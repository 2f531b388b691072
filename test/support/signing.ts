// The worker's signing key for a test's config: a real Ed25519 key in the test's folder, and the YAML
// that names it (signing.key by file: reference, its public half under signing.trust).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateSigningKey } from '../../domain/trust/signing';

export interface TestSigningKey {
  keyFile: string;
  publicKey: string;
  keyId: string;
  /** A top-level `signing:` section. */
  yaml: string;
}

export function signingKey(dir: string, name = 'signing'): TestSigningKey {
  const key = generateSigningKey();
  const keyFile = path.join(dir, `${name}.pem`);
  writeFileSync(keyFile, key.privatePem, { mode: 0o600 });
  return {
    keyFile,
    publicKey: key.publicKey,
    keyId: key.keyId,
    yaml: `signing: { key: "file:${keyFile}", trust: ["${key.publicKey}"] }\n`,
  };
}
