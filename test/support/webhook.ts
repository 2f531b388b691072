// A webhook receiver for notification tests: records every JSON body POSTed to it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SlackBody } from '../../domain/notify';

export interface WebhookServer {
  url: string;
  received: SlackBody[];
  /** The first body whose event type is this one that arrives after `since` bodies were received. */
  waitFor(eventType: string, since?: number, timeoutMs?: number): Promise<SlackBody>;
  close(): Promise<void>;
}

/** `refuse`: answer the first this many requests with HTTP 500 (not recorded). */
export async function startWebhook(opts: { refuse?: number } = {}): Promise<WebhookServer & { refused: number }> {
  const received: SlackBody[] = [];
  let refused = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (refused < (opts.refuse ?? 0)) {
        refused++;
        res.writeHead(500).end();
        return;
      }
      received.push(JSON.parse(body) as SlackBody);
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/T000/B000/secret-token`,
    received,
    get refused() {
      return refused;
    },
    async waitFor(eventType, since = 0, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = received.slice(since).find((b) => b.metadata?.event_type === `redis_runbooks_${eventType.replace(/-/g, '_')}`);
        if (hit) return hit;
        if (Date.now() > deadline) throw new Error(`no ${eventType} notification within ${timeoutMs} ms (got ${received.length})`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
