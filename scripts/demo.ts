// npm run demo: the backup runbook on embedded defaults. Starts the Temporal dev server (state in
// .runbook/temporal.sqlite), a throwaway Redis filled with sample data of every type, and a worker;
// then runs the real CLI: a backup, the list of backups, a verification, a restore drill into a
// sandbox, the health check and the HTML report.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRunbookWorker } from '../worker';
import { startDevServer } from '../worker/dev-server';
import { parseConfig } from '../common/config';
import { freePort, startRedis } from './lib/redis-server';
import { fillDataset } from './lib/sample-data';

const root = path.resolve('.runbook');
const demoDir = path.join(root, 'demo');
mkdirSync(demoDir, { recursive: true, mode: 0o700 });

const say = (line: string) => process.stdout.write(`\n==> ${line}\n`);

const redisDir = mkdtempSync(path.join(os.tmpdir(), 'runbook-demo-redis-'));
const redis = await startRedis({ dir: redisDir });
await fillDataset(redis.client(), { keys: 20_000 });
say(`a throwaway Redis on ${redis.url}, filled with strings, hashes, lists, sets, sorted sets, a stream, TTLs and a 5 MiB value`);

// 7233 is Temporal's usual port; if something already uses it, the demo takes a free one.
const port = (await portFree(7233)) ? 7233 : await freePort();
const configFile = path.join(demoDir, 'runbook.yaml');
const configText = `# Written by npm run demo. A config of your own starts from runbook.example.yaml.
temporal:
  devServer: { port: ${port}, dbFile: ${path.join(root, 'temporal.sqlite')} }
storage:
  local: { type: local, path: ${path.join(demoDir, 'backups')} }
targets:
  demo:
    url: ${redis.url}
    destinations: [local]
    compression: zstd
    retention: { keepLast: 3 }
    rpo: 24h
    rto: 15m
    smoke: { exists: ["user:*", "session:*"] }
    drill: { interval: 35d }
`;
writeFileSync(configFile, configText);
const config = parseConfig(configText, configFile);

const server = await startDevServer({ dbFile: config.temporal.devServer.dbFile, port, namespace: 'default' });
say(`Temporal dev server on ${server.address} (UI ${server.uiUrl}), state in ${config.temporal.devServer.dbFile}`);
const { worker, close } = await createRunbookWorker({ config, address: server.address });
const running = worker.run();

let failed = false;
try {
  // Asynchronous: the worker serving these commands runs in this very process.
  const runbook = async (...args: string[]) => {
    process.stdout.write(`\n$ runbook ${args.join(' ')}\n`);
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/index.ts', '--config', configFile, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    if (code !== 0) throw new Error(`runbook ${args.join(' ')} exited with ${code}`);
    return stdout;
  };
  const backupOut = await runbook('backup', 'demo', '--wait');
  process.stdout.write(backupOut);
  process.stdout.write(await runbook('backups', 'list', 'demo'));
  const latest = JSON.parse(await runbook('--json', 'backups', 'list', 'demo'))[0].backupId as string;
  process.stdout.write(`${latest}\n`);
  process.stdout.write(await runbook('backups', 'verify', latest));
  process.stdout.write(await runbook('retention', 'demo', '--dry-run'));
  process.stdout.write(await runbook('drill', 'demo', '--wait'));
  process.stdout.write(await runbook('check', 'demo'));
  const reportFile = path.join(demoDir, 'demo-report.html');
  process.stdout.write(await runbook('report', 'demo', '--out', reportFile));
  const workflowId = JSON.parse(await runbook('--json', 'backups', 'show', latest)).manifest.workflow.workflowId as string;
  say(`done. See the run in the Temporal UI: ${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`);
  process.stdout.write(`    backups are in ${path.join(demoDir, 'backups')}; the config used is ${configFile}\n`);
} catch (err) {
  failed = true;
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
}

if (!failed && process.stdin.isTTY && !process.env.CI) {
  process.stdout.write('\nThe server stays up so that you can look around; press Ctrl-C to stop.\n');
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
}
worker.shutdown();
await running;
await close();
await server.stop();
await redis.stop();
rmSync(redisDir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);

async function portFree(p: number): Promise<boolean> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(p, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}
