// Drill benchmark (not a test): the drill's RTO, phase by phase, against the limit (redis-server
// started on the same RDB until it serves) and against the seeds' manual restore test (gunzip the
// backup, start redis-server on it, check DBSIZE), on one machine in one run.
//
//   npm run bench:drill                      ~4M small keys (200-byte values), bench:backup's (i)
//   BENCH_SCALE=0.05 npx tsx bench/drill.ts  quick run
//   BENCH_DRILLS=5                           drills per source (default 3)
import { execFileSync } from 'node:child_process';
import { copyFileSync, createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGzip } from 'node:zlib';
import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { parseConfig } from '../common/config';
import type { DrillReport } from '../common/drill-types';
import type { BackupReport } from '../common/types';
import { toolPath } from '../domain/tools';
import { freePort, waitLoaded, writeDaemonConf } from '../scripts/lib/redis-server';
import { startS3 } from '../test/support/s3';
import { signingKey } from '../test/support/signing';
import { createRunbookWorker } from '../worker';
import { startDevServer } from '../worker/dev-server';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const KEYS = Math.round(4_000_000 * SCALE);
const DRILLS = Number(process.env.BENCH_DRILLS ?? 3);
const root = mkdtempSync(path.join(process.env.BENCH_TMPDIR ?? os.tmpdir(), 'rr-bench-drill-'));
const pids: number[] = [];
const s = (ms: number) => +(ms / 1000).toFixed(2);
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

/** A daemonized redis-server on `dir`, started on whatever dump.rdb is there; resolves once it serves. */
async function serveDir(dir: string): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const conf = writeDaemonConf(dir, port, ['appendonly no']);
  execFileSync(toolPath('redis-server'), [conf]);
  await waitLoaded(port);
  const pid = Number(execFileSync('cat', [path.join(dir, 'redis.pid')]).toString());
  pids.push(pid);
  return {
    port,
    async stop() {
      process.kill(pid, 'SIGKILL');
      while (statSync(`/proc/${pid}`, { throwIfNoEntry: false })) await sleep(5);
    },
  };
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const out = await fn();
  return [performance.now() - t0, out];
}

async function main() {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // The dataset and its RDB, as redis-cli --rdb writes it.
  const sourceDir = path.join(root, 'source');
  mkdirSync(sourceDir);
  const source = await serveDir(sourceDir);
  const src = new Redis({ port: source.port });
  log(`populating ${KEYS} keys`);
  await src.call('DEBUG', 'POPULATE', String(KEYS), 'key', '200');
  const rdb = path.join(root, 'dataset.rdb');
  execFileSync(toolPath('redis-cli'), ['-p', String(source.port), '--rdb', rdb], { stdio: 'ignore' });
  src.disconnect();
  const rdbBytes = statSync(rdb).size;
  log(`RDB ${(rdbBytes / 1e6).toFixed(0)} MB`);

  // (1) the limit: redis-server started on the file, until it serves (twice; the median).
  const rawRuns: number[] = [];
  for (let i = 0; i < 2; i++) {
    const dir = path.join(root, `raw-${i}`);
    mkdirSync(dir);
    copyFileSync(rdb, path.join(dir, 'dump.rdb'));
    const [ms, server] = await timed(() => serveDir(dir));
    rawRuns.push(ms);
    await server.stop();
    rmSync(dir, { recursive: true });
  }
  const rawLoadMs = median(rawRuns);
  log(`raw load ${s(rawLoadMs)} s (${rawRuns.map(s).join(', ')})`);
  const [checkRdbMs] = await timed(async () => execFileSync(toolPath('redis-check-rdb'), [rdb], { stdio: 'ignore' }));
  log(`redis-check-rdb alone ${s(checkRdbMs)} s`);

  // (2) the seeds' restore test: the backup is a gzip file; gunzip it, start redis-server, DBSIZE.
  const gz = path.join(root, 'backup.rdb.gz');
  await pipeline(createReadStream(rdb), createGzip({ level: 6 }), createWriteStream(gz));
  const seedDir = path.join(root, 'seeds');
  mkdirSync(seedDir);
  let seedServer: Awaited<ReturnType<typeof serveDir>> | undefined;
  const [seedsMs] = await timed(async () => {
    execFileSync('sh', ['-c', `gunzip -c "${gz}" > "${path.join(seedDir, 'dump.rdb')}"`]);
    seedServer = await serveDir(seedDir);
    const c = new Redis({ port: seedServer.port });
    await c.dbsize();
    c.disconnect();
  });
  await seedServer?.stop();
  log(`seeds' restore test ${s(seedsMs)} s`);

  // (3) runbook drills: from the off-site copy (S3, the default) and from the local one.
  const s3 = await startS3();
  await s3.createBucket('offsite');
  process.env.BENCH_S3_KEY = s3.accessKeyId;
  process.env.BENCH_S3_SECRET = s3.secretAccessKey;
  const server = await startDevServer({ dbFile: path.join(root, 'temporal.sqlite'), port: await freePort(), uiPort: await freePort() });
  const config = parseConfig(
    `
temporal: { address: "${server.address}", taskQueue: bench-drill }
${signingKey(root).yaml}storage:
  disk: { type: local, path: ${root}/backups }
  offsite: { type: s3, bucket: offsite, endpoint: "${s3.endpoint}", forcePathStyle: true, accessKeyId: env:BENCH_S3_KEY, secretAccessKey: env:BENCH_S3_SECRET }
targets:
  bench:
    url: redis://127.0.0.1:${source.port}
    destinations: [disk, offsite]
    smoke: { exists: ["key:*", "key:0"] }
`,
    path.join(root, 'runbook.yaml'),
  );
  const { worker, close } = await createRunbookWorker({ config, address: server.address });
  const running = worker.run();
  const client = new Client({ connection: await Connection.connect({ address: server.address }) });
  const backup: BackupReport = await client.workflow.execute('backupRedis', {
    taskQueue: 'bench-drill',
    workflowId: `bench/backup/${Date.now()}`,
    args: [{ target: 'bench' }],
  });
  log(`backup ${backup.backupId}: ${(backup.manifest.artifact.size / 1e6).toFixed(0)} MB stored (zstd)`);

  const rows: Record<string, unknown>[] = [];
  const reports: DrillReport[] = [];
  for (const from of ['offsite', 'disk']) {
    for (let i = 0; i < DRILLS; i++) {
      const report: DrillReport = await client.workflow.execute('drillRedis', {
        taskQueue: 'bench-drill',
        workflowId: `bench/drill/${from}/${i}/${Date.now()}`,
        args: [{ target: 'bench', from, requestedBy: 'bench' }],
      });
      if (report.outcome !== 'passed') throw new Error(`drill failed: ${report.reason}`);
      reports.push(report);
      const phase = (name: string) => report.phases.find((p) => p.name === name)?.durationMs ?? 0;
      const rto = report.rto.measuredMs!;
      const inPhases = phase('fetch') + Math.max(phase('load'), phase('redis-check-rdb')) + phase('verify');
      rows.push({
        from,
        rtoS: s(rto),
        rtoVsRawLoad: +(rto / rawLoadMs).toFixed(2),
        rtoVsSeeds: +(rto / seedsMs).toFixed(2),
        fetchS: s(phase('fetch')),
        loadS: s(phase('load')),
        checkRdbS: s(phase('redis-check-rdb')),
        verifyS: s(phase('verify')),
        orchestrationS: s(rto - inPhases),
      });
      log(`drill from ${from}: RTO ${s(rto)} s (${report.phases.map((p) => `${p.name} ${s(p.durationMs)}`).join(', ')})`);
    }
  }

  worker.shutdown();
  await running;
  await close();
  await client.connection.close();
  await server.stop();
  await s3.stop();
  await source.stop();

  const result = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, memGiB: +(os.totalmem() / 2 ** 30).toFixed(1) },
    keys: KEYS,
    rdbBytes,
    storedBytes: backup.manifest.artifact.size,
    rawLoadS: s(rawLoadMs),
    rawLoadRunsS: rawRuns.map(s),
    checkRdbAloneS: s(checkRdbMs),
    seedsRestoreTestS: s(seedsMs),
    rows,
  };
  console.log(
    `\ndrill benchmark: ${KEYS} keys, RDB ${(rdbBytes / 1e6).toFixed(0)} MB, stored ${(backup.manifest.artifact.size / 1e6).toFixed(0)} MB`,
  );
  console.log(
    `  raw RDB load (the limit): ${s(rawLoadMs)} s; redis-check-rdb alone: ${s(checkRdbMs)} s; seeds' restore test (gunzip, load, DBSIZE): ${s(seedsMs)} s`,
  );
  console.table(rows);
  mkdirSync(path.join('bench', 'results'), { recursive: true });
  writeFileSync(
    path.join('bench', 'results', `drill-${result.date.slice(0, 10)}${SCALE === 1 ? '' : `-scale${SCALE}`}.json`),
    JSON.stringify(result, null, 2) + '\n',
  );
}

try {
  await main();
} finally {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  rmSync(root, { recursive: true, force: true });
}
process.exit(0);
