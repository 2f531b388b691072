// The backup runbook against a server that passes for Redis during preflight and then lies on the
// replication link: every kind of lie must end the run with a clear failure and no backup listed.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listBackups } from '../../domain/catalog';
import { storeRegistry } from '../../domain/storage';
import { failureOf } from '../support/failure';
import { startRestoreEnv, type RestoreEnv } from '../support/restore-env';
import { parseCommand } from '../support/resp';

type Mode = 'garbage' | 'oversized' | 'stall' | 'close-mid' | 'not-rdb' | 'bad-body';
const MODES: Mode[] = ['garbage', 'oversized', 'stall', 'close-mid', 'not-rdb', 'bad-body'];

interface FakeRedis {
  port: number;
  /** Commands seen, by upper-cased name. */
  seen: Map<string, number>;
  close(): Promise<void>;
}

const INFO = [
  '# Server',
  'redis_version:7.0.15',
  'redis_mode:standalone',
  'os:Linux',
  '# Replication',
  'role:master',
  'connected_slaves:0',
  '# Persistence',
  'loading:0',
  'rdb_last_bgsave_status:ok',
  'aof_enabled:0',
  '# Memory',
  'used_memory:1048576',
  '# Keyspace',
  'db0:keys=1,expires=0,avg_ttl=0',
  '',
].join('\r\n');

const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const MAX_BUFFER = 64 * 1024; // a client that sends more than this without a full command is dropped

function onSync(mode: Mode, sock: net.Socket): void {
  switch (mode) {
    case 'oversized':
      sock.write('\n\n$99999999999999999\r\nREDIS0010');
      return;
    case 'stall':
      sock.write('\n$1000\r\n'); // and then nothing, ever
      return;
    case 'close-mid':
      sock.write(Buffer.concat([Buffer.from('$100000\r\nREDIS0010'), randomBytes(4000)]), () => sock.destroy());
      return;
    case 'not-rdb':
      sock.write('$20\r\nthis is not an rdb!!');
      return;
    case 'bad-body': {
      // A real header, then bytes no RDB has: only redis-check-rdb can tell.
      const body = Buffer.concat([Buffer.from('REDIS0010'), Buffer.alloc(491, 0xf1)]);
      sock.write(Buffer.concat([Buffer.from(`$${body.length}\r\n`), body]));
      return;
    }
    default:
      sock.write('-ERR not reached\r\n');
  }
}

async function fakeRedis(mode: Mode): Promise<FakeRedis> {
  const sockets = new Set<net.Socket>();
  const seen = new Map<string, number>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const parsed = parseCommand(buf);
        if (!parsed) {
          if (buf.length > MAX_BUFFER) sock.destroy();
          return;
        }
        buf = buf.slice(parsed.used);
        const [name = '', ...rest] = parsed.args;
        const cmd = name.toUpperCase();
        seen.set(cmd, (seen.get(cmd) ?? 0) + 1);
        if (sock.destroyed) return;
        switch (cmd) {
          case 'INFO':
            sock.write(bulk(INFO));
            break;
          case 'CLIENT':
          case 'SELECT':
          case 'QUIT':
            sock.write('+OK\r\n');
            break;
          case 'PING':
            sock.write('+PONG\r\n');
            break;
          case 'SCAN':
            sock.write(`*2\r\n${bulk('0')}*1\r\n${bulk('user:1')}`);
            break;
          case 'REPLCONF':
            sock.write(mode === 'garbage' ? 'HTTP/1.1 400 Bad Request\r\n' : '+OK\r\n');
            break;
          case 'SYNC':
          case 'PSYNC':
            onSync(mode, sock);
            break;
          default:
            sock.write(`-ERR unknown command '${name}', with args beginning with: ${rest.slice(0, 1).join(' ')}\r\n`);
        }
      }
    });
  });
  server.maxConnections = 16;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const fakes = new Map<Mode, FakeRedis>();
let t: RestoreEnv;

beforeAll(async () => {
  for (const mode of MODES) fakes.set(mode, await fakeRedis(mode));
  t = await startRestoreEnv('hostile-redis', () =>
    MODES.map(
      (mode) => `
  ${mode}:
    url: redis://127.0.0.1:${fakes.get(mode)!.port}
    destinations: [disk]
    captureIdleTimeout: 1s
    retryFor: 4s
`,
    ).join(''),
  );
});

afterAll(async () => {
  await t?.close();
  await Promise.all([...fakes.values()].map((f) => f.close()));
});

const cases: { mode: Mode; type: string; message: RegExp; attempts: number }[] = [
  {
    mode: 'garbage',
    type: 'CAPTURE_FAILED',
    message: /unexpected reply from 127\.0\.0\.1:\d+ to REPLCONF capa eof: "HTTP\/1\.1 400 Bad Request"/,
    attempts: 3,
  },
  {
    mode: 'oversized',
    type: 'CAPTURE_FAILED',
    message: /announced an RDB of 99999999999999999 bytes, more than the \d+-byte limit/,
    attempts: 3,
  },
  {
    mode: 'stall',
    type: 'CAPTURE_FAILED',
    message: /stalled: nothing from 127\.0\.0\.1:\d+ for 1000 ms after 0 of 1000 bytes/,
    attempts: 3,
  },
  { mode: 'close-mid', type: 'CAPTURE_FAILED', message: /closed the connection after \d+ of 100000 bytes/, attempts: 3 },
  { mode: 'not-rdb', type: 'RDB_INVALID', message: /not an RDB file: no "REDIS" magic \(starts with "this is n"\)/, attempts: 1 },
  { mode: 'bad-body', type: 'RDB_INVALID', message: /redis-check-rdb rejected the RDB/, attempts: 1 },
];

describe('backupRedis against a hostile server', () => {
  it.each(cases)('$mode: fails with $type, lists no backup', { timeout: 30_000 }, async ({ mode, type, message, attempts }) => {
    const fake = fakes.get(mode)!;
    const t0 = Date.now();
    const f = await failureOf(t.backup(mode));
    const elapsed = Date.now() - t0;
    expect(f.type).toBe(type);
    expect(f.message).toMatch(message);
    // The preflight passed: it was the replication link that lied.
    expect(fake.seen.get('INFO')).toBeGreaterThanOrEqual(2);
    expect(fake.seen.get('SCAN')).toBeGreaterThanOrEqual(1);
    // Retryable failures are retried with backoff for the target's retryFor (4 s here), then given up,
    // saying so; a bad RDB is not retried.
    const handshakes = mode === 'garbage' ? (fake.seen.get('REPLCONF') ?? 0) : (fake.seen.get('SYNC') ?? 0);
    if (attempts === 1) expect(handshakes).toBe(1);
    else {
      expect(handshakes).toBeGreaterThanOrEqual(2);
      expect(handshakes).toBeLessThanOrEqual(attempts + 1);
      expect(f.message).toMatch(/gave up after \d+ attempts over \d+ s/);
    }
    expect(elapsed).toBeLessThan(20_000);
    expect(await listBackups(t.config, storeRegistry(t.config), mode)).toEqual([]);
  });
});
