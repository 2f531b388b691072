// Who is who, by key: the people of the config (and of its allowed-signers file) and their SSH public
// keys. A signed statement counts for the person whose key signed it, whatever name anyone typed.
import { readFileSync } from 'node:fs';
import { parseStatement, type SignedStatement, type Signer, type Statement } from '../../common/approval-statement';
import type { Config } from '../../common/config';
import { RunbookError } from '../../common/errors';
import { normalizeSshPublicKey, parseAllowedSigners, sshFingerprint, verifySshSignature } from './sshsig';

export interface Person {
  person: string;
  /** Every name of the person: in an allowed-signers file, the principals of the key's line. */
  aliases: string[];
  publicKey: string;
  fingerprint: string;
}

/** Every trusted key, by fingerprint. A key listed for two people is refused: it would let one person be two. */
export function trustedKeys(config: Config): Map<string, Person> {
  const byKey = new Map<string, Person>();
  const add = (person: string, aliases: string[], line: string, where: string) => {
    const publicKey = normalizeSshPublicKey(line);
    const fingerprint = sshFingerprint(publicKey);
    const seen = byKey.get(fingerprint);
    if (seen && seen.person !== person) {
      throw new RunbookError(
        'CONFIG_INVALID',
        `the key ${fingerprint} is listed for both ${seen.person} and ${person} (${where}): one key is one person`,
        'give each person their own key',
      );
    }
    byKey.set(fingerprint, { person, aliases, publicKey, fingerprint });
  };
  for (const [person, { keys }] of Object.entries(config.people)) for (const k of keys) add(person, [person], k, 'people');
  if (config.allowedSigners) {
    const file = config.allowedSigners.slice('file:'.length);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new RunbookError(
        'CONFIG_INVALID',
        `allowedSigners: cannot read ${file} (${(err as NodeJS.ErrnoException).code})`,
        'check the path and that the worker may read it',
      );
    }
    // The principals of one line are names of one person: the first is the name shown, any of them may be an approver.
    for (const entry of parseAllowedSigners(text, file)) add(entry.principals[0]!, entry.principals, entry.publicKey, file);
  }
  return byKey;
}

/** The names of everyone with a key: what targets' approvers must be drawn from. */
export const knownPeople = (config: Config): Set<string> => new Set([...trustedKeys(config).values()].flatMap((p) => p.aliases));

/**
 * A signed statement, checked: its text is a statement, its signature is good, and the key that made
 * it belongs to a known person. Bindings (run, plan, expiry) are the caller's to check.
 */
export function verifyStatement(config: Config, signed: SignedStatement): { statement: Statement; signer: Signer } {
  const statement = parseStatement(signed?.statement);
  if (typeof statement === 'string') throw new RunbookError('SIGNATURE_INVALID', `not a valid restore statement: ${statement}`);
  if (typeof signed.signature !== 'string' || !signed.signature.trim()) {
    throw new RunbookError(
      'SIGNATURE_INVALID',
      `the ${statement.kind} statement is not signed`,
      'sign it with `runbook restore`/`approve --key`',
    );
  }
  const { fingerprint } = verifySshSignature(signed.statement, signed.signature);
  const person = trustedKeys(config).get(fingerprint);
  if (!person) {
    throw new RunbookError(
      'SIGNATURE_INVALID',
      `the ${statement.kind} statement is signed by key ${fingerprint}, which belongs to nobody in the worker's config`,
      "add the person's public key under people (or the allowed-signers file), or sign with a key that is there",
    );
  }
  return {
    statement,
    signer: { person: person.person, fingerprint, ...(person.aliases.length > 1 ? { aliases: person.aliases } : {}) },
  };
}
