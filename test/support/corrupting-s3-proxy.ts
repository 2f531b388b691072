// An HTTP proxy in front of a real S3 server that can flip one byte of the body of chosen uploads (a
// part, or a single PUT) and sign the request again with the test's credentials: as if the bytes had
// changed in the client's memory after it computed its own checksum but before it signed them. The
// request's signature and payload hash then agree with the damaged bytes, so only a checksum the
// client computed earlier (x-amz-checksum-crc32) can tell. Every other request passes as it came.
import { createHash, createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CorruptedRequest {
  method: string;
  url: string;
  /** The server's answer to the damaged request, and its S3 error code if it refused it. */
  status: number;
  code?: string;
}

export interface CorruptingS3Proxy {
  port: number;
  endpoint: string;
  /** Damages the next `count` uploads (PUT with a body) whose path matches `path`. */
  corrupt(count: number, path?: RegExp): void;
  /** The damaged requests so far, with the server's answers. */
  corrupted(): CorruptedRequest[];
  close(): Promise<void>;
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();
const rfc3986 = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** SigV4 over the request as it is now (header auth, the payload hashed): a new Authorization header. */
export function resign(
  method: string,
  url: string,
  headers: http.IncomingHttpHeaders,
  body: Buffer,
  secretAccessKey: string,
): { authorization: string; payloadHash: string } {
  const auth = String(headers.authorization);
  const m = /Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request,\s*SignedHeaders=([^,]+),/.exec(auth);
  if (!m) throw new Error(`not a SigV4 header: ${auth.slice(0, 40)}`);
  const [, accessKey, date, region, service, signed] = m as unknown as string[];
  const payloadHash = sha256(body);
  const all: Record<string, unknown> = { ...headers, 'x-amz-content-sha256': payloadHash };
  const [pathPart, query = ''] = url.split('?');
  const canonicalQuery = query
    .split('&')
    .filter(Boolean)
    .map((kv) => {
      const [k, v = ''] = kv.split('=');
      return [rfc3986(decodeURIComponent(k!)), rfc3986(decodeURIComponent(v))] as const;
    })
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const names = signed!.split(';');
  const canonicalHeaders = names
    .map(
      (n) =>
        `${n}:${String(all[n] ?? '')
          .trim()
          .replace(/\s+/g, ' ')}\n`,
    )
    .join('');
  const request = [method, pathPart, canonicalQuery, canonicalHeaders, signed, payloadHash].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', String(headers['x-amz-date']), scope, sha256(request)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, date!), region!), service!), 'aws4_request');
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  return {
    authorization: `AWS4-HMAC-SHA256 Credential=${accessKey}/${scope}, SignedHeaders=${signed}, Signature=${signature}`,
    payloadHash,
  };
}

export async function startCorruptingS3Proxy(upstreamPort: number, secretAccessKey: string): Promise<CorruptingS3Proxy> {
  let left = 0;
  let match = /./;
  const damaged: CorruptedRequest[] = [];
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers };
    // Unsigned (SigV4 never signs it), and this proxy already answered it with 100 Continue.
    delete headers.expect;
    const forward = (body: Buffer | null, onAnswer?: (status: number, text: string) => void) => {
      const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers, agent }, (upRes) => {
        if (!onAnswer) {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => {
          const text = Buffer.concat(chunks);
          onAnswer(upRes.statusCode ?? 502, text.toString());
          res.writeHead(upRes.statusCode ?? 502, upRes.headers).end(text);
        });
      });
      up.on('error', () => res.destroy());
      if (body) up.end(body);
      else req.pipe(up);
    };
    const upload = req.method === 'PUT' && Number(req.headers['content-length'] ?? 0) > 0 && match.test(req.url ?? '');
    if (!upload || left <= 0) return forward(null);
    left--;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      body[body.length >> 1]! ^= 0x01;
      const { authorization, payloadHash } = resign(req.method!, req.url!, headers, body, secretAccessKey);
      headers.authorization = authorization;
      headers['x-amz-content-sha256'] = payloadHash;
      const entry: CorruptedRequest = { method: req.method!, url: req.url!, status: 0 };
      damaged.push(entry);
      forward(body, (status, text) => {
        entry.status = status;
        entry.code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1];
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    corrupt(count, path = /./) {
      left = count;
      match = path;
    },
    corrupted: () => damaged.map((d) => ({ ...d })),
    close: async () => {
      server.closeAllConnections();
      agent.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
