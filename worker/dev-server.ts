// The embedded Temporal: the official CLI's dev server, with its state in one SQLite file so that
// histories and schedules survive a restart.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RunbookError } from '../common/errors';
import { Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { SEARCH_ATTRIBUTES, searchAttributeArgs } from '../common/search-attributes';
import { toolPath } from '../domain/tools';

export interface DevServer {
  address: string;
  uiUrl: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface DevServerOptions {
  dbFile: string;
  port: number;
  uiPort?: number;
  namespace?: string;
  log?: (line: string) => void;
}

export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  mkdirSync(path.dirname(path.resolve(opts.dbFile)), { recursive: true, mode: 0o700 });
  const uiPort = opts.uiPort ?? opts.port + 1000;
  if (await portOpen(opts.port)) {
    throw new RunbookError(
      'TEMPORAL_UNAVAILABLE',
      `port ${opts.port} is already in use, so the embedded Temporal cannot start`,
      'stop what uses it (another `runbook dev`?), or set temporal.devServer.port, or temporal.address to use that server',
    );
  }
  const args = [
    'server',
    'start-dev',
    '--db-filename',
    opts.dbFile,
    '--ip',
    '127.0.0.1',
    '--port',
    String(opts.port),
    '--ui-port',
    String(uiPort),
    '--namespace',
    opts.namespace ?? 'default',
    '--log-level',
    'error',
    // Drills are listed and filtered by these.
    ...searchAttributeArgs(),
  ];
  const child = spawn(toolPath('temporal'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
    opts.log?.(d.toString());
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 30_000;
  while (!(await portOpen(opts.port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new RunbookError(
        'TEMPORAL_UNAVAILABLE',
        `the Temporal dev server did not start: ${output.trim().slice(-800)}`,
        'run `npm run tools` to install it',
      );
    }
    await sleep(100);
  }
  try {
    await ensureSearchAttributes(`127.0.0.1:${opts.port}`, opts.namespace ?? 'default');
  } catch (err) {
    child.kill('SIGKILL');
    throw new RunbookError(
      'TEMPORAL_UNAVAILABLE',
      `the Temporal dev server started, but its search attributes could not be set up: ${(err as Error).message.split('\n')[0]}`,
      'start it again; if it persists, move the database file aside',
    );
  }
  return {
    address: `127.0.0.1:${opts.port}`,
    uiUrl: `http://127.0.0.1:${uiPort}`,
    process: child,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(5000)]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    },
  };
}

/**
 * The flags register the search attributes in a new database only: one made by an older version keeps
 * what it had. Whatever is missing is added here.
 */
async function ensureSearchAttributes(address: string, namespace: string): Promise<void> {
  // The port opens a moment before the namespace is ready: a few tries.
  for (let attempt = 1; ; attempt++) {
    try {
      return await addMissingSearchAttributes(address, namespace);
    } catch (err) {
      if (attempt >= 20) throw err;
      await sleep(250);
    }
  }
}

async function addMissingSearchAttributes(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
    const missing = Object.entries(SEARCH_ATTRIBUTES).filter(([name]) => !(name in (customAttributes ?? {})));
    if (missing.length === 0) return;
    const { IndexedValueType } = proto.temporal.api.enums.v1;
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(
        missing.map(([name, type]) => [
          name,
          type === 'Keyword' ? IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD : IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
        ]),
      ),
    });
  } finally {
    await connection.close();
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
