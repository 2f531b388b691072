// The keys for encryption at rest. A backup is encrypted to recipients (public keys): the target's
// (a key's, or a recipient named in the config) and every break-glass one; a worker that only backs up
// to recipients needs no secret at all. Identities (secret keys) are resolved from their references
// only when a backup is read, and any one matching a recipient of the backup will do.
import type { Config } from '../../common/config';
import { RunbookError } from '../../common/errors';
import type { Encryption } from '../../common/types';
import { resolveSecret } from '../secrets';
import { canonicalRecipient, fingerprint, parseIdentity, type AgeIdentity } from './age';

/** The recipients' fingerprints of a backup; older manifests name only the target's key. */
export const recipientFingerprints = (e: Encryption): string[] => e.recipients ?? [e.fingerprint];

export function keyring(config: Config) {
  const refs = config.encryption?.keys ?? {};
  const named = config.encryption?.recipients ?? {};
  const breakGlass = config.encryption?.breakGlass ?? [];
  const identity = (keyId: string): AgeIdentity => {
    const ref = refs[keyId];
    if (!ref) throw new RunbookError('SECRET_UNRESOLVED', `encryption key "${keyId}" is not configured`, 'add it under encryption.keys');
    const text = resolveSecret(ref, `encryption key ${keyId}`);
    try {
      return parseIdentity(text);
    } catch (err) {
      // parseIdentity's errors never show the key; anything else might, so it is not passed on.
      const e = err instanceof RunbookError ? err : new RunbookError('SECRET_UNRESOLVED', 'not an age identity');
      throw new RunbookError('SECRET_UNRESOLVED', `encryption key ${keyId} (${ref}): ${e.message}`, e.hint);
    }
  };
  /** The public key a target's `encrypt` names: a key's (its identity resolved), or a configured recipient. */
  const recipientOf = (name: string): string => {
    if (refs[name]) return identity(name).recipient;
    const r = named[name];
    if (r) return canonicalRecipient(r, `encryption.recipients.${name}`);
    throw new RunbookError(
      'SECRET_UNRESOLVED',
      `"${name}" is neither an encryption key nor a recipient`,
      'add it under encryption.keys (an identity) or encryption.recipients (an age1... public key)',
    );
  };

  /** The configured identities that can read a backup: the one it names first, then any other. */
  const matching = (e: Encryption): { found: AgeIdentity[]; tried: string[]; failed: RunbookError[] } => {
    const wanted = new Set(recipientFingerprints(e));
    const found: AgeIdentity[] = [];
    const tried: string[] = [];
    const failed: RunbookError[] = [];
    for (const name of [e.keyId, ...Object.keys(refs).filter((n) => n !== e.keyId)]) {
      if (!refs[name]) continue;
      let id: AgeIdentity;
      try {
        id = identity(name);
      } catch (err) {
        if (!(err instanceof RunbookError)) throw err;
        failed.push(err);
        continue;
      }
      const fp = fingerprint(id.recipient);
      if (wanted.has(fp)) {
        found.push(id);
        break; // one is enough: other keys' references are not resolved for nothing
      }
      tried.push(`${name} (${fp})`);
    }
    return { found, tried, failed };
  };

  return {
    /** For a new backup: fails, before anything is stored, when a key or recipient is missing or malformed. */
    encryptionFor(name: string): { recipients: string[]; encryption: Encryption } {
      const main = recipientOf(name);
      const extra = breakGlass.map((r, i) => canonicalRecipient(r, `encryption.breakGlass[${i}]`));
      const recipients = [...new Set([main, ...extra])];
      return {
        recipients,
        encryption: { format: 'age-x25519', keyId: name, fingerprint: fingerprint(main), recipients: recipients.map(fingerprint) },
      };
    },
    /** Whether this worker holds an identity for the backup (a backup-only worker may hold none). */
    canDecrypt(e: Encryption): boolean {
      return matching(e).found.length > 0;
    },
    /** For reading a backup: a configured identity whose recipient the backup is encrypted to. */
    identitiesFor(e: Encryption): AgeIdentity[] {
      const { found, tried, failed } = matching(e);
      if (found.length) return found;
      const fps = recipientFingerprints(e).join(', ');
      // The key the backup names is configured but failed to resolve: that is the problem to fix.
      const own = failed.find((f) => f.message.startsWith(`encryption key ${e.keyId}`));
      if (own && tried.length === 0) throw own;
      const ownTried = tried.find((t) => t.startsWith(`${e.keyId} (`));
      const configured = [...tried, ...failed.map((f) => f.message)].join('; ');
      const message = ownTried
        ? `key "${e.keyId}" is configured, but it is not the key this backup needs (fingerprint ${e.fingerprint}, configured ${ownTried.slice(e.keyId.length + 2, -1)})` +
          (recipientFingerprints(e).length > 1 ? `, nor is any other configured key one of its recipients (${fps})` : '')
        : `this backup is encrypted to the recipient(s) ${fps} ("${e.keyId}" and any break-glass ones) and no configured key is one of them` +
          ` (${configured ? `configured: ${configured}` : 'no key is configured under encryption.keys'})`;
      throw new RunbookError(
        'SECRET_UNRESOLVED',
        message,
        'configure under encryption.keys the identity of one of these recipients (keep retired keys while their backups exist); ' +
          'a key\'s fingerprint: printf %s "$(age-keygen -y key.txt)" | sha256sum | cut -c1-16',
      );
    },
  };
}
export type Keyring = ReturnType<typeof keyring>;
