// `runbook codec-server` as a user runs it: Temporal's remote codec protocol over HTTP with the
// configured payload keys, a bearer token on every request, CORS for the one Temporal UI origin, and
// the real `temporal` CLI showing a history the codec encrypted.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../common/config';
import { childEnv, toolPath } from '../../domain/tools';
import { AesGcmCodec, dataConverterFor, parsePayloadKey } from '../../worker/payload-codec';
import { startTemporal } from '../support/temporal';

const ORIGIN = 'http://localhost:8233';
const token = randomBytes(24).toString('base64url');
const key = randomBytes(32).toString('base64');
const keyEnv = { CODEC_TEST_TOKEN: token, CODEC_TEST_KEY: key };
const CONFIG = `temporal: { payloadKeys: [{ id: ops-1, key: env:CODEC_TEST_KEY }] }\nstorage: {}\ntargets: {}\n`;

let dir: string;
let server: ChildProcess;
let url: string;
let env: TestWorkflowEnvironment;

const b64 = (s: string) => Buffer.from(s).toString('base64');
const jsonPayload = (value: unknown) => ({ metadata: { encoding: b64('json/plain') }, data: b64(JSON.stringify(value)) });
interface WirePayload {
  metadata: Record<string, string>;
  data: string;
}

function post(op: string, body: unknown, headers: Record<string, string> = { Authorization: `Bearer ${token}` }) {
  return fetch(`${url}/${op}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default', ...headers },
    body: JSON.stringify(body),
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'rr-codec-server-'));
  const configFile = path.join(dir, 'runbook.yaml');
  writeFileSync(configFile, CONFIG);
  server = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'cli/index.ts',
      '--config',
      configFile,
      '--json',
      'codec-server',
      '--port',
      '0',
      '--origin',
      ORIGIN,
      '--token',
      'env:CODEC_TEST_TOKEN',
    ],
    { env: { ...process.env, ...keyEnv } },
  );
  let out = '';
  let err = '';
  server.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  url = await new Promise<string>((resolve, reject) => {
    server.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve((JSON.parse(out.split('\n')[0]!) as { url: string }).url);
    });
    server.once('exit', (code) => reject(new Error(`codec-server exited with ${code}: ${err}`)));
  });
  env = await startTemporal();
});

afterAll(async () => {
  server?.kill('SIGTERM');
  await env?.teardown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('runbook codec-server', () => {
  it('encodes and decodes payloads over HTTP, compatibly with the worker and the CLI', async () => {
    const enc = await post('encode', { payloads: [jsonPayload({ target: 'main' }), jsonPayload('second')] });
    expect(enc.status).toBe(200);
    const encoded = (await enc.json()) as { payloads: WirePayload[] };
    expect(encoded.payloads).toHaveLength(2);
    for (const p of encoded.payloads) {
      expect(Buffer.from(p.metadata.encoding!, 'base64').toString()).toBe('binary/encrypted');
      expect(Buffer.from(p.metadata['encryption-key-id']!, 'base64').toString()).toBe('ops-1');
      expect(Buffer.from(p.data, 'base64').toString()).not.toContain('main');
    }
    const dec = await post('decode', encoded);
    expect(dec.status).toBe(200);
    const decoded = (await dec.json()) as { payloads: WirePayload[] };
    expect(decoded.payloads.map((p) => JSON.parse(Buffer.from(p.data, 'base64').toString()) as unknown)).toEqual([
      { target: 'main' },
      'second',
    ]);

    // What a worker with the same key wrote decodes too.
    const [sealed] = await new AesGcmCodec([parsePayloadKey('ops-1', key)]).encode([
      { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('"from the worker"') },
    ]);
    const wire = {
      metadata: Object.fromEntries(Object.entries(sealed!.metadata!).map(([k, v]) => [k, Buffer.from(v!).toString('base64')])),
      data: Buffer.from(sealed!.data!).toString('base64'),
    };
    const one = (await (await post('decode', { payloads: [wire] })).json()) as { payloads: WirePayload[] };
    expect(Buffer.from(one.payloads[0]!.data, 'base64').toString()).toBe('"from the worker"');
  });

  it('lets the temporal CLI show the decrypted input of a history', async () => {
    const config = parseConfig(CONFIG);
    process.env.CODEC_TEST_KEY = key;
    const client = new Client({ connection: env.connection, namespace: 'default', dataConverter: dataConverterFor(config) });
    delete process.env.CODEC_TEST_KEY;
    const workflowId = `codec-${randomBytes(4).toString('hex')}`;
    // No worker: the start event alone holds the encrypted input.
    await client.workflow.start('backupRedis', { taskQueue: 'codec-test-nobody', workflowId, args: [{ target: 'codec-visible-target' }] });
    const show = (...codec: string[]) =>
      promisify(execFile)(
        toolPath('temporal'),
        ['workflow', 'show', '--address', env.address, '-w', workflowId, '--output', 'json', ...codec],
        {
          env: childEnv(),
        },
      );
    // The history as JSON, payloads in base64: their encoding and what their data says.
    const input = (out: string) => {
      const { events } = JSON.parse(out) as {
        events: { workflowExecutionStartedEventAttributes?: { input: { payloads: WirePayload[] } } }[];
      };
      const [p] = events[0]!.workflowExecutionStartedEventAttributes!.input.payloads;
      return { encoding: Buffer.from(p!.metadata.encoding!, 'base64').toString(), data: Buffer.from(p!.data, 'base64').toString() };
    };
    const raw = input((await show()).stdout);
    expect(raw.encoding).toBe('binary/encrypted');
    expect(raw.data).not.toContain('codec-visible-target');
    const decoded = input((await show('--codec-endpoint', url, '--codec-auth', `Bearer ${token}`)).stdout);
    expect(decoded).toEqual({ encoding: 'json/plain', data: JSON.stringify({ target: 'codec-visible-target' }) });
    await client.workflow.getHandle(workflowId).terminate('test over');
  });

  it('refuses a request without the token or with a wrong one (401), and never echoes it', async () => {
    for (const headers of [{}, { Authorization: 'Bearer wrong' }, { Authorization: `Bearer ${token}x` }, { Authorization: token }]) {
      const r = await post('decode', { payloads: [] }, headers as Record<string, string>);
      expect(r.status, JSON.stringify(headers)).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
      expect(await r.text()).not.toContain(token);
    }
    expect((await post('decode', { payloads: [] })).status).toBe(200);
  });

  it('answers the CORS preflight of the UI origin only, with the headers and credentials the UI needs', async () => {
    const preflight = (origin: string) =>
      fetch(`${url}/decode`, {
        method: 'OPTIONS',
        headers: {
          Origin: origin,
          'Access-Control-Request-Method': 'POST',
          'Access-Control-Request-Headers': 'x-namespace,content-type,authorization',
        },
      });
    const ok = await preflight(ORIGIN);
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(ok.headers.get('access-control-allow-credentials')).toBe('true');
    expect(ok.headers.get('access-control-allow-headers')!.toLowerCase().split(/,\s*/).sort()).toEqual([
      'authorization',
      'content-type',
      'x-namespace',
    ]);
    expect(ok.headers.get('access-control-allow-methods')).toContain('POST');

    const other = await preflight('http://evil.example:8233');
    expect(other.status).toBe(403);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();

    // The request itself, from the UI origin, carries the CORS answer too; from another origin it is refused.
    const fromUi = await post('decode', { payloads: [] }, { Authorization: `Bearer ${token}`, Origin: ORIGIN });
    expect(fromUi.status).toBe(200);
    expect(fromUi.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    const fromOther = await post('decode', { payloads: [] }, { Authorization: `Bearer ${token}`, Origin: 'http://evil.example' });
    expect(fromOther.status).toBe(403);
  });

  it('refuses a malformed body (400) and names the key id of a payload it cannot decode', async () => {
    expect((await post('decode', { nope: 1 })).status).toBe(400);
    const [foreign] = await new AesGcmCodec([parsePayloadKey('retired', randomBytes(32).toString('base64'))]).encode([
      { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('1') },
    ]);
    const r = await post('decode', {
      payloads: [
        {
          metadata: Object.fromEntries(Object.entries(foreign!.metadata!).map(([k, v]) => [k, Buffer.from(v!).toString('base64')])),
          data: Buffer.from(foreign!.data!).toString('base64'),
        },
      ],
    });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: string }).error).toContain('"retired"');
  });
});
