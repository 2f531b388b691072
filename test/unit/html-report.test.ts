import { describe, expect, it } from 'vitest';
import { makeBackupId } from '../../common/backup-id';
import type { AuditEvent } from '../../common/audit';
import type { DrillReport } from '../../common/drill-types';
import { formatBytes, formatDuration, PALETTE, renderHtmlReport, type ReportData } from '../../cli/html-report';
import type { Manifest } from '../../common/types';

const H = 3_600_000;
const NOW = Date.parse('2026-05-20T12:00:00Z');

function manifest(target: string, hoursAgo: number, over: { ok?: boolean; rdb?: number } = {}): Manifest {
  const created = new Date(NOW - hoursAgo * H);
  const backupId = makeBackupId(target, created, (1000 + hoursAgo).toString(16));
  return {
    formatVersion: 1,
    backupId,
    target,
    tags: [],
    requestedBy: 'schedule:nightly',
    createdAt: created.toISOString(),
    completedAt: new Date(created.getTime() + 42_000).toISOString(),
    durationMs: 42_000,
    tool: { name: 'redis-runbooks', version: '0.1.0' },
    workflow: { workflowId: `backup/${target}`, runId: 'run-1' },
    redis: {
      version: '7.2.4',
      role: 'master',
      usedMemory: 1 << 28,
      aofEnabled: false,
      rdbLastBgsaveStatus: 'ok',
      rdbChangesSinceLastSave: 0,
      latestForkUsec: 900,
      rdbLastCowSize: 0,
      keyspace: { db0: { keys: 1000, expires: 0 } },
      warnings: [],
    },
    capture: { method: 'replication', durationMs: 30_000 },
    rdb: { version: 11, size: over.rdb ?? 200 << 20, sha256: 'a'.repeat(64), keys: 1000, expires: 0, check: 'redis-check-rdb' },
    artifact: { file: 'dump.rdb.zst', compression: 'zstd', encryption: null, size: 60 << 20, sha256: 'b'.repeat(64) },
    copies: [{ destination: 'local', location: `/backups/${target}/${backupId}/dump.rdb.zst`, size: 60 << 20 }],
    keyspace: { db0: { keys: 1000, expires: 0 } },
    prefixes: { sampleSize: 1000, top: [] },
    verification: { verifiedAt: completedIso(created), copies: [{ destination: 'local', ok: over.ok ?? true, detail: 'sha256 matches' }] },
  };
}
const completedIso = (d: Date) => new Date(d.getTime() + 42_000).toISOString();

function drill(id: string, hoursAgo: number, outcome: 'passed' | 'failed', reason?: string): DrillReport {
  const started = new Date(NOW - hoursAgo * H).toISOString();
  return {
    drillId: id,
    target: 'cache',
    workflowId: `drill/cache/${id}`,
    runId: 'r',
    requestedBy: 'schedule',
    startedAt: started,
    finishedAt: started,
    outcome,
    reason,
    phases: [{ name: 'fetch', durationMs: 12_000 }],
    checks: [],
    rto: { measuredMs: outcome === 'passed' ? 240_000 : null, objectiveMs: H, met: outcome === 'passed' },
    rpo: { newestAgeMs: 2 * H, maxGapMs: 24 * H, windowMs: 168 * H, backupsInWindow: 7, objectiveMs: 24 * H, met: true },
    objectivesMet: outcome === 'passed',
  };
}

const audit = (event: AuditEvent['event'], detail: string, actor = 'alice'): AuditEvent => ({
  at: new Date(NOW - H).toISOString(),
  target: 'cache',
  workflowId: 'restore/cache',
  runId: 'r',
  action: 'restore',
  event,
  actor,
  detail,
});

const base = (over: Partial<ReportData> = {}): ReportData => ({
  target: 'cache',
  generatedAt: new Date(NOW).toISOString(),
  objectives: { rpoMs: 24 * H, rtoMs: H },
  backups: [],
  drills: [],
  audit: [],
  ...over,
});

/** The markup of one chart, found by its id. */
const svgOf = (html: string, id: string): string => {
  const m = new RegExp(`<svg id="${id}"[\\s\\S]*?</svg>`).exec(html);
  if (!m) throw new Error(`no chart ${id}`);
  return m[0];
};
const count = (text: string, needle: string) => text.split(needle).length - 1;

describe('renderHtmlReport', () => {
  it('escapes every text that comes from the data', () => {
    const hostile = '<script>alert("x")</script>';
    const html = renderHtmlReport(
      base({
        backups: [manifest('cache', 5)],
        drills: [drill('d-<img src=x onerror=alert(1)>', 3, 'failed', `sandbox said ${hostile}`)],
        audit: [audit('rejected', `because ${hostile}`, `mallory"><script>alert(2)</script>`)],
      }),
    );
    expect(html).not.toContain('<script');
    expect(html).not.toContain('<img');
    expect(html).toContain('because &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(html).toContain('mallory&quot;&gt;&lt;script&gt;');
    expect(html).toContain('data-drill-id="d-&lt;img src=x onerror=alert(1)&gt;"');
  });

  it('escapes the target name in the title and header', () => {
    const html = renderHtmlReport(base({ target: '</title><b>x</b>' }));
    expect(html).toContain('<title>Backup and recovery report: &lt;/title&gt;&lt;b&gt;x&lt;/b&gt;</title>');
    expect(html).not.toContain('<b>x</b>');
  });

  it('draws one point per backup in each backup chart, oldest first', () => {
    const backups = [manifest('cache', 1), manifest('cache', 49, { ok: false }), manifest('cache', 25), manifest('cache', 73)];
    const html = renderHtmlReport(base({ backups }));
    for (const id of ['chart-sizes', 'chart-durations']) {
      const svg = svgOf(html, id);
      expect(count(svg, 'data-backup-id="')).toBe(backups.length);
      const order = [...svg.matchAll(/data-backup-id="([^"]+)"/g)].map((m) => m[1]);
      expect(order).toEqual([...backups].sort((a, b) => a.createdAt.localeCompare(b.createdAt)).map((m) => m.backupId));
      expect(count(svg, '<title>')).toBe(backups.length);
    }
    // The unverified one is drawn in its own colour.
    const sizes = svgOf(html, 'chart-sizes');
    expect(count(sizes, `fill="${PALETTE.storedUnverified}"`)).toBe(1);
    expect(count(sizes, `fill="${PALETTE.storedVerified}"`)).toBe(3);
    // And the table lists them all.
    expect(count(html.slice(html.indexOf('<table class="backups"')), '<tr>')).toBe(backups.length + 1);
  });

  it('draws drills against the objectives, passed green and failed red', () => {
    const html = renderHtmlReport(
      base({ drills: [drill('d1', 72, 'passed'), drill('d2', 48, 'failed', 'sandbox never loaded'), drill('d3', 2, 'passed')] }),
    );
    const rto = svgOf(html, 'chart-rto');
    expect(count(rto, 'class="objective"')).toBe(1);
    expect(count(rto, 'data-drill-id="')).toBe(3);
    expect(rto).toMatch(new RegExp(`data-drill-id="d2"><title>[^<]*</title><path class="mark never"[^>]*fill="${PALETTE.failed}"`));
    expect(count(rto, `fill="${PALETTE.passed}"`)).toBe(2);
    expect(count(svgOf(html, 'chart-rpo'), 'class="objective"')).toBe(1);
    expect(html).toContain('sandbox never loaded');
  });

  it('says in words when a section is empty, and draws no chart', () => {
    const html = renderHtmlReport(base());
    expect(html).toContain('No backups in this period.');
    expect(html).toContain('No drills yet');
    expect(html).toContain('No restores or approvals in this period.');
    expect(html).toContain('no verified backup</span> in this period');
    expect(html).toContain('no drills yet');
    expect(html).not.toContain('<svg');
  });

  it('loads nothing from outside the page', () => {
    const html = renderHtmlReport(
      base({ backups: [manifest('cache', 1)], drills: [drill('d1', 2, 'passed')], audit: [audit('approved', 'ok')] }),
    );
    expect(html).not.toMatch(/<script|<link|<img|@import|url\(|src=/i);
    // The only URL is the SVG namespace, which is a name and never fetched.
    expect([...html.matchAll(/https?:\/\/[^\s"')]+/g)].map((m) => m[0])).toEqual(
      Array(html.split('<svg').length - 1).fill('http://www.w3.org/2000/svg'),
    );
  });
});

describe('formatting', () => {
  it('writes sizes in binary units', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(200 * 1024 * 1024)).toBe('200 MiB');
    expect(formatBytes(3.25 * 1024 ** 3)).toBe('3.25 GiB');
  });

  it('writes durations in s, min and h', () => {
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(42_000)).toBe('42 s');
    expect(formatDuration(90_000)).toBe('1.5 min');
    expect(formatDuration(3_600_000)).toBe('1 h');
    expect(formatDuration(26 * 3_600_000)).toBe('26 h');
    expect(formatDuration(3 * 86_400_000)).toBe('3 d');
    expect(formatDuration(null)).toBe('–');
  });
});
