// A TCP proxy in front of a real server whose answers (server -> client) can be slowed to a given
// rate: a download that takes seconds instead of milliseconds, for a test that must act while it runs.
// Requests pass at full speed. The rate applies to every connection together.
import net from 'node:net';

export interface ThrottledProxy {
  port: number;
  /** Bytes per second from the server to its clients; Infinity: no limit. */
  setRate(bytesPerSecond: number): void;
  /** How many bytes the server has sent through the proxy so far. */
  sent(): number;
  close(): Promise<void>;
}

export async function throttledProxy(upstreamPort: number, bytesPerSecond = Infinity): Promise<ThrottledProxy> {
  let rate = bytesPerSecond;
  let sent = 0;
  // One token bucket for all connections, refilled every 50 ms.
  let budget = 0;
  const waiting: (() => void)[] = [];
  const tick = setInterval(() => {
    budget = Math.min(rate === Infinity ? Infinity : rate / 20, budget + rate / 20);
    while (waiting.length && budget > 0) waiting.shift()!();
  }, 50);
  tick.unref();

  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort });
    sockets.add(client).add(upstream);
    let queue = Promise.resolve();
    const forward = async (d: Buffer) => {
      let off = 0;
      while (off < d.length) {
        if (rate !== Infinity && budget <= 0) await new Promise<void>((r) => waiting.push(r));
        const n = rate === Infinity ? d.length - off : Math.max(1, Math.min(d.length - off, Math.floor(budget)));
        budget -= n;
        sent += n;
        if (client.destroyed) return;
        client.write(d.subarray(off, off + n));
        off += n;
      }
    };
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d: Buffer) => {
      upstream.pause();
      queue = queue.then(() => forward(d)).finally(() => upstream.resume());
    });
    const end = () => (client.destroy(), upstream.destroy());
    client.on('close', end).on('error', end);
    // What was read before the server closed is still delivered, at the rate.
    upstream.on('close', () => void queue.then(() => client.end())).on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    setRate(bytes) {
      rate = bytes;
      budget = 0;
      if (rate === Infinity) while (waiting.length) waiting.shift()!();
    },
    sent: () => sent,
    close: async () => {
      clearInterval(tick);
      for (const s of sockets) s.destroy();
      while (waiting.length) waiting.shift()!();
      await new Promise((r) => server.close(r));
    },
  };
}
