// Who is who: people and their keys from the config and an allowed-signers file, as the worker reads them.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../common/config';
import { knownPeople, trustedKeys, verifyStatement } from '../../domain/trust/people';
import { signWithSshKey, sshFingerprint } from '../../domain/trust/sshsig';
import { makePeople, peopleYaml } from '../support/people';

const dir = mkdtempSync(path.join(os.tmpdir(), 'rr-people-'));
const people = makePeople(dir, ['alice', 'bob', 'carol']);
const base = `
storage: { disk: { type: local, path: ${dir} } }
targets:
  main: { url: "redis://127.0.0.1:6379", destinations: [disk], restore: { approvers: [alice, carol] } }
`;

describe('trusted keys', () => {
  it('refuses one key listed for two people: it would let one person be two', () => {
    const config = parseConfig(
      `${base}people:\n  alice: { keys: ["${people.alice.publicKey}"] }\n  carol: { keys: ["${people.alice.publicKey}"] }\n`,
    );
    expect(() => trustedKeys(config)).toThrow(/is listed for both alice and carol/);
  });

  it('adds the principals of an allowed-signers file, and a statement signed by carol counts for carol', async () => {
    const file = path.join(dir, 'allowed_signers');
    writeFileSync(file, `# ops team\ncarol,carol@example.com ${people.carol.publicKey}\n`);
    const config = parseConfig(`${base}${peopleYaml({ alice: people.alice })}allowedSigners: file:${file}\n`);
    expect([...knownPeople(config)].sort()).toEqual(['alice', 'carol', 'carol@example.com']);
    const text = `redis-runbooks restore statement v1\n${JSON.stringify({
      expires: '2099-01-01T00:00:00.000Z',
      kind: 'request',
      namespace: 'default',
      plan: { allowUnsigned: false, backupId: 'main-x', rdbSha256: 'a', reason: 'r', strategy: 'logical', target: 'main' },
      runId: 'r1',
      signedAt: '2026-01-01T00:00:00.000Z',
      workflowId: 'restore/main',
    })}\n`;
    const signed = { statement: text, signature: await signWithSshKey(text, people.carol.keyFile) };
    const { signer } = verifyStatement(config, signed);
    expect(signer.fingerprint).toBe(sshFingerprint(people.carol.publicKey));
    expect(signer).toMatchObject({ person: 'carol', aliases: ['carol', 'carol@example.com'] });
    // Bob is nobody here: his signature counts for nobody.
    const bobs = { statement: text, signature: await signWithSshKey(text, people.bob.keyFile) };
    expect(() => verifyStatement(config, bobs)).toThrow(/belongs to nobody in the worker's config/);
  });

  it('refuses an approver who is nobody in the config', () => {
    expect(() => parseConfig(`${base}${peopleYaml({ alice: people.alice })}`)).toThrow(
      /approvers\.1: expected a person defined under "people"/,
    );
  });
});
