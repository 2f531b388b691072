// A TCP proxy in front of a real server that can be told to stall: the next `n` connections whose
// answer grows past `afterBytes` stop receiving anything (the server stays up, the socket open), as a
// download does when a network path silently drops.
import net from 'node:net';

export interface StallingProxy {
  port: number;
  stallNext(n: number): void;
  /** How many connections have stalled so far. */
  stalled(): number;
  close(): Promise<void>;
}

export async function stallingProxy(upstreamPort: number, afterBytes = 256 * 1024): Promise<StallingProxy> {
  let toStall = 0;
  let stalled = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort });
    sockets.add(client).add(upstream);
    let sent = 0;
    let stalling = false;
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d: Buffer) => {
      if (stalling) return;
      if (toStall > 0 && sent + d.length > afterBytes) {
        toStall--;
        stalled++;
        stalling = true;
        return;
      }
      sent += d.length;
      client.write(d);
    });
    const end = () => (client.destroy(), upstream.destroy());
    client.on('close', end).on('error', end);
    upstream.on('close', () => !stalling && client.destroy()).on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    stallNext: (n) => void (toStall = n),
    stalled: () => stalled,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
