// npm run demo: the backup runbook on embedded defaults. Starts the Temporal dev server (state in
// .runbook/temporal.sqlite), a throwaway Redis filled with sample data of every type, and a worker;
// then runs the real CLI: a backup, the list of backups, a verification, a restore drill into a
// sandbox, the health check and the HTML report; then a restore as people run one: alice signs the
// request, bob signs his approval (alice may not approve her own), the backed-up data comes back and
// the audit trail says who decided.
import { execFileSync, spawn } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRunbookWorker } from '../worker';
import { startDevServer } from '../worker/dev-server';
import { Client, Connection } from '@temporalio/client';
import { parseConfig } from '../common/config';
import { workflowIds } from '../common/workflow-ids';
import { childEnv } from '../domain/tools';
import { generateSigningKey, publicKeyText } from '../domain/trust/signing';
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
// The worker signs every manifest and drill report: the demo's key is made once and kept with its state.
const signingFile = path.join(demoDir, 'signing.pem');
if (!existsSync(signingFile)) writeFileSync(signingFile, generateSigningKey().privatePem, { mode: 0o600, flag: 'wx' });
const signingPublic = publicKeyText(createPublicKey(createPrivateKey(readFileSync(signingFile))));
// Two people who sign restore statements with their own SSH keys, made once with ssh-keygen like anyone's.
const keysDir = path.join(demoDir, 'keys');
mkdirSync(keysDir, { recursive: true, mode: 0o700 });
const keyOf = (person: string) => path.relative(process.cwd(), path.join(keysDir, person));
const publicKeyOf = (person: string) => {
  const file = path.join(keysDir, person);
  if (!existsSync(file) || !existsSync(`${file}.pub`)) {
    rmSync(file, { force: true });
    rmSync(`${file}.pub`, { force: true });
    const args = ['-q', '-t', 'ed25519', '-N', '', '-C', `${person}@runbook-demo`, '-f', file];
    execFileSync('ssh-keygen', args, { env: childEnv(), stdio: ['ignore', 'ignore', 'inherit'] });
  }
  chmodSync(file, 0o600);
  return readFileSync(`${file}.pub`, 'utf8').trim();
};
const [alice, bob] = [publicKeyOf('alice'), publicKeyOf('bob')];

const configFile = path.join(demoDir, 'runbook.yaml');
const configText = `# Written by npm run demo. A config of your own starts from runbook.example.yaml.
temporal:
  devServer: { port: ${port}, dbFile: ${path.join(root, 'temporal.sqlite')} }
signing: { key: "file:${signingFile}", trust: ["${signingPublic}"] }
people:
  alice: { keys: ["${alice}"] }
  bob: { keys: ["${bob}"] }
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
    restore: { approvers: [alice, bob], approvals: 1 }
`;
writeFileSync(configFile, configText);
const config = parseConfig(configText, configFile);

const server = await startDevServer({ dbFile: config.temporal.devServer.dbFile, port, namespace: 'default' });
say(`Temporal dev server on ${server.address} (UI ${server.uiUrl}), state in ${config.temporal.devServer.dbFile}`);
const temporal = new Client({ connection: await Connection.connect({ address: server.address }), namespace: 'default' });
// The server's state outlives the demo: a restore left waiting by an interrupted run (its Redis is gone) would refuse this one.
const restoreId = workflowIds.restore('demo');
const left = await temporal.workflow
  .getHandle(restoreId)
  .describe()
  .catch(() => undefined);
if (left?.status.name === 'RUNNING') {
  await temporal.workflow.getHandle(restoreId).terminate('left by an interrupted demo; its Redis is gone');
  say(`terminated ${restoreId}, left running by an interrupted demo`);
}
const { worker, close } = await createRunbookWorker({ config, address: server.address });
const running = worker.run();

let failed = false;
try {
  // Asynchronous: the worker serving these commands runs in this very process.
  const cli = async (args: string[], opts: { quiet?: boolean; exitCode?: number } = {}) => {
    const shown = args.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ');
    if (!opts.quiet) process.stdout.write(`\n$ runbook ${shown}\n`);
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/index.ts', '--config', configFile, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    if (code !== (opts.exitCode ?? 0)) throw new Error(`runbook ${shown} exited with ${code}`);
    return stdout;
  };
  const runbook = (...args: string[]) => cli(args);
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

  // A bad deploy overwrites a key after the backup; the restore brings the backed-up value back.
  const data = redis.client();
  const backedUp = await data.get('user:1');
  await data.set('user:1', 'overwritten by a bad deploy');
  say(`user:1 was "${backedUp}" when backed up; now it is "${await data.get('user:1')}". alice asks for a restore, bob approves it`);
  const reason = 'user:1 overwritten by a bad deploy';
  process.stdout.write(await runbook('restore', 'demo', '--from', 'latest', '--reason', reason, '--key', keyOf('alice')));
  say('alice may not approve her own request (four eyes: refused, exit 9)');
  await cli(['approve', restoreId, '--key', keyOf('alice'), '--yes'], { exitCode: 9 });
  process.stdout.write(await runbook('approve', restoreId, '--key', keyOf('bob'), '--yes', '--comment', 'checked the plan'));
  say(`the restore runs; \`runbook status ${restoreId}\` until it is no longer RUNNING`);
  let final: { state: string; result?: { outcome: string; targetState: string } };
  for (const until = Date.now() + 5 * 60_000; ;) {
    final = JSON.parse(await cli(['--json', 'status', restoreId], { quiet: true })) as typeof final;
    if (final.state !== 'RUNNING') break;
    if (Date.now() > until) throw new Error(`${restoreId} still running after 5 min: see \`runbook status ${restoreId}\``);
    await new Promise((r) => setTimeout(r, 1000));
  }
  const status = await runbook('status', restoreId);
  process.stdout.write(status);
  if (!/: COMPLETED\n/.test(status)) throw new Error(`${restoreId} did not complete`);
  const now = await data.get('user:1');
  if (now !== backedUp) throw new Error(`user:1 is "${now}" after the restore, not the backed-up "${backedUp}"`);
  say(`user:1 is "${now}" again (${final.result?.outcome}: ${final.result?.targetState})`);
  // The trail holds every demo's records: show this restore's.
  const trail = (await runbook('audit', 'demo')).trimEnd().split('\n');
  const first = trail.map((l) => / requested .* restore\/demo/.test(l)).lastIndexOf(true);
  if (first > 0) process.stdout.write(`(${first} earlier record${first === 1 ? '' : 's'} not shown)\n`);
  process.stdout.write(trail.slice(Math.max(first, 0)).join('\n') + '\n');
  say(`done. See the run in the Temporal UI: ${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`);
  process.stdout.write(`    and the restore: ${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(restoreId)}\n`);
  process.stdout.write(`    backups are in ${path.join(demoDir, 'backups')}; the config used is ${configFile}\n`);
} catch (err) {
  failed = true;
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
}

if (!failed && process.stdin.isTTY && !process.env.CI) {
  process.stdout.write('\nThe server stays up so that you can look around; press Ctrl-C to stop.\n');
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
}
// Ctrl-C reaches the worker too: Temporal's runtime shuts it down on SIGINT.
if (worker.getState() === 'RUNNING') worker.shutdown();
await running;
await close();
await temporal.connection.close();
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
