// A secured Temporal: the dev server behind a TLS endpoint that requires a client certificate
// (test/support/tls.ts), certificates made by openssl. The real CLI and a real worker connect with the
// right certificate, from the config or from Temporal's environment variables and profile file; every
// wrong setup ends in exit 4 within seconds with a message naming the address and the cause; an API key
// reaches the server as `authorization: Bearer ...`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import proto from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../common/config';
import { RunbookError } from '../../common/errors';
import { createRunbookWorker } from '../../worker';
import { signingKey } from '../support/signing';
import { temporalConnectionSettings, temporalTarget } from '../../worker/connection';
import { makeCerts, startHeaderRecorder, startTlsPipe, type CertFiles, type HeaderRecorder, type TlsPipe } from '../support/tls';
import { startTemporal } from '../support/temporal';

let env: TestWorkflowEnvironment;
let dir: string;
let certs: CertFiles;
let pipe: TlsPipe;
let recorder: HeaderRecorder;
/** A worker signs what it writes: its config needs a signing key. */
let signing: string;

const TASK_QUEUE = 'tls-test';
const TARGETS = `
storage:
  disk: { type: local, path: backups }
targets:
  main:
    url: redis://127.0.0.1:1
    destinations: [disk]
    schedules: [{ name: nightly, cron: "0 2 * * *" }]
`;

function writeConfig(name: string, temporal: string): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, `temporal: { taskQueue: ${TASK_QUEUE}${temporal ? `, ${temporal}` : ''} }\n${TARGETS}`);
  return file;
}

const tlsWith = (o: { ca?: string; cert?: string; key?: string; serverName?: string }) =>
  `tls: { ${Object.entries(o)
    .map(([k, v]) => `${k}: ${k === 'serverName' ? v : `"file:${v}"`}`)
    .join(', ')} }`;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * The CLI as a user runs it (as test/support/cli.ts does), with Temporal's own variables taken from
 * `vars` only: nothing from the machine's environment or a temporal.toml in the home folder.
 */
function runCli(configFile: string, vars: Record<string, string>, ...args: string[]): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TEMPORAL_')));
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/index.ts', '--config', configFile, ...args], {
      timeout: 60_000,
      env: { ...base, TEMPORAL_CONFIG_FILE: path.join(dir, 'no-such-temporal.toml'), ...vars },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr, ms: Date.now() - started }));
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rr-temporal-tls-'));
  certs = makeCerts(path.join(dir, 'certs'));
  signing = signingKey(dir).yaml;
  env = await startTemporal();
  [pipe, recorder] = await Promise.all([startTlsPipe(certs, env.address), startHeaderRecorder(certs)]);
});

afterAll(async () => {
  await Promise.all([pipe?.close(), recorder?.close()]);
  await env?.teardown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const good = () => tlsWith({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey });

describe('with the right client certificate', () => {
  it('the CLI applies and lists the schedules through TLS', async () => {
    const config = writeConfig('good', `address: "${pipe.address}", ${good()}`);
    const before = pipe.accepted();
    const applied = await runCli(config, {}, '--json', 'schedules', 'apply');
    expect(applied.status, applied.stderr).toBe(0);
    const listed = await runCli(config, {}, '--json', 'schedules', 'list');
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stderr).toBe('');
    expect((JSON.parse(listed.stdout) as { scheduleId: string }[]).map((s) => s.scheduleId)).toEqual(['backup/main/nightly']);
    expect(pipe.accepted()).toBeGreaterThan(before);
  });

  it('a worker connects through TLS and polls the task queue', async () => {
    const config = parseConfig(`temporal: { taskQueue: tls-worker, address: "${pipe.address}", ${good()} }\n${TARGETS}${signing}`);
    const { worker, close, address } = await createRunbookWorker({ config });
    expect(address).toBe(pipe.address);
    try {
      await worker.runUntil(async () => {
        const deadline = Date.now() + 20_000;
        for (;;) {
          // Asked of the server directly, not through the pipe: the worker is seen from outside.
          const { pollers } = await env.client.workflowService.describeTaskQueue({
            namespace: 'default',
            taskQueue: { name: 'tls-worker' },
            taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
          });
          if (pollers?.length) return;
          if (Date.now() > deadline) throw new Error('the worker never polled');
          await new Promise((r) => setTimeout(r, 200));
        }
      });
    } finally {
      await close();
    }
  });

  it('takes the address and certificates from TEMPORAL_ADDRESS and TEMPORAL_TLS_* when the config sets none', async () => {
    const config = writeConfig('env', '');
    const r = await runCli(
      config,
      {
        TEMPORAL_ADDRESS: `localhost:${pipe.port}`,
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.ca,
        TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert,
        TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKey,
      },
      '--json',
      'schedules',
      'list',
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('backup/main/nightly');
  });

  it('takes them from a profile of a Temporal TOML file chosen by TEMPORAL_PROFILE', async () => {
    const toml = path.join(dir, 'temporal.toml');
    writeFileSync(
      toml,
      `[profile.default]\naddress = "127.0.0.1:1"\n\n[profile.secure]\naddress = "localhost:${pipe.port}"\nnamespace = "default"\n[profile.secure.tls]\nserver_ca_cert_path = "${certs.ca}"\nclient_cert_path = "${certs.clientCert}"\nclient_key_path = "${certs.clientKey}"\n`,
    );
    const r = await runCli(writeConfig('profile', ''), { TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'secure' }, 'schedules', 'list');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('backup/main/nightly');
  });

  it('lets the config win over the environment, setting by setting', () => {
    const saved = { ...process.env };
    try {
      Object.assign(process.env, {
        TEMPORAL_CONFIG_FILE: path.join(dir, 'no-such-temporal.toml'),
        TEMPORAL_ADDRESS: 'from-env:7233',
        TEMPORAL_NAMESPACE: 'env-ns',
        TEMPORAL_TLS_SERVER_NAME: 'env.example',
        TEMPORAL_API_KEY: 'env-api-key',
      });
      const bare = parseConfig(`temporal: {}\n${TARGETS}`);
      expect(temporalTarget(bare)).toEqual({ address: 'from-env:7233', namespace: 'env-ns', addressFrom: 'environment' });
      const own = parseConfig(`temporal: { address: "mine:7233", namespace: ops, tls: { serverName: mine.example } }\n${TARGETS}`);
      const s = temporalConnectionSettings(own);
      expect(s).toMatchObject({ address: 'mine:7233', namespace: 'ops', addressFrom: 'config', apiKey: 'env-api-key' });
      expect(s.tls).toEqual({ serverNameOverride: 'mine.example' });
      const off = parseConfig(`temporal: { tls: false }\n${TARGETS}`);
      expect(temporalConnectionSettings(off).tls).toBe(false);
      delete process.env.TEMPORAL_ADDRESS;
      expect(temporalTarget(parseConfig(`temporal: { devServer: { port: 7399 } }\n${TARGETS}`)).address).toBe('127.0.0.1:7399');
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });
});

it('refuses a client certificate without its key, and a passphrase as a TLS setting, at config load', () => {
  expect(() => parseConfig(`temporal: { tls: { cert: "file:/c.pem" } }\n${TARGETS}`)).toThrow(
    /temporal\.tls\.key: expected cert and key together/,
  );
  expect(() => parseConfig(`temporal: { apiKey: "sk-live-123" }\n${TARGETS}`)).toThrow(/temporal\.apiKey: expected a secret reference/);
});

describe('a wrong TLS setup exits 4 within seconds, naming the address and the cause', () => {
  const cases: [string, () => string, RegExp, RegExp][] = [
    [
      'no client certificate',
      () => tlsWith({ ca: certs.ca }),
      /the server requires a client certificate/,
      /set temporal\.tls\.cert and key/,
    ],
    [
      'a client certificate of another CA',
      () => tlsWith({ ca: certs.ca, cert: certs.otherClientCert, key: certs.otherClientKey }),
      // A Go server sends a TLS alert (named as such); the Node endpoint here just hangs up.
      /refused the client certificate/,
      /temporal\.tls\.cert and key/,
    ],
    [
      'the wrong CA for the server',
      () => tlsWith({ ca: certs.otherCa, cert: certs.clientCert, key: certs.clientKey }),
      /the server's certificate is not signed by a CA this trusts/,
      /set temporal\.tls\.ca/,
    ],
    [
      'a server name the certificate does not hold',
      () => tlsWith({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey, serverName: 'temporal.example' }),
      /the server's certificate is not for temporal\.example/,
      /temporal\.tls\.serverName/,
    ],
    ['no TLS at all', () => '', /the server speaks TLS, and this connects without it/, /set temporal\.tls/],
  ];

  it.each(cases)('%s', async (name, tls, cause, hint) => {
    const config = writeConfig(name.replace(/\W+/g, '-'), `address: "${pipe.address}"${tls() ? `, ${tls()}` : ''}`);
    const r = await runCli(config, {}, '--json', 'schedules', 'list');
    expect(r.status, r.stderr).toBe(4);
    // One JSON line and nothing else on stderr (no warning about TLS to an IP address either).
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    const line = lines[0];
    const { error } = JSON.parse(line!) as { error: { code: string; message: string; hint: string } };
    expect(error.code).toBe('TEMPORAL_UNAVAILABLE');
    expect(error.message).toContain(`Temporal at ${pipe.address}`);
    expect(error.message).toMatch(cause);
    expect(error.hint).toMatch(hint);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    // The CLI's connect timeout is 5 s and the diagnosis is one handshake; tsx starts in 1-2 s.
    expect(r.ms).toBeLessThan(15_000);
  });

  it('the worker refuses the same way, at once', async () => {
    const config = parseConfig(
      `temporal: { taskQueue: tls-worker, address: "${pipe.address}", ${tlsWith({ ca: certs.ca })} }\n${TARGETS}${signing}`,
    );
    const started = Date.now();
    const err = await createRunbookWorker({ config }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RunbookError);
    expect((err as RunbookError).code).toBe('TEMPORAL_UNAVAILABLE');
    expect((err as RunbookError).message).toBe(`cannot reach Temporal at ${pipe.address}: the server requires a client certificate`);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('an API key', () => {
  it('is sent as "authorization: Bearer <key>", and a refusal says the credentials were refused without printing them', async () => {
    const apiKey = `rr-api-${randomBytes(12).toString('hex')}`;
    const config = writeConfig('api-key', `address: "${recorder.address}", apiKey: env:TLS_TEST_API_KEY, ${good()}`);
    const r = await runCli(config, { TLS_TEST_API_KEY: apiKey }, 'schedules', 'list');
    expect(r.status, r.stderr).toBe(4);
    expect(r.stderr).toContain(`Temporal at ${recorder.address} refused the credentials (UNAUTHENTICATED)`);
    expect(`${r.stdout}${r.stderr}`).not.toContain(apiKey);
    const call = recorder.calls.at(-1)!;
    expect(call[':path']).toMatch(/^\/temporal\.api\.workflowservice\.v1\.WorkflowService\//);
    expect(call.authorization).toBe(`Bearer ${apiKey}`);
  });

  it('comes from TEMPORAL_API_KEY too', async () => {
    const apiKey = `rr-env-${randomBytes(12).toString('hex')}`;
    const config = writeConfig('api-key-env', `address: "${recorder.address}", ${good()}`);
    const r = await runCli(config, { TEMPORAL_API_KEY: apiKey }, 'schedules', 'list');
    expect(r.status, r.stderr).toBe(4);
    expect(recorder.calls.at(-1)!.authorization).toBe(`Bearer ${apiKey}`);
  });
});
