// The worker as a Redis master for one full sync: it answers a replica's handshake (PING, AUTH,
// REPLCONF, PSYNC) with +FULLRESYNC and then the backup's RDB bytes as they are on disk. Nothing is
// loaded or re-serialised on our side, so making a backup live costs the target's own load time plus
// a local copy, where a scratch master costs a load, a fork and a second serialisation first.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import net from 'node:net';

export interface RdbMaster {
  host: string;
  port: number;
  /** The replica must send it (CONFIG SET masterauth): only the target gets the data. */
  password: string;
  /** Resolves when an authenticated replica has been sent the whole RDB. */
  sent: Promise<void>;
  close(): Promise<void>;
}

/** Parses RESP arrays and inline commands from a byte buffer; returns the commands and what is left. */
export function parseCommands(buf: Buffer): { commands: string[][]; rest: Buffer } {
  const commands: string[][] = [];
  let pos = 0;
  for (;;) {
    if (pos >= buf.length) break;
    if (buf[pos] === 0x2a) {
      // *<n>\r\n then n times $<len>\r\n<bytes>\r\n
      let p = pos;
      const lineEnd = buf.indexOf('\r\n', p);
      if (lineEnd < 0) break;
      const n = Number(buf.subarray(p + 1, lineEnd).toString());
      p = lineEnd + 2;
      const args: string[] = [];
      let complete = true;
      for (let i = 0; i < n; i++) {
        const e = buf.indexOf('\r\n', p);
        if (e < 0 || buf[p] !== 0x24) {
          complete = false;
          break;
        }
        const len = Number(buf.subarray(p + 1, e).toString());
        if (buf.length < e + 2 + len + 2) {
          complete = false;
          break;
        }
        args.push(buf.subarray(e + 2, e + 2 + len).toString());
        p = e + 2 + len + 2;
      }
      if (!complete) break;
      commands.push(args);
      pos = p;
    } else {
      const e = buf.indexOf('\n', pos);
      if (e < 0) break;
      const line = buf.subarray(pos, e).toString().trim();
      if (line) commands.push(line.split(/\s+/));
      pos = e + 1;
    }
  }
  return { commands, rest: buf.subarray(pos) };
}

export async function serveRdb(rdbFile: string, host: string): Promise<RdbMaster> {
  const size = (await stat(rdbFile)).size;
  // The scratch servers' prefix: a retry after a killed worker recognises it as not the target's own.
  const password = `rr-scratch-master-${randomBytes(20).toString('hex')}`;
  const replid = randomBytes(20).toString('hex');
  let resolveSent!: () => void;
  let rejectSent!: (e: Error) => void;
  const sent = new Promise<void>((res, rej) => ((resolveSent = res), (rejectSent = rej)));
  sent.catch(() => {});
  const sockets = new Set<net.Socket>();

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending: Buffer = Buffer.alloc(0);
    let authed = false;
    let streaming = false;
    socket.on('data', (data: Buffer) => {
      if (streaming) return; // REPLCONF ACKs from the replica: nothing to answer
      const { commands, rest } = parseCommands(Buffer.concat([pending, data]));
      pending = rest;
      if (pending.length > 64 * 1024) return socket.destroy();
      for (const [cmd = '', ...args] of commands) {
        const name = cmd.toUpperCase();
        if (name === 'AUTH') {
          authed = args.at(-1) === password;
          socket.write(authed ? '+OK\r\n' : '-WRONGPASS invalid password\r\n');
        } else if (!authed) {
          socket.write('-NOAUTH Authentication required.\r\n');
        } else if (name === 'PING') {
          socket.write('+PONG\r\n');
        } else if (name === 'REPLCONF') {
          socket.write('+OK\r\n');
        } else if (name === 'PSYNC' || name === 'SYNC') {
          streaming = true;
          if (name === 'PSYNC') socket.write(`+FULLRESYNC ${replid} 0\r\n`);
          socket.write(`$${size}\r\n`);
          const file = createReadStream(rdbFile, { highWaterMark: 1 << 20 });
          file.on('error', (e) => (rejectSent(e), socket.destroy()));
          file.on('end', () => resolveSent());
          file.pipe(socket, { end: false });
          // The replica now loads; a master pings now and then so that it does not time out.
          const ping = setInterval(() => socket.write('*1\r\n$4\r\nPING\r\n'), 5000);
          socket.on('close', () => clearInterval(ping));
          return;
        } else {
          socket.write('+OK\r\n');
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    host,
    port,
    password,
    sent,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
