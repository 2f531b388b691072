// The keys for encryption at rest, resolved from their references only when a backup needs them.
import type { Config } from '../../common/config';
import { RunbookError } from '../../common/errors';
import type { Encryption } from '../../common/types';
import { resolveSecret } from '../secrets';
import { fingerprint, parseIdentity, type AgeIdentity } from './age';

export function keyring(config: Config) {
  const refs = config.encryption?.keys ?? {};
  const identity = (keyId: string): AgeIdentity => {
    const ref = refs[keyId];
    if (!ref) throw new RunbookError('SECRET_UNRESOLVED', `encryption key "${keyId}" is not configured`, 'add it under encryption.keys');
    try {
      return parseIdentity(resolveSecret(ref, `encryption key ${keyId}`));
    } catch (err) {
      if (err instanceof RunbookError && err.message.startsWith('encryption key')) throw err;
      throw new RunbookError(
        'SECRET_UNRESOLVED',
        `encryption key ${keyId} (${ref}): ${(err as Error).message}`,
        'it must hold an age identity, as age-keygen writes',
      );
    }
  };
  return {
    /** For a new backup: fails, before anything is stored, when the key is missing, empty or malformed. */
    encryptionFor(keyId: string): { recipient: string; encryption: Encryption } {
      const { recipient } = identity(keyId);
      return { recipient, encryption: { format: 'age-x25519', keyId, fingerprint: fingerprint(recipient) } };
    },
    /** For reading a backup: the key its manifest names, checked against the recorded fingerprint. */
    identitiesFor(e: Encryption): AgeIdentity[] {
      if (!refs[e.keyId]) {
        throw new RunbookError(
          'SECRET_UNRESOLVED',
          `this backup is encrypted with key id "${e.keyId}" (fingerprint ${e.fingerprint}), which is not configured`,
          `add the key ${e.keyId} under encryption.keys (keep retired keys there while their backups exist)`,
        );
      }
      const id = identity(e.keyId);
      if (fingerprint(id.recipient) !== e.fingerprint) {
        throw new RunbookError(
          'SECRET_UNRESOLVED',
          `key "${e.keyId}" is configured, but it is not the key this backup needs (fingerprint ${e.fingerprint}, configured ${fingerprint(id.recipient)})`,
          'configure the key the backup was made with',
        );
      }
      return [id];
    },
  };
}
export type Keyring = ReturnType<typeof keyring>;
