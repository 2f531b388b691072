// `npm run build`: the CLI compiled to JavaScript runs under Node's own loader, says what the
// TypeScript CLI says, and starts without what only some commands need: no TypeScript compiler, no
// Temporal client or worker, no AWS SDK. That is what keeps `runbook --help` and `runbook config check`
// quick; timings themselves are not asserted (a loaded machine would make them flaky). The build goes to
// a folder of its own under test/artifacts, inside the repository so that its imports find node_modules.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOOL_VERSION } from '../../common/version';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TRACE = path.join(ROOT, 'test/support/load-trace.mjs');

/** Loaded only by the commands that need them. */
const HEAVY = ['tsx', '@temporalio/client', '@temporalio/worker', '@temporalio/proto', '@grpc/grpc-js', '@aws-sdk', 'webpack', 'ioredis'];

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, timeout: 180_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** The packages a file:// URL or path lies in, as `@scope/name` or `name`. */
const packageOf = (line: string) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(line)?.[1];

describe('the compiled CLI', () => {
  let out: string;
  let cli: string;

  beforeAll(async () => {
    // test/artifacts is not in a fresh clone.
    await mkdir(path.join(ROOT, 'test/artifacts'), { recursive: true });
    out = await mkdtemp(path.join(ROOT, 'test/artifacts/compiled-cli-'));
    const built = await run('npm', ['run', 'build', '--', '--outdir', out]);
    expect(built.status, built.stderr + built.stdout).toBe(0);
    cli = path.join(out, 'runbook.js');
  }, 300_000);

  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('prints its version and its help', async () => {
    const version = await run(process.execPath, [cli, '--version']);
    expect(version).toMatchObject({ status: 0, stdout: `${TOOL_VERSION}\n` });
    const help = await run(process.execPath, [cli, '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: runbook /);
    for (const command of ['backup', 'restore', 'approve', 'dr', 'drill', 'check', 'worker', 'dev', 'config']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    }
  });

  it('checks the example config as the TypeScript CLI does', async () => {
    const checked = await run(process.execPath, [cli, 'config', 'check', 'runbook.example.yaml']);
    expect(checked).toMatchObject({ status: 0, stdout: 'ok\n' });
    const json = await run(process.execPath, [cli, '--json', 'config', 'check', 'runbook.example.yaml']);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, file: path.join(ROOT, 'runbook.example.yaml') });
    const missing = await run(process.execPath, [cli, '--json', 'config', 'check', 'no-such.yaml']);
    expect(missing.status).toBe(3);
    expect(JSON.parse(missing.stderr)).toMatchObject({ error: { code: 'CONFIG_NOT_FOUND', exitCode: 3 } });
  });

  it('starts without tsx, the Temporal client or worker, or the AWS SDK', async () => {
    for (const args of [['--version'], ['--help'], ['config', 'check', 'runbook.example.yaml']]) {
      const trace = path.join(out, `trace-${args[0]}.txt`);
      const traced = await run(process.execPath, ['--import', pathToFileURL(TRACE).href, cli, ...args], { LOAD_TRACE: trace });
      expect(traced.status, traced.stderr).toBe(0);
      const loaded = (await readFile(trace, 'utf8')).split('\n').filter(Boolean);
      // The trace sees what it should: the entry, and the packages every command needs.
      expect(loaded).toContain(pathToFileURL(cli).href);
      const packages = new Set(loaded.map(packageOf).filter((p) => p !== undefined));
      expect(packages).toContain('commander');
      expect([...packages].filter((p) => HEAVY.some((h) => p === h || p.startsWith(`${h}/`) || p.startsWith(`${h}-`)))).toEqual([]);
    }
  });

  it('links every part under Node’s own loader, and carries the workflow bundle', async () => {
    // Parts that only some commands load (a worker, a restore) would fail late if an import did not resolve.
    const parts = (await readdir(out)).filter((f) => f.endsWith('.js') && f !== 'runbook.js' && f !== 'workflow-bundle.js');
    expect(parts.length).toBeGreaterThan(0);
    const script = `for (const f of ${JSON.stringify(parts.map((f) => pathToFileURL(path.join(out, f)).href))}) await import(f);`;
    const linked = await run(process.execPath, ['--input-type=module', '-e', script]);
    expect(linked.status, linked.stderr).toBe(0);
    const bundle = path.join(out, 'workflow-bundle.js');
    expect((await stat(bundle)).size).toBeGreaterThan(100_000);
    const code = await readFile(bundle, 'utf8');
    for (const workflow of ['backupRedis', 'restoreRedis', 'drillRedis', 'recoverRedis', 'pruneBackups']) expect(code).toContain(workflow);
  });
});
