// A TCP proxy in front of a real server that moves bytes towards it no faster than a set rate, shared
// by all connections (and back at another rate, or at full speed): a slow but working network path,
// as a thin uplink to a bucket is. Bytes keep moving the whole time, just slowly.
import net from 'node:net';

export interface ThrottleProxy {
  port: number;
  endpoint: string;
  /** Bytes sent towards the server so far, and when the first and the last of them went. */
  uploaded(): { bytes: number; first?: number; last?: number };
  close(): Promise<void>;
}

const SLICE = 16 * 1024;

/** Paces the writes of one direction: each slice goes when the rate allows. */
class Pace {
  private next = 0;
  constructor(private readonly bytesPerSecond: number) {}
  /** Milliseconds to wait before sending `n` more bytes. */
  reserve(n: number): number {
    const now = Date.now();
    const start = Math.max(now, this.next);
    this.next = start + (n * 1000) / this.bytesPerSecond;
    return start - now;
  }
}

export async function startThrottleProxy(upstreamPort: number, rate: { up: number; down?: number }): Promise<ThrottleProxy> {
  const up = new Pace(rate.up);
  const down = rate.down ? new Pace(rate.down) : undefined;
  const stats = { bytes: 0, first: undefined as number | undefined, last: undefined as number | undefined };
  const sockets = new Set<net.Socket>();

  /** Copies `from` to `to` at the pace, holding `from` (backpressure) while its bytes wait their turn. */
  const relay = (from: net.Socket, to: net.Socket, pace: Pace, count: boolean) => {
    const queue: Buffer[] = [];
    let pumping = false;
    const pump = async () => {
      pumping = true;
      from.pause();
      while (queue.length) {
        const chunk = queue.shift()!;
        for (let i = 0; i < chunk.length; i += SLICE) {
          const slice = chunk.subarray(i, i + SLICE);
          const wait = pace.reserve(slice.length);
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          if (to.destroyed) return;
          to.write(slice);
          if (count) {
            const now = Date.now();
            stats.bytes += slice.length;
            stats.first ??= now;
            stats.last = now;
          }
        }
      }
      pumping = false;
      if (!from.destroyed) from.resume();
      if (ended && !to.destroyed) to.end();
    };
    let ended = false;
    from.on('data', (d: Buffer) => {
      queue.push(d);
      if (!pumping) void pump();
    });
    from.on('end', () => {
      ended = true;
      if (!pumping && !to.destroyed) to.end();
    });
    from.on('close', () => {
      // Gone without an end (a reset): nothing more will come, so the other side goes too.
      if (!ended) to.destroy();
    });
  };

  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort });
    sockets.add(client).add(upstream);
    relay(client, upstream, up, true);
    if (down) relay(upstream, client, down, false);
    else upstream.pipe(client);
    const end = () => (client.destroy(), upstream.destroy(), sockets.delete(client), sockets.delete(upstream));
    // A side that closes ends the other once what it sent is passed on (relay ends it); an error ends both.
    client.on('close', end).on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    uploaded: () => ({ ...stats }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
