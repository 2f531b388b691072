// Throwaway redis-server processes (tests, demo, bench): each on a free port in its own temp dir, never a system Redis.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { toolPath } from '../../domain/tools';

export interface RedisProcess {
  host: string;
  port: number;
  dir: string;
  url: string;
  password?: string;
  process: ChildProcess;
  client(): Redis;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface StartRedisOptions {
  password?: string;
  /** Extra `--name value` pairs, e.g. ['--appendonly', 'yes']. */
  args?: string[];
  dir?: string;
  port?: number;
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisProcess> {
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'rr-redis-'));
  const port = opts.port ?? (await freePort());
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
    '--repl-diskless-sync-delay',
    '0',
    '--enable-debug-command',
    'yes',
    '--daemonize',
    'no',
    '--logfile',
    path.join(dir, 'redis.log'),
    ...(opts.password ? ['--requirepass', opts.password] : []),
    ...(opts.args ?? []),
  ];
  const child = spawn(toolPath('redis-server'), args, { stdio: 'ignore' });
  const host = '127.0.0.1';
  await waitForPing(host, port, opts.password, child);
  const clients: Redis[] = [];
  return {
    host,
    port,
    dir,
    url: `redis://${host}:${port}`,
    password: opts.password,
    process: child,
    client() {
      const c = new Redis({ host, port, password: opts.password, lazyConnect: false, maxRetriesPerRequest: 1 });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.disconnect();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPing(host: string, port: number, password: string | undefined, child: ChildProcess) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited with ${child.exitCode}`);
    const c = new Redis({ host, port, password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => {}); // refused until the server listens
    try {
      await c.connect();
      if ((await c.ping()) === 'PONG') return;
    } catch {
      // not up yet
    } finally {
      c.disconnect();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server on port ${port} did not answer PING within 10 s`);
}

/**
 * A config file for a redis-server run the way a host runs one (daemonized, with a pidfile), so that
 * a runbook can stop it and start it again with a shell command. Returns the file's path.
 */
export function writeDaemonConf(dir: string, port: number, extra: string[] = []): string {
  const conf = path.join(dir, 'redis.conf');
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      'dbfilename dump.rdb',
      'save ""',
      'repl-diskless-sync-delay 0',
      'enable-debug-command yes',
      'daemonize yes',
      `pidfile ${path.join(dir, 'redis.pid')}`,
      `logfile ${path.join(dir, 'redis.log')}`,
      ...extra,
      '',
    ].join('\n'),
  );
  return conf;
}

/** Waits until a redis-server on the port answers and has loaded its dataset. */
export async function waitLoaded(port: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: true,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    c.on('error', () => {});
    try {
      await c.connect();
      // Not includes('loading:0'): Redis 7 also reports async_loading:0 while it loads.
      if (/^loading:0\r?$/m.test(await c.info('persistence'))) return;
    } catch {
      // starting or loading
    } finally {
      c.disconnect();
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} was not up and loaded within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
