// `runbook report`: the real CLI reads backups, drills and audit records laid out in a local destination
// exactly as the runbooks write them, and the page it writes is opened in headless Chromium.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit } from '../../domain/audit';
import { writeDrillReport } from '../../domain/drill-store';
import { storeRegistry } from '../../domain/storage';
import { signerFor } from '../../domain/trust/signing';
import { signingKey } from '../support/signing';
import type { AuditEvent } from '../../common/audit';
import { makeBackupId } from '../../common/backup-id';
import { loadConfig } from '../../common/config';
import type { DrillReport } from '../../common/drill-types';
import { PALETTE } from '../../cli/html-report';
import { artifactKeys, type Manifest } from '../../common/types';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCREENSHOT = path.join(ROOT, 'test/artifacts/report.png');
const CHROMIUM = '/usr/bin/chromium';
const H = 3_600_000;
const D = 24 * H;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], cwd = ROOT): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'bin/runbook.js'), ...args],
      { cwd, env: process.env, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

function manifest(target: string, created: Date, i: number, verified: boolean): Manifest {
  const backupId = makeBackupId(target, created, randomBytes(4).toString('hex'));
  const rdbSize = Math.round((180 + i * 9 + (i % 3) * 14) * 1024 * 1024);
  const storedSize = Math.round(rdbSize * (0.27 + (i % 4) * 0.02));
  const durationMs = 38_000 + i * 2_100 + (i % 5) * 4_000;
  const keys = 1_200_000 + i * 15_000;
  const file = 'dump.rdb.zst.age';
  const copies = [
    { destination: 'disk', location: `/var/backups/redis/${target}/${backupId}/${file}`, size: storedSize },
    { destination: 'offsite', location: `s3://backups/redis/${target}/${backupId}/${file}`, size: storedSize },
  ];
  return {
    formatVersion: 1,
    backupId,
    target,
    tags: i % 7 === 0 ? ['weekly'] : [],
    requestedBy: 'schedule:nightly',
    createdAt: created.toISOString(),
    completedAt: new Date(created.getTime() + durationMs).toISOString(),
    durationMs,
    tool: { name: 'redis-runbooks', version: '0.1.0' },
    workflow: { workflowId: `backup/${target}/${backupId}`, runId: randomBytes(16).toString('hex') },
    redis: {
      version: '7.2.4',
      role: 'master',
      usedMemory: rdbSize * 3,
      aofEnabled: false,
      rdbLastBgsaveStatus: 'ok',
      rdbChangesSinceLastSave: 1200,
      latestForkUsec: 4200,
      rdbLastCowSize: 2 << 20,
      keyspace: { db0: { keys, expires: 4000 } },
      warnings: [],
    },
    capture: { method: 'replication', durationMs: Math.round(durationMs * 0.7) },
    rdb: { version: 11, size: rdbSize, sha256: randomBytes(32).toString('hex'), keys, expires: 4000, check: 'redis-check-rdb' },
    artifact: {
      file,
      compression: 'zstd',
      encryption: { format: 'age-x25519', keyId: 'main', fingerprint: '0f1e2d3c4b5a6978' },
      size: storedSize,
      sha256: randomBytes(32).toString('hex'),
    },
    copies,
    keyspace: { db0: { keys, expires: 4000 } },
    prefixes: { sampleSize: 10_000, top: [{ prefix: 'session:', sampled: 6100, estimated: 732_000 }] },
    verification: {
      verifiedAt: new Date(created.getTime() + durationMs + 5_000).toISOString(),
      copies: copies.map((c) => ({
        destination: c.destination,
        ok: verified || c.destination === 'disk',
        detail: verified || c.destination === 'disk' ? 'size and sha256 match' : 'sha256 differs from the manifest',
      })),
    },
  };
}

function drill(target: string, startedAt: Date, backup: Manifest, failed: boolean): DrillReport {
  const rto = failed ? null : 140_000 + startedAt.getUTCDate() * 3_000;
  const phases = failed
    ? [
        { name: 'fetch', durationMs: 61_000 },
        { name: 'load', durationMs: 12_500 },
      ]
    : [
        { name: 'fetch', durationMs: 58_000 },
        { name: 'load', durationMs: 64_000 },
        { name: 'checks', durationMs: 9_000 },
      ];
  return {
    drillId: `${startedAt.toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(3).toString('hex')}`,
    target,
    workflowId: `drill/${target}`,
    runId: randomBytes(16).toString('hex'),
    requestedBy: 'schedule:drill',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date(startedAt.getTime() + (rto ?? 80_000)).toISOString(),
    outcome: failed ? 'failed' : 'passed',
    reason: failed ? 'the sandbox refused the RDB: "Bad file format reading the append only file"' : undefined,
    backup: {
      backupId: backup.backupId,
      createdAt: backup.createdAt,
      destination: 'offsite',
      ageMs: startedAt.getTime() - Date.parse(backup.createdAt),
      rdbSize: backup.rdb.size,
      storedSize: backup.artifact.size,
    },
    phases,
    checks: [{ name: 'keys', ok: !failed, detail: failed ? 'never loaded' : '1.2M keys in db0' }],
    rto: { measuredMs: rto, objectiveMs: 30 * 60_000, met: !failed },
    rpo: {
      newestAgeMs: 2 * H + startedAt.getUTCDate() * 60_000,
      maxGapMs: failed ? 50 * H : 24 * H + 5 * 60_000,
      windowMs: 7 * D,
      backupsInWindow: 7,
      objectiveMs: 26 * H,
      met: !failed,
    },
    objectivesMet: !failed,
  };
}

describe('runbook report', () => {
  let dir: string;
  let configFile: string;
  let out: string;
  let browser: Browser;
  const now = Date.now();
  const inPeriod: Manifest[] = [];
  const drills: DrillReport[] = [];
  const events: AuditEvent[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'runbook-report-'));
    configFile = path.join(dir, 'runbook.yaml');
    out = path.join(dir, 'out', 'cache.html');
    await mkdir(path.dirname(out));
    await writeFile(
      configFile,
      `${signingKey(dir).yaml}storage:
  disk: { type: local, path: backups }
  offsite: { type: local, path: offsite }
targets:
  cache:
    url: redis://127.0.0.1:6399
    destinations: [disk, offsite]
    rpo: 26h
    rto: 30m
  other:
    url: redis://127.0.0.1:6398
    destinations: [disk]
`,
    );
    const config = loadConfig(configFile);
    const stores = storeRegistry(config);
    // Written as the worker writes them: signed.
    const signer = signerFor(config);

    // Nightly backups over the last 30 days, one of which failed verification off-site; and two far
    // older ones the default 90 days leave out.
    for (let i = 0; i < 30; i++) {
      const created = new Date(now - (30 - i) * D + 2 * H + (i % 4) * 60_000);
      inPeriod.push(manifest('cache', created, i, i !== 21));
    }
    const old = [manifest('cache', new Date(now - 140 * D), 0, true), manifest('cache', new Date(now - 100 * D), 1, true)];
    for (const m of [...inPeriod, ...old]) {
      await stores('disk').write(artifactKeys('cache', m.backupId).manifest, JSON.stringify(signer.sign(m), null, 2));
    }
    // A backup of another target in the same destination belongs to a different report.
    const foreign = manifest('other', new Date(now - D), 0, true);
    await stores('disk').write(artifactKeys('other', foreign.backupId).manifest, JSON.stringify(signer.sign(foreign), null, 2));

    for (const [daysAgo, failed] of [
      [27, false],
      [20, false],
      [13, true],
      [6, false],
      [1, false],
    ] as const) {
      const started = new Date(now - daysAgo * D + 4 * H);
      const picked = inPeriod.filter((m) => Date.parse(m.createdAt) < started.getTime()).pop()!;
      const report = drill('cache', started, picked, failed);
      drills.push(report);
      await writeDrillReport(config, stores, report, `# drill ${report.drillId}\n\n${report.outcome}\n`);
    }

    const restore = (daysAgo: number, runId: string) => (event: AuditEvent['event'], minutes: number, actor: string, detail?: string) => ({
      at: new Date(now - daysAgo * D + minutes * 60_000).toISOString(),
      target: 'cache',
      workflowId: 'restore/cache',
      runId,
      action: 'restore' as const,
      event,
      actor,
      identity: `runbook-cli@${actor}`,
      detail,
    });
    const first = restore(18, 'run-a');
    const second = restore(9, 'run-b');
    events.push(
      first('requested', 0, 'alice', `from ${inPeriod[11]!.backupId}: orders lost after a bad deploy`),
      first('approved', 7, 'bob', 'checked the backup id with the on-call'),
      first('approved', 12, 'dave'),
      first('restored', 26, 'alice', 'verified: 1.37M keys'),
      second('requested', 0, 'mallory', 'from latest: <script>document.title="pwned"</script>'),
      second('rejected', 4, 'bob', 'no incident open; <b>not</b> a reason to restore'),
    );
    for (const [i, e] of events.entries()) await appendAudit({ config, stores, signer: () => signer }, e, `report-test/${i}`);

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('writes the page and prints its path', async () => {
    const r = await cli(['--config', configFile, 'report', 'cache', '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(out);
    const st = await stat(out);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.size).toBeGreaterThan(10_000);
  });

  it('renders in Chromium: charts, tables, nothing fetched, no errors', async () => {
    const page: Page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const requests: string[] = [];
    const errors: string[] = [];
    page.on('request', (req) => requests.push(req.url()));
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') errors.push(`${msg.type()}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => errors.push(err.message));
    const url = pathToFileURL(out).href;
    await page.goto(url, { waitUntil: 'load', timeout: 15_000 });

    expect(await page.title()).toBe('Backup and recovery report: cache');
    expect(await page.locator('h1').textContent()).toBe('Backup and recovery report: cache');
    expect(await page.locator('h2').allTextContents()).toEqual(['Backups over time', 'Drills', 'Restores and approvals']);
    expect(await page.locator('header .summary').textContent()).toContain(`Newest verified backup ${inPeriod.at(-1)!.backupId}`);
    expect(await page.locator('header .summary').textContent()).toContain('last drill passed');

    // Backups: one mark per backup of the period in each chart, oldest first, each with its tooltip.
    const expectedIds = inPeriod.map((m) => m.backupId);
    for (const chart of ['#chart-sizes', '#chart-durations']) {
      await expect.poll(() => page.locator(chart).isVisible()).toBe(true);
      const marks = page.locator(`${chart} [data-backup-id]`);
      expect(await marks.count()).toBe(inPeriod.length);
      const ids: (string | null)[] = [];
      for (const mark of await marks.all()) ids.push(await mark.getAttribute('data-backup-id'));
      expect(ids).toEqual(expectedIds);
      expect(await page.locator(`${chart} [data-backup-id] > title`).count()).toBe(inPeriod.length);
      const box = await page.locator(chart).boundingBox();
      expect(box!.width).toBeGreaterThan(800);
    }
    expect(await page.locator('[data-backup-id]').count()).toBe(2 * inPeriod.length);
    // The backup that failed verification stands out by colour, the others do not.
    const unverified = inPeriod[21]!.backupId;
    expect(await page.locator(`#chart-sizes [data-backup-id="${unverified}"] rect.stored`).getAttribute('fill')).toBe(
      PALETTE.storedUnverified,
    );
    expect(await page.locator(`#chart-sizes rect.stored[fill="${PALETTE.storedVerified}"]`).count()).toBe(inPeriod.length - 1);
    expect(await page.locator(`#chart-sizes [data-backup-id="${unverified}"] title`).textContent()).toContain('NOT verified: 1/2 copies');
    expect(await page.locator('table.backups tbody tr').count()).toBe(inPeriod.length);

    // Drills: the failed one red, the passed ones green, both objectives drawn.
    for (const chart of ['#chart-rto', '#chart-rpo']) {
      expect(await page.locator(`${chart} [data-drill-id]`).count()).toBe(drills.length);
      expect(await page.locator(`${chart} line.objective`).count()).toBe(1);
      // A horizontal line has no height, which Playwright counts as invisible: its width is the proof.
      expect((await page.locator(`${chart} line.objective`).boundingBox())!.width).toBeGreaterThan(800);
      for (const d of drills) {
        const fill = await page.locator(`${chart} [data-drill-id="${d.drillId}"] .mark`).first().getAttribute('fill');
        expect(fill, `${chart} ${d.drillId} (${d.outcome})`).toBe(d.outcome === 'failed' ? PALETTE.failed : PALETTE.passed);
      }
    }
    expect(await page.locator('#chart-rto .objective-label').textContent()).toBe('RTO objective 30 min');
    expect(await page.locator('#chart-rpo .objective-label').textContent()).toBe('RPO objective 26 h');
    const failedRow = page.locator('table.drills tbody tr', { hasText: 'failed' });
    expect(await failedRow.count()).toBe(1);
    expect(await failedRow.textContent()).toContain('"Bad file format reading the append only file"');

    // Restores and approvals: every event, the two approvals by their approvers, hostile text inert.
    const rows = page.locator('table.audit tbody tr');
    expect(await rows.count()).toBe(events.length);
    const approvals = page.locator('table.audit tbody tr', { hasText: 'restore approved' });
    expect(await approvals.count()).toBe(2);
    expect(await approvals.locator('td:nth-child(3)').allTextContents()).toEqual(['bob', 'dave']);
    expect(await page.locator('table.audit tbody tr', { hasText: 'restore rejected' }).textContent()).toContain('<b>not</b> a reason');
    expect(await page.locator('script').count()).toBe(0);
    expect(await page.locator('table.audit b').count()).toBe(0);

    expect(errors).toEqual([]);
    expect(requests).toEqual([url]);

    await mkdir(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: 15_000 });
    await page.close();
    const png = await readFile(SCREENSHOT);
    expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
    expect(png.readUInt32BE(16)).toBe(1200); // IHDR width
    expect(png.readUInt32BE(20)).toBeGreaterThan(1500); // the whole page, not the viewport
    expect(png.length).toBeGreaterThan(50_000);
  });

  it('prints a summary with --json and writes ./<target>-report.html by default', async () => {
    const r = await cli(['--config', configFile, '--json', 'report', 'cache'], dir);
    expect(r.code).toBe(0);
    const file = path.join(dir, 'cache-report.html');
    expect(JSON.parse(r.stdout)).toEqual({ file, backups: inPeriod.length, drills: drills.length, events: events.length });
    expect((await readFile(file, 'utf8')).startsWith('<!doctype html>')).toBe(true);
  });

  it('narrows the period with --days', async () => {
    const r = await cli(['--config', configFile, '--json', 'report', 'cache', '--days', '200', '--out', path.join(dir, 'all.html')]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ backups: inPeriod.length + 2, drills: drills.length });
    const week = await cli(['--config', configFile, '--json', 'report', 'cache', '--days', '7', '--out', path.join(dir, 'week.html')]);
    expect(JSON.parse(week.stdout)).toMatchObject({ backups: 7, drills: 2, events: 0 });
    const html = await readFile(path.join(dir, 'week.html'), 'utf8');
    expect(html).toContain('No restores or approvals in this period.');
  });

  it('refuses an unknown target (exit 3) and a bad --days (exit 2)', async () => {
    const unknown = await cli(['--config', configFile, 'report', 'nope', '--out', path.join(dir, 'nope.html')]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('UNKNOWN_TARGET');
    const bad = await cli(['--config', configFile, 'report', 'cache', '--days', 'soon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--days');
  });
});
