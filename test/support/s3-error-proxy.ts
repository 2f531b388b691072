// An HTTP proxy in front of a real S3 server that can be told to err for a while: during the window
// every request is answered, in turn, 500 InternalError and 503 SlowDown (throttling), the way S3
// answers in a bad minute; outside it every request goes to the server as it came (signature intact).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface S3ErrorProxy {
  port: number;
  endpoint: string;
  /** Errs for `ms`, counted from the next request that arrives (so the window covers the run that sends it). */
  failFor(ms: number): void;
  /** Answers given so far: the errors by status, and the requests passed through. */
  counts(): { 500: number; 503: number; passed: number };
  /** When the window opened and closed (epoch ms), once it has. */
  window(): { from?: number; until?: number };
  close(): Promise<void>;
}

const ERRORS = [
  { status: 500, code: 'InternalError', message: 'We encountered an internal error. Please try again.' },
  { status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' },
] as const;

export async function startS3ErrorProxy(upstreamPort: number): Promise<S3ErrorProxy> {
  let armedMs = 0;
  let from: number | undefined;
  let until: number | undefined;
  let n = 0;
  const counts = { 500: 0, 503: 0, passed: 0 };
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const now = Date.now();
    if (armedMs > 0 && from === undefined) {
      from = now;
      until = now + armedMs;
    }
    if (until !== undefined && now < until) {
      const e = ERRORS[n++ % 2]!;
      counts[e.status]++;
      // The body is read to its end first: the client then reads the answer, not a reset.
      req.resume();
      req.on('end', () => {
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${e.code}</Code><Message>${e.message}</Message><RequestId>fault-${n}</RequestId></Error>`;
        res.writeHead(e.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) }).end(body);
      });
      return;
    }
    counts.passed++;
    const headers = { ...req.headers };
    // Unsigned (SigV4 never signs it), and this proxy already answered it with 100 Continue.
    delete headers.expect;
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers, agent }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    failFor(ms) {
      armedMs = ms;
      from = until = undefined;
    },
    counts: () => ({ ...counts }),
    window: () => ({ from, until }),
    close: async () => {
      server.closeAllConnections();
      agent.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
