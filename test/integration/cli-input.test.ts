// Two contracts of the real CLI, on every command it registers (cli/index.ts):
//  1. Bad input exits 2 (BAD_INPUT) with a message naming the flag or argument, before anything is
//     connected to, started or written.
//  2. With --json, a failure is one JSON line on stderr, {"error":{"code","message","hint"?,"exitCode"}},
//     whose exitCode is the process's exit status; without --json the same failure is `error [CODE]: ...`.
// No server runs: temporal.address is a closed port, so a command that reached Temporal before checking
// its input would exit 4 (TEMPORAL_UNAVAILABLE), not 2. Each run gets its own folder, holding only its
// config and used as its working directory: whatever a refused command wrote (a report, a backup folder,
// the dev server's SQLite file) would be left there to see.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin/runbook.js');

// A minimal valid config. Relative paths are relative to the config file, so everything stays in its folder.
const CONFIG = `
temporal: { address: 127.0.0.1:1 }
storage:
  disk: { type: local, path: backups }
targets:
  main:
    url: redis://127.0.0.1:1
    destinations: [disk]
`;

const VALID_ID = 'main-20260101T020000Z-1f2e3d4c';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  /** What the run's folder holds afterwards: only runbook.yaml (or nothing) when nothing was written. */
  left: string[];
}

let base: string;
beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'runbook-cli-input-'));
});
afterAll(() => rm(base, { recursive: true, force: true }));

/** `runbook --config <its folder>/runbook.yaml ...args` in a fresh folder; with `config: false`, --config names no file. */
async function runbook(args: string[], { config = true } = {}): Promise<Run> {
  const dir = await mkdtemp(path.join(base, 'run-'));
  const configFile = config ? path.join(dir, 'runbook.yaml') : path.join(base, 'missing.yaml');
  if (config) await writeFile(configFile, CONFIG);
  const { RUNBOOK_CONFIG: _ignored, ...env } = process.env;
  const run = await new Promise<Omit<Run, 'left'>>((resolve) => {
    const child = spawn(process.execPath, [BIN, '--config', configFile, ...args], { cwd: dir, env, timeout: 50_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
  return { ...run, left: (await readdir(dir)).sort() };
}

/** The command line as typed in a shell, for test names. */
const shell = (args: string[]) => ['runbook', ...args.map((a) => (/^[\w./:@=-]+$/.test(a) ? a : `'${a}'`))].join(' ');

type Row = [args: string[], fragment: string];
const named = (rows: Row[]) => rows.map(([args, fragment]) => [shell(args), args, fragment] as const);

// At least one bad input per command and subcommand; the fragment is what names the flag or argument.
const BAD_INPUT: Row[] = [
  [['backup', 'main', '--tag', 'a/b'], '--tag: '],
  [['backups', 'nosuch'], "unknown command 'nosuch'"],
  [['backups', 'list', 'main', '--bogus'], "unknown option '--bogus'"],
  [['backups', 'show', 'nope'], '"nope" is not a backup id'],
  [['backups', 'show', 'main-20260231T020000Z-1f2e3d4c'], '"main-20260231T020000Z-1f2e3d4c" has an impossible time'],
  [['backups', 'verify', '../../etc/passwd'], '"../../etc/passwd" is not a backup id'],
  [['backups', 'verify', VALID_ID, '--destination'], "option '--destination <name>' argument missing"],
  [['restore', 'main', '--from', 'nope', '--reason', 'disk lost'], '--from: a backup id or "latest"'],
  [['restore', 'main', '--from', 'latest', '--reason', 'x'], '--reason: a reason of a few words'],
  [['restore', 'main', '--from', 'latest'], "required option '--reason <text>' not specified"],
  [['approve', 'restore/main', '--as', 'alice'], "unknown option '--as'"],
  [['approve', 'restore/main', '--key', '/nonexistent/id_ed25519', '--yes'], '--key: no such file /nonexistent/id_ed25519'],
  [['approve', 'restore/main', '--key', '/etc/hostname', '--valid-for', 'a week'], '--valid-for: a duration'],
  [['reject', 'restore/main', '--key', '/etc/hostname'], "required option '--reason <text>' not specified"],
  [['restore', 'main', '--from', 'latest', '--reason', 'disk lost', '--key', '/nonexistent/k'], '--key: no such file /nonexistent/k'],
  [['restore', 'main', '--from', 'latest', '--reason', 'disk lost'], 'a restore request is signed with your SSH key, and none was given'],
  [['approve', 'restore/main', '--yes'], 'an approval is signed with your SSH key, and none was given'],
  [['dr', 'main', '--reason', 'disk lost', '--at', 'tomorrow'], '--at: a time such as'],
  [['dr', 'main', '--reason', 'disk lost', '--at', '2999-01-01T00:00:00Z'], '--at: a moment in the past'],
  [['dr', 'main', '--reason', 'disk lost', '--from', 'nope'], '--from: a backup id'],
  [['dr', 'main', '--reason', 'disk lost', '--at', '2026-01-01T00:00:00Z', '--from', VALID_ID], 'either --at or --from, not both'],
  [['drill', 'main', '--random', '0'], '--random: '],
  [['drill', 'main', '--backup', 'nope'], '--backup: a backup id'],
  [['drill', 'main', '--from', 'nowhere'], '--from: nowhere is not a destination of main'],
  [['drills', 'list', 'main', '--limit', '0'], '--limit: '],
  [['drills', 'list', 'main', '--outcome', 'maybe'], '--outcome: '],
  [['audit', 'main', '--bogus'], "unknown option '--bogus'"],
  [['report', 'main', '--days', '-3'], '--days: a whole number of days'],
  [['report', 'main', '--out', ''], '--out: a file name'],
  [['check', 'main', 'extra'], "too many arguments for 'check'"],
  [['retention', 'main', '--bogus'], "unknown option '--bogus'"],
  [['schedules', 'nosuch'], "unknown command 'nosuch'"],
  [['schedules', 'apply', '--bogus'], "unknown option '--bogus'"],
  [['schedules', 'list', 'extra'], "too many arguments for 'list'"],
  [['status'], "missing required argument 'workflowId'"],
  [['worker', '--metrics-port', '99999'], '--metrics-port: a port number up to 65535'],
  [['dev', '--metrics-port', '99999'], '--metrics-port: a port number up to 65535'],
  [['codec-server', '--port', '99999', '--origin', 'http://localhost:8233', '--token', 'env:T'], '--port: a port number up to 65535'],
  [['codec-server', '--port', '0', '--origin', 'http://localhost:8233/', '--token', 'env:T'], '--origin: an origin such as'],
  [['codec-server', '--port', '0', '--origin', 'http://localhost:8233', '--token', 'hunter2'], '--token: a secret reference'],
  [['config', 'schema', 'extra'], "too many arguments for 'schema'"],
  [['config', 'check', 'a.yaml', 'b.yaml'], "too many arguments for 'check'"],
  [['nosuch'], "unknown command 'nosuch'"],
];

// These once reached Temporal before refusing their input (exit 4 here, a refusal by the workflow or the
// server with a live one): they must refuse first.
const BAD_INPUT_CHECKED_FIRST: Row[] = [
  [['reject', 'restore/main', '--key', '/etc/hostname', '--reason', ''], '--reason: '],
  [['status', ''], 'workflowId'],
  [['approve', '', '--key', '/etc/hostname'], '<workflowId>: '],
];

async function expectRefused(args: string[], fragment: string): Promise<void> {
  const r = await runbook(args);
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 2, stderr: expect.stringContaining(fragment) });
  // Ours say `error [BAD_INPUT]: `, commander's own refusals `error: `.
  expect(r.stderr).toMatch(/^error( \[BAD_INPUT\])?: /);
  expect(r.stdout).toBe('');
  expect(r.left).toEqual(['runbook.yaml']);
}

describe.concurrent('bad input', () => {
  it.each(named(BAD_INPUT))('refuses `%s` with exit 2', (_line, args, fragment) => expectRefused([...args], fragment));

  it.each(named(BAD_INPUT_CHECKED_FIRST))('refuses `%s` with exit 2 before connecting to Temporal', (_line, args, fragment) =>
    expectRefused([...args], fragment),
  );
});

interface JsonCase {
  failure: string;
  args: string[];
  code: string;
  exitCode: number;
  /** Commander's own refusals say `error: ...` in text, without the code. */
  commander?: boolean;
  config?: boolean;
}

const JSON_CASES: JsonCase[] = [
  { failure: 'a bad option value', args: ['--json', 'report', 'main', '--days', '-3'], code: 'BAD_INPUT', exitCode: 2 },
  { failure: 'an unknown target', args: ['--json', 'backup', 'nosuch'], code: 'UNKNOWN_TARGET', exitCode: 3 },
  { failure: 'a missing config file', args: ['--json', 'check'], code: 'CONFIG_NOT_FOUND', exitCode: 3, config: false },
  { failure: 'Temporal unreachable', args: ['--json', 'status', 'some-id'], code: 'TEMPORAL_UNAVAILABLE', exitCode: 4 },
  { failure: 'an unknown option', args: ['--json', 'backup', 'main', '--bogus'], code: 'BAD_INPUT', exitCode: 2, commander: true },
  {
    failure: 'an unknown option, --json last',
    args: ['backup', 'main', '--bogus', '--json'],
    code: 'BAD_INPUT',
    exitCode: 2,
    commander: true,
  },
  {
    failure: 'a missing required option',
    args: ['--json', 'restore', 'main', '--from', 'latest'],
    code: 'BAD_INPUT',
    exitCode: 2,
    commander: true,
  },
  { failure: 'an unknown command', args: ['--json', 'nosuch'], code: 'BAD_INPUT', exitCode: 2, commander: true },
];

// A command group called without its subcommand (and `runbook` alone) once printed its help as text
// even with --json; without --json it still does, so these are checked as JSON only.
const JSON_CASES_WITHOUT_COMMAND: JsonCase[] = [
  { failure: 'no subcommand', args: ['--json', 'backups'], code: 'BAD_INPUT', exitCode: 2, commander: true },
  { failure: 'no subcommand', args: ['--json', 'drills'], code: 'BAD_INPUT', exitCode: 2, commander: true },
  { failure: 'no subcommand', args: ['--json', 'schedules'], code: 'BAD_INPUT', exitCode: 2, commander: true },
  { failure: 'no subcommand', args: ['--json', 'config'], code: 'BAD_INPUT', exitCode: 2, commander: true },
  { failure: 'no command', args: ['--json'], code: 'BAD_INPUT', exitCode: 2, commander: true },
];

interface JsonError {
  error: { code: string; message: string; hint?: string; exitCode: number };
}

async function expectJsonError({ args, code, exitCode, config }: JsonCase): Promise<JsonError['error']> {
  const r = await runbook(args, { config });
  expect(r.stdout).toBe('');
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  const parsed = JSON.parse(r.stderr.trim()) as JsonError;
  expect(parsed).toEqual({
    error: { code, message: expect.any(String), exitCode, ...(parsed.error?.hint !== undefined ? { hint: expect.any(String) } : {}) },
  });
  expect(parsed.error.message).not.toBe('');
  expect(r.status).toBe(parsed.error.exitCode);
  return parsed.error;
}

const titled = (cases: JsonCase[]) => cases.map((c) => [c.failure, shell(c.args), c] as const);

describe.concurrent('--json', () => {
  it.each(titled(JSON_CASES))(
    'reports %s as JSON on stderr with its exit code, and as text without --json: `%s`',
    async (_failure, _line, c) => {
      const [json, text] = await Promise.all([
        expectJsonError(c),
        runbook(
          c.args.filter((a) => a !== '--json'),
          { config: c.config },
        ),
      ]);
      expect(text.status).toBe(c.exitCode);
      expect(text.stdout).toBe('');
      expect(text.stderr).toMatch(c.commander ? /^error: / : new RegExp(`^error \\[${c.code}\\]: `));
      // The same message in both forms, and the hint on its own line.
      expect(text.stderr.split('\n')[0]).toBe(`error${c.commander ? '' : ` [${c.code}]`}: ${json.message}`);
      if (json.hint) expect(text.stderr).toContain(`\n  hint: ${json.hint}\n`);
    },
  );

  it.each(titled(JSON_CASES_WITHOUT_COMMAND))(
    'reports %s as JSON on stderr with its exit code, not as help text: `%s`',
    async (_failure, _line, c) => {
      await expectJsonError(c);
    },
  );
});
