// People's SSH signatures against the real ssh-keygen and ssh-agent: what one signs the other
// verifies, both ways, and every kind of bad signature is refused with SIGNATURE_INVALID.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../common/config';
import { RunbookError } from '../../common/errors';
import {
  normalizeSshPublicKey,
  parseAllowedSigners,
  signWithSshKey,
  sshFingerprint,
  SSHSIG_NAMESPACE,
  verifySshSignature,
} from '../../domain/trust/sshsig';
import { armorBlob, armorSshsig, makePeople, peopleYaml, softwareKey, sshString, unarmor, type TestPerson } from '../support/people';

const MESSAGE = 'approve restore of main from 2024-05-01T00:00:00Z\nrun: 42\n';

let dir: string;
let people: Record<'alice' | 'bob' | 'carol' | 'dave' | 'erin', TestPerson>;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'sshsig-'));
  people = {
    ...makePeople(dir, ['alice', 'bob']),
    ...makePeople(dir, ['carol'], 'ecdsa'),
    ...makePeople(dir, ['dave'], 'rsa'),
    erin: { keyFile: path.join(dir, 'erin'), publicKey: '' },
  };
  execFileSync('ssh-keygen', ['-q', '-t', 'ecdsa', '-b', '521', '-N', '', '-C', 'erin', '-f', people.erin.keyFile]);
  people.erin.publicKey = readFileSync(`${people.erin.keyFile}.pub`, 'utf8').trim();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.unstubAllEnvs());

/** The SIGNATURE_INVALID (or other RunbookError) that `fn` throws. */
function refusal(fn: () => unknown): RunbookError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RunbookError);
    return err as RunbookError;
  }
  throw new Error('accepted what it should have refused');
}

async function asyncRefusal(p: Promise<unknown>): Promise<RunbookError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RunbookError);
  return err as RunbookError;
}

/** `ssh-keygen -Y verify` of `armored` over `message`, for a signer listed with `publicKey`: its exit status. */
function keygenVerifies(message: string, armored: string, publicKey: string, namespace = SSHSIG_NAMESPACE, options = ''): boolean {
  const sub = mkdtempSync(path.join(dir, 'verify-'));
  writeFileSync(path.join(sub, 'allowed'), `someone ${options ? `${options} ` : ''}${publicKey}\n`);
  writeFileSync(path.join(sub, 'sig'), armored);
  const run = spawnSync(
    'ssh-keygen',
    ['-Y', 'verify', '-f', path.join(sub, 'allowed'), '-I', 'someone', '-n', namespace, '-s', path.join(sub, 'sig')],
    { input: message },
  );
  return run.status === 0;
}

const keygenFingerprint = (pubFile: string) => execFileSync('ssh-keygen', ['-lf', pubFile]).toString().split(' ')[1];

describe('signing with ssh-keygen and verifying in-process', () => {
  it.each(['alice', 'carol', 'dave'] as const)(
    "%s's key (ed25519, ecdsa-p256, rsa) signs a statement that verifies here and with ssh-keygen",
    async (name) => {
      const person = people[name];
      const armored = await signWithSshKey(MESSAGE, person.keyFile);
      expect(armored).toMatch(/^-----BEGIN SSH SIGNATURE-----\n/);
      const { publicKey, fingerprint } = verifySshSignature(MESSAGE, armored);
      expect(publicKey).toBe(person.publicKey.split(' ').slice(0, 2).join(' '));
      expect(fingerprint).toBe(keygenFingerprint(`${person.keyFile}.pub`));
      expect(keygenVerifies(MESSAGE, armored, person.publicKey)).toBe(true);
      expect(verifySshSignature(Buffer.from(MESSAGE), armored).fingerprint).toBe(fingerprint);
    },
  );

  it('verifies what ssh-keygen signed by itself, for every key type and both hash algorithms', () => {
    const file = path.join(dir, 'statement.txt');
    writeFileSync(file, MESSAGE);
    for (const name of ['alice', 'carol', 'dave', 'erin'] as const) {
      for (const hashalg of ['sha256', 'sha512']) {
        rmSync(`${file}.sig`, { force: true });
        execFileSync('ssh-keygen', ['-Y', 'sign', '-n', SSHSIG_NAMESPACE, '-f', people[name].keyFile, '-O', `hashalg=${hashalg}`, file], {
          stdio: 'ignore',
        });
        const armored = readFileSync(`${file}.sig`, 'utf8');
        expect(verifySshSignature(MESSAGE, armored).publicKey).toBe(normalizeSshPublicKey(people[name].publicKey));
      }
    }
  });

  it('gives the fingerprint exactly as ssh-keygen -l prints it, and drops the comment', () => {
    for (const name of ['alice', 'carol', 'dave', 'erin'] as const) {
      const line = people[name].publicKey;
      expect(sshFingerprint(line)).toBe(keygenFingerprint(`${people[name].keyFile}.pub`));
      expect(normalizeSshPublicKey(`  ${line.replace(' ', '\t')}  `)).toBe(line.split(' ').slice(0, 2).join(' '));
    }
  });

  it('signs through ssh-agent when given only the public key file', async () => {
    const sock = path.join(dir, 'agent.sock');
    const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
      const only = path.join(dir, 'only-pub');
      mkdirSync(only, { recursive: true });
      copyFileSync(`${people.bob.keyFile}.pub`, path.join(only, 'bob.pub'));
      vi.stubEnv('SSH_AUTH_SOCK', sock);

      // Not yet in the agent: a clear error, not a hang.
      const missing = await asyncRefusal(signWithSshKey(MESSAGE, path.join(only, 'bob.pub')));
      expect(missing.code).toBe('BAD_INPUT');
      expect(missing.message).toContain('ssh-agent does not hold its private half');

      execFileSync('ssh-add', ['-q', people.bob.keyFile], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
      const armored = await signWithSshKey(MESSAGE, path.join(only, 'bob.pub'));
      expect(verifySshSignature(MESSAGE, armored).publicKey).toBe(normalizeSshPublicKey(people.bob.publicKey));
    } finally {
      agent.kill();
    }
  });

  it('fails at once, naming the key and what to do, for a missing file, a non-key and a passphrase-protected key', async () => {
    vi.stubEnv('SSH_AUTH_SOCK', undefined);
    const started = Date.now();
    const missing = await asyncRefusal(signWithSshKey(MESSAGE, path.join(dir, 'nobody')));
    expect(missing.code).toBe('BAD_INPUT');
    expect(missing.message).toBe(`no SSH key at ${path.join(dir, 'nobody')}`);

    const junk = path.join(dir, 'junk');
    writeFileSync(junk, 'not a key\n');
    const notKey = await asyncRefusal(signWithSshKey(MESSAGE, junk));
    expect(notKey.message).toBe(`${junk} is not an SSH key`);

    const locked = path.join(dir, 'locked');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'correct horse', '-f', locked]);
    const err = await asyncRefusal(signWithSshKey(MESSAGE, locked));
    expect(err.code).toBe('BAD_INPUT');
    expect(err.message).toContain(`${locked} is protected by a passphrase`);
    expect(err.hint).toContain(`ssh-add ${locked}`);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('refusing bad signatures', () => {
  let alice: string;
  beforeAll(async () => {
    alice = await signWithSshKey(MESSAGE, people.alice.keyFile);
  });

  it('refuses a changed statement', () => {
    const err = refusal(() => verifySshSignature(`${MESSAGE} `, alice));
    expect(err.code).toBe('SIGNATURE_INVALID');
    expect(err.message).toContain('does not match');
  });

  it('refuses a signature made for another namespace, naming it', async () => {
    const git = await signWithSshKey(MESSAGE, people.alice.keyFile, 'git');
    expect(verifySshSignature(MESSAGE, git, 'git').publicKey).toBe(normalizeSshPublicKey(people.alice.publicKey));
    const err = refusal(() => verifySshSignature(MESSAGE, git));
    expect(err.code).toBe('SIGNATURE_INVALID');
    expect(err.message).toBe('the signature was made for namespace "git", not "redis-runbooks"');
  });

  it("reports alice's key for alice's signature, whoever it is presented as, and refuses her signature with bob's key swapped in", () => {
    const { publicKey } = verifySshSignature(MESSAGE, alice);
    expect(publicKey).not.toBe(normalizeSshPublicKey(people.bob.publicKey));
    expect(publicKey).toBe(normalizeSshPublicKey(people.alice.publicKey));

    const blob = unarmor(alice);
    const aliceKey = Buffer.from(people.alice.publicKey.split(' ')[1], 'base64');
    const bobKey = Buffer.from(people.bob.publicKey.split(' ')[1], 'base64');
    const swapped = Buffer.from(blob.toString('latin1').replace(aliceKey.toString('latin1'), bobKey.toString('latin1')), 'latin1');
    expect(swapped.equals(blob)).toBe(false);
    expect(refusal(() => verifySshSignature(MESSAGE, armorBlob(swapped))).message).toContain('does not match');
  });

  it('refuses an empty, truncated, garbled or re-wrapped signature', () => {
    const cases: [string, string][] = [
      ['', 'the SSH signature is empty'],
      ['   \n', 'the SSH signature is empty'],
      ['hello', 'not an SSH signature: it does not start with "-----BEGIN SSH SIGNATURE-----"'],
      [alice.split('\n').slice(0, 3).join('\n'), 'the SSH signature is cut short: no "-----END SSH SIGNATURE-----" line'],
      [alice.replace(/\n(.{10})/, '\n$1%$'), 'the SSH signature is garbled: its body is not base64'],
      [`${alice}trailing text`, 'the SSH signature has text after its end line'],
      [armorBlob(unarmor(alice).subarray(0, 60)), 'the SSH signature is truncated'],
      [armorBlob(Buffer.concat([unarmor(alice), Buffer.from([0])])), 'the SSH signature has trailing bytes'],
    ];
    for (const [armored, message] of cases) {
      const err = refusal(() => verifySshSignature(MESSAGE, armored));
      expect(err.code).toBe('SIGNATURE_INVALID');
      expect(err.message).toBe(message);
    }
    // CRLF line ends (a signature pasted through another system) are fine.
    expect(verifySshSignature(MESSAGE, alice.replace(/\n/g, '\r\n')).publicKey).toMatch(/^ssh-ed25519 /);
  });

  it('refuses a wrong magic, a wrong version, an unsupported hash, an unsupported key type and a certificate', () => {
    const keyBlob = Buffer.from(people.alice.publicKey.split(' ')[1], 'base64');
    const sigBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(Buffer.alloc(64))]);
    const base = { keyBlob, sigBlob, namespace: SSHSIG_NAMESPACE };
    const cases: [string, string][] = [
      [armorSshsig({ ...base, magic: 'SSHSIX' }), 'not an SSH signature: the SSHSIG magic is missing'],
      [armorSshsig({ ...base, version: 2 }), 'SSH signature version 2 is not supported (only version 1 is)'],
      [armorSshsig({ ...base, hashAlg: 'sha1' }), 'the signature\'s hash algorithm "sha1" is not supported'],
      [
        armorSshsig({ ...base, keyBlob: Buffer.concat([sshString('ssh-dss'), sshString(Buffer.alloc(20, 1))]) }),
        'the signature\'s key: unsupported SSH key type "ssh-dss"',
      ],
      [
        armorSshsig({ ...base, keyBlob: Buffer.concat([sshString('ssh-ed25519-cert-v01@openssh.com'), sshString('x')]) }),
        'the signature\'s key: "ssh-ed25519-cert-v01@openssh.com" is an SSH certificate, and certificates are not supported',
      ],
      [armorSshsig({ ...base, keyBlob: keyBlob.subarray(0, 8) }), "the signature's key: the public key is truncated"],
      [armorSshsig({ ...base, keyBlob: keyBlob.subarray(0, 30) }), "the signature's key: the ssh-ed25519 public key is malformed"],
      [armorSshsig(base), `the SSH signature by ${sshFingerprint(people.alice.publicKey)} does not match`],
    ];
    for (const [armored, message] of cases) {
      const err = refusal(() => verifySshSignature(MESSAGE, armored));
      expect(err.code).toBe('SIGNATURE_INVALID');
      expect(err.message.startsWith(message), err.message).toBe(true);
    }
  });

  it('throws only SIGNATURE_INVALID, whichever byte of a good signature is changed', () => {
    const blob = unarmor(alice);
    for (let i = 0; i < blob.length; i++) {
      const changed = Buffer.from(blob);
      changed[i] ^= 0x41;
      const err = refusal(() => verifySshSignature(MESSAGE, armorBlob(changed)));
      expect(err.code, `byte ${i}`).toBe('SIGNATURE_INVALID');
    }
  });

  it('refuses an RSA signature with SHA-1, accepts rsa-sha2-256 as ssh-keygen does, and refuses a short RSA key', () => {
    const rsa = softwareKey('rsa');
    const sha1 = refusal(() => verifySshSignature(MESSAGE, rsa.sign(MESSAGE, { rsaSigType: 'ssh-rsa' })));
    expect(sha1.message).toBe('the RSA signature uses SHA-1 (ssh-rsa), which is refused');
    const sha256 = rsa.sign(MESSAGE, { rsaSigType: 'rsa-sha2-256' });
    expect(keygenVerifies(MESSAGE, sha256, rsa.publicKey)).toBe(true);
    expect(verifySshSignature(MESSAGE, sha256).publicKey).toBe(rsa.publicKey);

    const short = path.join(dir, 'short');
    execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '1024', '-N', '', '-f', short]);
    const line = readFileSync(`${short}.pub`, 'utf8');
    expect(refusal(() => normalizeSshPublicKey(line)).message).toContain('the RSA key has 1024 bits, fewer than the 2048 required');
  });
});

describe('hardware keys (sk-*), signed as the FIDO key would', () => {
  it.each(['sk-ed25519', 'sk-ecdsa'] as const)('%s: a touched signature verifies here and with ssh-keygen', (kind) => {
    const key = softwareKey(kind);
    const armored = key.sign(MESSAGE, { counter: 7 });
    expect(keygenVerifies(MESSAGE, armored, key.publicKey)).toBe(true);
    const { publicKey, fingerprint } = verifySshSignature(MESSAGE, armored);
    expect(publicKey).toBe(key.publicKey);
    expect(fingerprint).toBe(sshFingerprint(key.publicKey));
    expect(refusal(() => verifySshSignature(`${MESSAGE}!`, armored)).message).toContain('does not match');
  });

  it.each(['sk-ed25519', 'sk-ecdsa'] as const)('%s: a signature without a touch, or with its counter changed, is refused', (kind) => {
    const key = softwareKey(kind);
    const untouched = refusal(() => verifySshSignature(MESSAGE, key.sign(MESSAGE, { flags: 0 })));
    expect(untouched.message).toBe('the hardware key signed without user presence: nobody touched it');

    const blob = unarmor(key.sign(MESSAGE, { counter: 1 }));
    blob[blob.length - 1] = 2;
    expect(refusal(() => verifySshSignature(MESSAGE, armorBlob(blob))).message).toContain('does not match');
  });

  it('refuses webauthn signatures by name', () => {
    const { keyBlob } = softwareKey('sk-ecdsa');
    const sigBlob = Buffer.concat([
      sshString('webauthn-sk-ecdsa-sha2-nistp256@openssh.com'),
      sshString(Buffer.alloc(8)),
      Buffer.from([1, 0, 0, 0, 1]),
    ]);
    expect(refusal(() => verifySshSignature(MESSAGE, armorSshsig({ keyBlob, sigBlob, namespace: SSHSIG_NAMESPACE }))).message).toBe(
      '"webauthn-sk-ecdsa-sha2-nistp256@openssh.com" signatures (made through a web browser) are not supported',
    );
  });
});

describe('public key lines', () => {
  it('refuses malformed lines with CONFIG_INVALID', () => {
    const ed = people.alice.publicKey.split(' ')[1];
    const cases: [string, string][] = [
      ['ssh-ed25519', 'is not an SSH public key line'],
      ['ssh-ed25519 AAAA$$$', 'the "ssh-ed25519" key is not valid base64'],
      [`ssh-rsa ${ed}`, 'the line says "ssh-rsa" but holds a ssh-ed25519 key'],
      [`ssh-ed25519 ${ed.slice(0, -8)}`, 'the ssh-ed25519 public key is malformed'],
    ];
    for (const [line, message] of cases) {
      const err = refusal(() => normalizeSshPublicKey(line));
      expect(err.code).toBe('CONFIG_INVALID');
      expect(err.message).toContain(message);
    }
  });
});

describe('allowed-signers files', () => {
  const FILE = '/etc/runbook/allowed_signers';

  it('reads comma-separated principals, skips comments and blank lines, and keeps entries for our namespace', () => {
    const { alice, bob, carol, dave } = people;
    const text = [
      '# the approvers',
      '',
      `alice,alice@example.com ${alice.publicKey}`,
      `   "bob@example.com" namespaces="git,redis-runbooks" ${bob.publicKey} bob's laptop`,
      `carol namespaces="git" ${carol.publicKey}`,
      `dave namespaces="redis-*,!redis-other",valid-after="20200101" ${dave.publicKey}`,
      `erin valid-before="20200101Z" ${people.erin.publicKey}`,
      `erin valid-after="29990101" ${people.erin.publicKey}`,
      '  # indented comment',
    ].join('\n');
    expect(parseAllowedSigners(text, FILE)).toEqual([
      { principals: ['alice', 'alice@example.com'], publicKey: normalizeSshPublicKey(alice.publicKey) },
      { principals: ['bob@example.com'], publicKey: normalizeSshPublicKey(bob.publicKey) },
      { principals: ['dave'], publicKey: normalizeSshPublicKey(dave.publicKey) },
    ]);
    expect(parseAllowedSigners(text, FILE, 'git').map((e) => e.principals[0])).toEqual(['alice', 'bob@example.com', 'carol']);
  });

  it('is read as ssh-keygen reads it: an entry with options verifies there too', async () => {
    const armored = await signWithSshKey(MESSAGE, people.bob.keyFile);
    expect(keygenVerifies(MESSAGE, armored, people.bob.publicKey, SSHSIG_NAMESPACE, 'namespaces="git,redis-runbooks"')).toBe(true);
    expect(keygenVerifies(MESSAGE, armored, people.bob.publicKey, SSHSIG_NAMESPACE, 'namespaces="git"')).toBe(false);
  });

  it('refuses cert-authority, unknown options, patterns and bad keys, naming the file and line', () => {
    const key = people.alice.publicKey;
    const cases: [string, string][] = [
      [`ca@example.com cert-authority ${key}`, `${FILE}:2: cert-authority entries are not supported: SSH certificates are not accepted`],
      [`alice cert-authority,namespaces="redis-runbooks" ${key}`, `${FILE}:2: cert-authority entries are not supported`],
      [`alice no-touch-required ${key}`, `${FILE}:2: unknown or incomplete option "no-touch-required"`],
      [`*@example.com ${key}`, `${FILE}:2: principal patterns ("*@example.com") are not supported`],
      [`alice valid-after="2024-01-01" ${key}`, `${FILE}:2: valid-after="2024-01-01" is not a time`],
      [`alice`, `${FILE}:2: no public key after the principals`],
      [`alice ssh-ed25519 ${key.split(' ')[1].slice(0, 40)}`, `${FILE}:2: the ssh-ed25519 public key is malformed`],
      [`alice ssh-dss AAAAB3NzaC1kc3MAAAA=`, `${FILE}:2: unsupported SSH key type "ssh-dss"`],
    ];
    for (const [line, message] of cases) {
      const err = refusal(() => parseAllowedSigners(`# header\n${line}\n`, FILE));
      expect(err.code).toBe('CONFIG_INVALID');
      expect(err.message.startsWith(message), err.message).toBe(true);
    }
  });
});

describe('test people', () => {
  it('renders a people section the config reads', () => {
    const yaml = peopleYaml({ alice: people.alice, carol: people.carol });
    const config = parseConfig(
      `storage:\n  disk: { type: local, path: backups }\ntargets:\n  main:\n    url: redis://127.0.0.1:6379\n    destinations: [disk]\n${yaml}`,
    );
    expect(config.people).toEqual({ alice: { keys: [people.alice.publicKey] }, carol: { keys: [people.carol.publicKey] } });
  });
});
