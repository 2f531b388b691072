// A TCP proxy in front of a real server that can be partitioned: told to, it stops forwarding in both
// directions and keeps every socket open (no FIN, no RST: a network path that silently drops packets);
// healed, it forwards again. A connection opened meanwhile reaches the server only after the heal.
//
// `partition()` holds what is sent meanwhile and delivers it after the heal, as TCP does for a path
// that comes back before it gives up (its retransmissions get through). `partition({ lose: true })`
// throws it away instead: the connections that lose bytes stay black holes for good (a stream with a
// hole cannot go on), as after a firewall or NAT forgot them; new connections after the heal work.
import net from 'node:net';

export interface PartitionProxy {
  port: number;
  /** redis://127.0.0.1:<port> */
  url: string;
  partition(opts?: { lose?: boolean }): void;
  heal(): void;
  isPartitioned(): boolean;
  /** Closes the connections a lossy partition turned into black holes (as a firewall that sends RST at last). */
  resetLost(): number;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

export async function partitionProxy(upstreamPort: number): Promise<PartitionProxy> {
  let cut: false | 'hold' | 'lose' = false;
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  /** What waits for the heal: resuming held sockets, connecting upstream, passing on a close. */
  let onHeal: (() => void)[] = [];
  const later = (fn: () => void) => (cut ? onHeal.push(fn) : fn());
  /** Closers of the connections that lost bytes. */
  const lost = new Set<() => void>();

  const server = net.createServer((client) => {
    accepted++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    let upstream: net.Socket | undefined;
    let blackHole = false;
    let closed = false;
    const closeBoth = () => {
      lost.delete(closeBoth);
      if (closed) return;
      closed = true;
      client.destroy();
      upstream?.destroy();
    };
    /** Forwards `from` to `to` while the path is up; holds or loses what comes during a partition. */
    const forward = (from: net.Socket, to: () => net.Socket | undefined) => {
      from.on('data', (d: Buffer) => {
        if (cut === 'lose' || blackHole) {
          blackHole = true;
          lost.add(closeBoth);
          return;
        }
        const dest = to();
        if (!dest) return;
        if (!dest.write(d)) {
          from.pause();
          dest.once('drain', () => later(() => from.resume()));
        }
      });
      // A close is news that travels the same path: it waits for the heal.
      from.on('end', () => later(() => (blackHole ? closeBoth() : to()?.end())));
      from.on('close', () => later(closeBoth));
      from.on('error', () => later(closeBoth));
    };
    const connectUpstream = () => {
      if (closed) return;
      upstream = net.connect({ host: '127.0.0.1', port: upstreamPort });
      sockets.add(upstream);
      upstream.on('close', () => sockets.delete(upstream!));
      if (cut === 'hold') {
        upstream.pause();
        onHeal.push(() => upstream!.resume());
      }
      forward(upstream, () => client);
    };
    forward(client, () => upstream);
    if (cut) {
      // Held until the heal: the server sees this connection only once the path is back.
      client.pause();
      onHeal.push(() => (connectUpstream(), client.resume()));
    } else {
      connectUpstream();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    partition(opts = {}) {
      if (cut) return;
      cut = opts.lose ? 'lose' : 'hold';
      if (cut === 'hold') {
        for (const s of sockets) {
          if (s.destroyed || s.isPaused()) continue;
          s.pause();
          onHeal.push(() => s.resume());
        }
      }
    },
    heal() {
      cut = false;
      const queued = onHeal;
      onHeal = [];
      for (const fn of queued) fn();
    },
    isPartitioned: () => cut !== false,
    resetLost() {
      const n = lost.size;
      for (const close of [...lost]) close();
      return n;
    },
    accepted: () => accepted,
    close: async () => {
      cut = false;
      onHeal = [];
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
