// A Temporal CLI dev server that keeps its state in a SQLite file on a fixed port, so that a test can
// kill it (SIGKILL: a crash, or SIGTERM) and start it again with every history, timer and task queue
// as it was. Headless, on 127.0.0.1, with the runbooks' search attributes registered.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { Connection } from '@temporalio/client';
import { searchAttributeArgs } from '../../common/search-attributes';
import { toolPath } from '../../domain/tools';
import { freePort } from './redis';

export interface RestartableTemporal {
  address: string;
  port: number;
  /** The server's process now (a new one after each restart). */
  process(): ChildProcess;
  /** Kills the server (SIGKILL by default: a crash) and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port and database; resolves once it answers. */
  start(): Promise<void>;
  /** kill, then start. */
  restart(signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

export async function startRestartableTemporal(dbFile: string, port?: number): Promise<RestartableTemporal> {
  const grpcPort = port ?? (await freePort());
  // Fixed too: a restarted server must not find its HTTP or metrics port taken by a random choice.
  const [httpPort, metricsPort] = [await freePort(), await freePort()];
  let child: ChildProcess | undefined;
  let output = '';

  const start = async () => {
    output = '';
    const c = spawn(
      toolPath('temporal'),
      [
        'server',
        'start-dev',
        '--db-filename',
        dbFile,
        '--ip',
        '127.0.0.1',
        '--port',
        String(grpcPort),
        '--http-port',
        String(httpPort),
        '--metrics-port',
        String(metricsPort),
        '--headless',
        '--log-level',
        'error',
        ...searchAttributeArgs(),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const collect = (d: Buffer) => void (output = (output + d.toString()).slice(-4000));
    c.stdout!.on('data', collect);
    c.stderr!.on('data', collect);
    child = c;
    const deadline = Date.now() + 30_000;
    // The port opens a moment before the frontend serves: wait for a real answer.
    for (;;) {
      if (c.exitCode !== null) throw new Error(`temporal dev server exited with ${c.exitCode}: ${output.trim().slice(-800)}`);
      if (Date.now() > deadline) throw new Error(`temporal dev server did not answer within 30 s: ${output.trim().slice(-800)}`);
      if (await portOpen(grpcPort)) {
        try {
          const conn = await Connection.connect({ address: `127.0.0.1:${grpcPort}`, connectTimeout: '2s' });
          try {
            await conn.workflowService.getSystemInfo({});
            await conn.workflowService.describeNamespace({ namespace: 'default' });
            return;
          } finally {
            await conn.close();
          }
        } catch {
          // not ready yet
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    address: `127.0.0.1:${grpcPort}`,
    port: grpcPort,
    process: () => child!,
    kill,
    start,
    restart: async (signal) => {
      await kill(signal);
      await start();
    },
    stop: () => kill('SIGKILL'),
  };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}
