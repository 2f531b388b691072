// What a worker lets out of its secrets: a mistyped age key is described, never shown; decrypted data
// and saved passwords live in a private folder of the worker process; a hook sees none of the
// worker's environment but what it needs.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../common/config';
import { RunbookError } from '../../common/errors';
import { generateIdentity, parseIdentity } from '../../domain/crypto/age';
import { keyring } from '../../domain/crypto/keys';
import { findLasting, lastingPath, otherStateDirs, reapDeadStateDirs, stateDir } from '../../domain/state-dir';
import { runCommand } from '../../domain/tools';

// This file's own base for private folders: set before the first use, as a worker's environment would.
const base = mkdtempSync(path.join(os.tmpdir(), 'rr-state-base-'));
process.env.RUNBOOK_STATE_DIR = base;
afterAll(() => rmSync(base, { recursive: true, force: true }));

const PREFIX = 'AGE-SECRET-KEY-1';
const BECH32 = 'QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L';

/** Every 6-character piece of the key's data part (after the public prefix), in both cases. */
const pieces = (key: string) => {
  const data = key.slice(PREFIX.length).toUpperCase();
  return Array.from({ length: data.length - 5 }, (_, i) => data.slice(i, i + 6));
};
const leaks = (key: string, err: unknown) => {
  const text = `${(err as RunbookError).message}\n${(err as RunbookError).hint ?? ''}`.toUpperCase();
  return pieces(key).filter((p) => text.includes(p));
};
const caught = (fn: () => unknown): unknown => {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('it did not throw');
};

describe('a mistyped age key', () => {
  const key = generateIdentity();
  const at = PREFIX.length + 20;
  const other = BECH32[(BECH32.indexOf(key[at]!) + 1) % BECH32.length]!;
  const letter = [...key].findIndex((c, i) => i > PREFIX.length && /[A-Z]/.test(c));
  const variants: [string, string, RegExp][] = [
    ['one character changed', key.slice(0, at) + other + key.slice(at + 1), /74 characters starting AGE-SECRET-KEY-1 with a bad checksum/],
    ['one character missing', key.slice(0, at) + key.slice(at + 1), /found 73 characters starting AGE-SECRET-KEY-1$/],
    ['one character too many', key.slice(0, at) + other + key.slice(at), /found 75 characters starting AGE-SECRET-KEY-1$/],
    [
      'a character bech32 does not use',
      key.slice(0, at) + 'B' + key.slice(at + 1),
      /1 character\(s\) outside bech32's alphabet \(at position 37\)/,
    ],
    ['mixed case', key.slice(0, letter) + key[letter]!.toLowerCase() + key.slice(letter + 1), /mixing upper and lower case/],
  ];

  it.each(variants)('%s: the message says what is wrong and shows nothing of the key', (_what, typo, says) => {
    if (typo === key) throw new Error('the variant is the key itself');
    const err = caught(() => parseIdentity(`# created: today\n${typo}\n`));
    expect(err).toBeInstanceOf(RunbookError);
    expect((err as RunbookError).code).toBe('SECRET_UNRESOLVED');
    expect((err as RunbookError).message).toMatch(
      /^not an age identity: expected AGE-SECRET-KEY-1\.\.\. \(bech32, 74 characters\), found /,
    );
    expect((err as RunbookError).message).toMatch(says);
    expect(leaks(typo, err)).toEqual([]);
    expect(leaks(key, err)).toEqual([]);
  });

  it('is described the same way through the keyring, which names the reference and not the value', () => {
    const typo = variants[0]![1];
    process.env.HYGIENE_TEST_KEY = typo;
    const config = parseConfig(
      `storage: { disk: { type: local, path: /tmp/nowhere } }
encryption: { keys: { k1: env:HYGIENE_TEST_KEY } }
targets: { main: { url: "redis://127.0.0.1:1", destinations: [disk], encrypt: k1 } }
`,
      '/tmp/hygiene.yaml',
    );
    const err = caught(() => keyring(config).encryptionFor('k1'));
    expect((err as RunbookError).message).toBe(
      'encryption key k1 (env:HYGIENE_TEST_KEY): not an age identity: expected AGE-SECRET-KEY-1... (bech32, 74 characters), found 74 characters starting AGE-SECRET-KEY-1 with a bad checksum',
    );
    expect((err as RunbookError).hint).toMatch(/age-keygen/);
    expect(leaks(typo, err)).toEqual([]);
    delete process.env.HYGIENE_TEST_KEY;
  });

  it('that is no key at all is not shown either', () => {
    const err = caught(() => parseIdentity('hunter2-my-password\n'));
    expect((err as RunbookError).message).toMatch(/no line starting AGE-SECRET-KEY- \(1 line/);
    expect((err as RunbookError).message).not.toContain('hunter');
    expect(caught(() => parseIdentity('AGE-SECRET-KEY-PQ-1QQQQ'))).toMatchObject({ message: expect.stringMatching(/post-quantum/) });
    expect(parseIdentity(`\n# comment\n  ${key.toLowerCase()}  \n`).recipient).toBe(parseIdentity(key).recipient);
  });
});

describe("the worker's private folder", () => {
  it('is made once per process by mkdtemp under RUNBOOK_STATE_DIR: ours, mode 700, an unguessable name', () => {
    const dir = stateDir();
    expect(path.dirname(dir)).toBe(base);
    expect(path.basename(dir)).toMatch(/^redis-runbooks-[A-Za-z0-9]{6}$/);
    const st = statSync(dir);
    expect(st.mode & 0o777).toBe(0o700);
    expect(st.uid).toBe(process.getuid!());
    expect(stateDir()).toBe(dir);
  });

  it('is refused, with a clear error, once others may enter it', () => {
    const dir = stateDir();
    chmodSync(dir, 0o755);
    try {
      const err = caught(() => stateDir());
      expect(err).toBeInstanceOf(RunbookError);
      expect((err as RunbookError).message).toMatch(
        /is not private: a directory of uid \d+, mode 755; it must be a directory of uid \d+, mode 700/,
      );
    } finally {
      chmodSync(dir, 0o700);
    }
    expect(stateDir()).toBe(dir);
  });

  it("is refused when it is another user's", () => {
    const dir = stateDir();
    chownSync(dir, 65534, 65534);
    try {
      expect(() => stateDir()).toThrow(/is not private: a directory of uid 65534/);
    } finally {
      chownSync(dir, process.getuid!(), process.getgid!());
    }
  });

  it("of a dead worker is removed, its lasting files adopted; a live worker's, another user's or a public one is left alone", () => {
    const folder = (name: string, pid: number, mode = 0o700) => {
      const dir = path.join(base, `redis-runbooks-${name}`);
      mkdirSync(path.join(dir, 'lasting', 'replica-settings'), { recursive: true, mode: 0o700 });
      chmodSync(dir, mode);
      writeFileSync(path.join(dir, 'worker.json'), JSON.stringify({ worker: pid, token: 'x' }));
      writeFileSync(path.join(dir, 'lasting', 'replica-settings', `${name}.json`), `{"masterauth":"${name}"}`);
      mkdirSync(path.join(dir, 'backup-1'));
      writeFileSync(path.join(dir, 'backup-1', 'dump.rdb'), 'REDIS0011');
      return dir;
    };
    const dead = folder('dead01', spawnSync('true').pid!);
    const live = folder('live01', process.ppid);
    const open = folder('open01', spawnSync('true').pid!, 0o755);
    const foreign = folder('frgn01', spawnSync('true').pid!);
    chownSync(foreign, 65534, 65534);

    expect(otherStateDirs().map((o) => [path.basename(o.dir), o.alive])).toEqual(
      expect.arrayContaining([
        ['redis-runbooks-dead01', false],
        ['redis-runbooks-live01', true],
      ]),
    );
    expect(otherStateDirs().some((o) => o.dir === open || o.dir === foreign)).toBe(false);
    // A live worker's lasting file is found, for a retried attempt that lands on another process.
    expect(findLasting(path.join('replica-settings', 'live01.json'))).toBe(path.join(live, 'lasting', 'replica-settings', 'live01.json'));

    const seen: string[] = [];
    reapDeadStateDirs((d) => seen.push(d));
    expect(seen).toEqual([dead]);
    expect(existsSync(dead)).toBe(false);
    const adopted = findLasting(path.join('replica-settings', 'dead01.json'))!;
    expect(adopted).toBe(lastingPath(path.join('replica-settings', 'dead01.json')));
    expect(adopted.startsWith(stateDir())).toBe(true);
    expect(readFileSync(adopted, 'utf8')).toBe('{"masterauth":"dead01"}');
    expect(statSync(path.dirname(adopted)).mode & 0o777).toBe(0o700);
    for (const d of [live, open, foreign]) expect(existsSync(path.join(d, 'backup-1', 'dump.rdb'))).toBe(true);
  });
});

describe("the worker's private folder, at a clean exit", () => {
  const run = (code: string) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: path.resolve(import.meta.dirname, '../..'),
      env: { ...process.env, RUNBOOK_STATE_DIR: base },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout.trim();
  };
  const prelude = "import { lastingPath, stateDir } from './domain/state-dir.ts'; import { mkdirSync, writeFileSync } from 'node:fs';";

  it('is removed with what it held', () => {
    const dir = run(
      `${prelude} const d = stateDir(); mkdirSync(d + '/backup-1'); writeFileSync(d + '/backup-1/dump.rdb', 'x'); console.log(d);`,
    );
    expect(dir.startsWith(base)).toBe(true);
    expect(existsSync(dir)).toBe(false);
  });

  it('is kept while it holds a lasting file, for the next worker to adopt', () => {
    const dir = run(`${prelude} writeFileSync(lastingPath('replica-settings/t.json'), '{}'); console.log(stateDir());`);
    expect(existsSync(path.join(dir, 'lasting', 'replica-settings', 't.json'))).toBe(true);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('a hook command', () => {
  it("sees none of the worker's secrets in its environment, only what childEnv passes", async () => {
    process.env.RUNBOOK_TEST_SECRET = 's3cr3t-value-of-the-worker';
    process.env.RUNBOOK_HOOK_REGION = 'eu-1';
    try {
      const r = await runCommand('echo "[${RUNBOOK_TEST_SECRET:-unset}] [${RUNBOOK_HOOK_REGION:-unset}]"; env', {
        what: 'test hook',
        timeoutMs: 10_000,
      });
      expect(r.stdout.split('\n')[0]).toBe('[unset] [eu-1]');
      expect(r.stdout).not.toContain('s3cr3t-value-of-the-worker');
      expect(r.stdout).not.toMatch(/^RUNBOOK_TEST_SECRET=/m);
      expect(r.stdout).toMatch(/^PATH=/m);
    } finally {
      delete process.env.RUNBOOK_TEST_SECRET;
      delete process.env.RUNBOOK_HOOK_REGION;
    }
  });
});
