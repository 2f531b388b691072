// `runbook codec-server`: Temporal's remote codec protocol (POST /encode and /decode, JSON payloads in
// base64) over the configured payload keys, so that the Temporal UI and the `temporal` CLI can show
// what the workers encrypted. Every request must carry the bearer token; the browser may call it only
// from the one UI origin given, with credentials, as the UI does.
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload } from '@temporalio/common';
import { Command } from 'commander';
import { z } from 'zod';
import { RunbookError } from '../../common/errors';
import { secretRef } from '../../common/config';
import { resolveSecret } from '../../domain/secrets';
import type { AesGcmCodec } from '../../worker/payload-codec';
import { action, loadCliConfig, parseOptions, type GlobalOptions } from '../context';

const MAX_BODY = 16 * 1024 * 1024;

const options = z.object({
  port: z
    .string()
    .regex(/^\d{1,5}$/, 'a port number')
    .transform(Number)
    .pipe(z.number().max(65535, 'a port number up to 65535')),
  host: z.string().min(1, 'a host name or address').default('127.0.0.1'),
  origin: z.string().refine((o) => {
    try {
      return new URL(o).origin === o;
    } catch {
      return false;
    }
  }, 'an origin such as http://localhost:8233 (scheme, host and port; no path, no trailing "/")'),
  token: secretRef,
});

/** Proto3 JSON of Payloads, as the codec protocol carries it. */
const body = z.object({
  payloads: z.array(
    z.object({
      metadata: z.record(z.string(), z.base64()).optional(),
      data: z.base64().optional(),
    }),
  ),
});

const digest = (s: string) => createHash('sha256').update(s).digest();

export interface CodecServer {
  url: string;
  close(): Promise<void>;
}

export async function startCodecServer(opts: {
  codec: AesGcmCodec;
  token: string;
  origin: string;
  host: string;
  port: number;
}): Promise<CodecServer> {
  // Compared as digests: equal lengths for timingSafeEqual, and no early exit on the first byte.
  const want = digest(`Bearer ${opts.token}`);
  const authorized = (header: string | undefined) => header !== undefined && timingSafeEqual(digest(header), want);

  const server = http.createServer((req, res) => {
    const send = (status: number, json?: unknown, headers: http.OutgoingHttpHeaders = {}) => {
      res.writeHead(status, { ...(json === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers });
      res.end(json === undefined ? undefined : JSON.stringify(json));
    };
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== opts.origin) return send(403, { error: 'origin not allowed' });
    if (origin !== undefined) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    res.setHeader('Vary', 'Origin');
    const op = /\/(encode|decode)$/.exec(new URL(req.url ?? '/', 'http://codec').pathname)?.[1] as 'encode' | 'decode' | undefined;
    if (!op) return send(404, { error: 'POST /encode or /decode' });
    if (req.method === 'OPTIONS') {
      // A preflight carries no credentials: answered for the allowed origin only (checked above).
      if (origin === undefined) return send(400, { error: 'a CORS preflight needs an Origin' });
      return send(204, undefined, {
        'Access-Control-Allow-Methods': 'POST, OPTIONS',
        'Access-Control-Allow-Headers': 'X-Namespace, Content-Type, Authorization',
        'Access-Control-Max-Age': '600',
      });
    }
    if (req.method !== 'POST') return send(405, { error: 'POST /encode or /decode' }, { Allow: 'POST, OPTIONS' });
    if (!authorized(req.headers.authorization))
      return send(401, { error: 'a valid Authorization: Bearer token is needed' }, { 'WWW-Authenticate': 'Bearer' });
    // X-Namespace is accepted and not needed: the keys, not the namespace, decide what decodes.
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
      // Answered once, then the connection closes: the rest of the body is dropped unread.
      else if (!res.headersSent) send(413, { error: `a request body over ${MAX_BODY} bytes` }, { Connection: 'close' });
    });
    req.on('end', () => {
      if (size > MAX_BODY) return;
      let parsed: z.infer<typeof body>;
      try {
        parsed = body.parse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        return send(400, { error: 'expected {"payloads":[{"metadata":{"k":"<base64>"},"data":"<base64>"}]}' });
      }
      const payloads: Payload[] = parsed.payloads.map((p) => ({
        metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
        data: Buffer.from(p.data ?? '', 'base64'),
      }));
      opts.codec[op](payloads).then(
        (out) =>
          send(200, {
            payloads: out.map((p) => ({
              metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')])),
              data: Buffer.from(p.data ?? []).toString('base64'),
            })),
          }),
        (err: unknown) =>
          send(
            400,
            err instanceof RunbookError ? { error: err.message, code: err.code, hint: err.hint } : { error: `cannot ${op} the payloads` },
          ),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new RunbookError(
          'BAD_INPUT',
          `cannot serve on ${opts.host}:${opts.port}: ${err.code ?? err.message}`,
          'choose another --port or --host',
        ),
      ),
    );
    server.listen(opts.port, opts.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export const codecServerCommand = new Command('codec-server')
  .description('serve the payload keys as a Temporal remote codec, for the Temporal UI and `temporal --codec-endpoint`')
  .requiredOption('--port <port>', 'the port to serve on (0: any free port)')
  .option('--host <host>', 'the address to serve on', '127.0.0.1')
  .requiredOption('--origin <origin>', 'the Temporal UI origin browsers may call from, e.g. http://localhost:8233')
  .requiredOption('--token <ref>', 'the bearer token every request must carry, by reference: env:NAME or file:PATH')
  .action(
    action(async (raw: unknown, cmd: Command) => {
      const opts = parseOptions(options, raw);
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = loadCliConfig(global);
      const { AesGcmCodec, payloadKeysOf } = await import('../../worker/payload-codec');
      const keys = payloadKeysOf(config);
      if (!keys) {
        throw new RunbookError(
          'CONFIG_INVALID',
          'temporal.payloadKeys is not set: there is nothing to decode',
          'set the keys the workers use',
        );
      }
      const token = resolveSecret(opts.token, '--token');
      if (token.length < 16) {
        throw new RunbookError(
          'SECRET_UNRESOLVED',
          `--token ${opts.token}: shorter than 16 characters`,
          'make one with `openssl rand -base64 32`',
        );
      }
      const served = await startCodecServer({
        codec: new AesGcmCodec(keys, { allowPlaintext: true }),
        token,
        origin: opts.origin,
        host: opts.host,
        port: opts.port,
      });
      if (global.json) process.stdout.write(`${JSON.stringify({ url: served.url, origin: opts.origin })}\n`);
      else process.stderr.write(`codec server on ${served.url} for ${opts.origin}; Ctrl-C to stop\n`);
      await new Promise<void>((resolve) => {
        for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void served.close().then(resolve));
      });
    }),
  );
