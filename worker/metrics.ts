// Prometheus metrics of the worker. The gauges are read from the source of truth, the manifests and
// drill reports in storage, so that they say the same as `runbook check` whichever worker took the
// backup; the counters are this process's own, from the events the activities report.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { listBackups } from '../domain/catalog';
import { listDrillReports } from '../domain/drill-store';
import type { StoreRegistry } from '../domain/storage';
import { drillRpoMs, verified } from '../common/check';
import { NOTIFY_EVENTS, type Config } from '../common/config';
import type { DrillReport } from '../common/drill-types';
import { durationMs } from '../common/duration';
import type { RunbookEvent } from '../common/events';
import type { Manifest } from '../common/types';

export interface MetricsOptions {
  /** How old the storage figures may be at scrape time (default 30 s). */
  maxAgeMs?: number;
  /** How long a scrape waits for a refresh before it answers with the last figures (default 10 s). */
  scrapeWaitMs?: number;
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

export interface RunbookMetrics {
  registry: Registry;
  onEvent(e: RunbookEvent): void;
  /** Reads storage again now (a scrape otherwise does when the figures are older than maxAgeMs). */
  refresh(): Promise<void>;
  serve(port: number, host?: string): Promise<MetricsServer>;
}

interface TargetFigures {
  backups: number;
  newest?: Manifest;
  newestVerified?: Manifest;
  drill?: DrillReport;
}

const seconds = (ms: number) => ms / 1000;
const epochSeconds = (iso: string) => Date.parse(iso) / 1000;

export function createMetrics(config: Config, stores: StoreRegistry, opts: MetricsOptions = {}): RunbookMetrics {
  const maxAgeMs = opts.maxAgeMs ?? 30_000;
  const scrapeWaitMs = opts.scrapeWaitMs ?? 10_000;
  const targets = Object.keys(config.targets);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'runbook_' });

  // Per target, the figures of the last refresh that could read it: a storage error keeps them.
  const figures = new Map<string, TargetFigures>();
  let refreshedAt = -Infinity;
  let running: Promise<void> | null = null;
  let queued: Promise<void> | null = null;

  const refreshErrors = new Counter({
    name: 'runbook_metrics_refresh_errors_total',
    help: 'Refreshes of the storage figures that failed for a target (its last figures are kept)',
    labelNames: ['target'],
    registers: [registry],
    // Read once the refresh this scrape waits for has counted its errors.
    async collect() {
      await fresh();
    },
  });

  async function load(): Promise<void> {
    const startedAt = Date.now();
    await Promise.all(
      targets.map(async (target) => {
        try {
          const [backups, drills] = await Promise.all([listBackups(config, stores, target), listDrillReports(config, stores, target)]);
          figures.set(target, {
            backups: backups.length,
            newest: backups[0]?.manifest,
            newestVerified: backups.find((b) => verified(b.manifest))?.manifest,
            drill: drills[0],
          });
        } catch {
          refreshErrors.inc({ target });
        }
      }),
    );
    refreshedAt = startedAt;
  }

  /** A refresh that starts after this call: joins the one queued behind a running refresh, if any. */
  function refresh(): Promise<void> {
    if (!running) {
      running = load().finally(() => {
        running = null;
      });
      return running;
    }
    queued ??= running.then(() => {
      queued = null;
      return refresh();
    });
    return queued;
  }

  /** Waits for figures no older than maxAgeMs, but never longer than scrapeWaitMs: then the last ones do. */
  async function fresh(): Promise<void> {
    const pending = queued ?? running ?? (Date.now() - refreshedAt > maxAgeMs ? refresh() : null);
    if (!pending) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([pending, new Promise<void>((resolve) => (timer = setTimeout(resolve, scrapeWaitMs)))]);
    clearTimeout(timer);
  }

  /** A per-target gauge computed at scrape time; a null value leaves the target's series out. */
  const gauge = (name: string, help: string, value: (f: TargetFigures) => number | null | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['target'],
      registers: [registry],
      async collect() {
        await fresh();
        this.reset();
        for (const target of targets) {
          const f = figures.get(target);
          const v = f ? value(f) : null;
          if (v !== null && v !== undefined && Number.isFinite(v)) this.set({ target }, v);
        }
      },
    });

  gauge(
    'runbook_last_verified_backup_timestamp_seconds',
    'When the newest backup whose every copy verified was taken (its manifest createdAt), Unix time',
    (f) => f.newestVerified && epochSeconds(f.newestVerified.createdAt),
  );
  gauge('runbook_last_backup_rdb_bytes', 'Size of the RDB of the newest backup', (f) => f.newest?.rdb.size);
  gauge(
    'runbook_last_backup_stored_bytes',
    'Size of the stored (compressed, encrypted) copy of the newest backup',
    (f) => f.newest?.artifact.size,
  );
  gauge('runbook_last_backup_duration_seconds', 'How long the newest backup took, capture to verified manifest', (f) =>
    f.newest ? seconds(f.newest.durationMs) : null,
  );
  gauge('runbook_backups', 'Backups held (with a manifest) across the destinations', (f) => f.backups);
  gauge(
    'runbook_last_drill_timestamp_seconds',
    'When the last drill finished, Unix time',
    (f) => f.drill && epochSeconds(f.drill.finishedAt),
  );
  gauge('runbook_last_drill_success', '1 when the last drill passed, 0 when it failed', (f) =>
    f.drill ? (f.drill.outcome === 'passed' ? 1 : 0) : null,
  );
  gauge('runbook_last_drill_rto_seconds', 'Recovery time the last drill measured (absent when it never became usable)', (f) =>
    f.drill?.rto.measuredMs == null ? null : seconds(f.drill.rto.measuredMs),
  );
  gauge(
    'runbook_last_drill_rpo_seconds',
    'Recovery point the last drill measured: the larger of the newest backup age and the largest gap',
    (f) => {
      const ms = f.drill ? drillRpoMs(f.drill) : null;
      return ms === null ? null : seconds(ms);
    },
  );
  // From the config alone: set once, present even while storage cannot be read.
  const settings = (name: string, help: string, value: (t: Config['targets'][string]) => number | null) => {
    const g = new Gauge({ name, help, labelNames: ['target'], registers: [registry] });
    for (const target of targets) {
      const v = value(config.targets[target]!);
      if (v !== null) g.set({ target }, v);
    }
  };
  settings('runbook_rpo_objective_seconds', 'The configured recovery point objective (rpo)', (t) => seconds(durationMs(t.rpo)));
  settings('runbook_rto_objective_seconds', 'The configured recovery time objective (rto)', (t) => seconds(durationMs(t.rto)));
  settings('runbook_drill_interval_seconds', 'How often a drill must pass (drill.interval); absent when drills are not required', (t) =>
    t.drill ? seconds(durationMs(t.drill.interval)) : null,
  );

  const backupFailures = new Counter({
    name: 'runbook_backup_failures_total',
    help: 'Backups that failed, as this worker saw them',
    labelNames: ['target'],
    registers: [registry],
  });
  const drillFailures = new Counter({
    name: 'runbook_drill_failures_total',
    help: 'Drills that failed, as this worker saw them',
    labelNames: ['target'],
    registers: [registry],
  });
  const notifications = new Counter({
    name: 'runbook_notifications_total',
    help: 'Notification events this worker raised, whether or not a webhook wanted them',
    labelNames: ['event'],
    registers: [registry],
  });
  // Every series exists from the start at 0, so that increase() sees the first failure.
  for (const target of targets) {
    backupFailures.inc({ target }, 0);
    drillFailures.inc({ target }, 0);
    refreshErrors.inc({ target }, 0);
  }
  for (const event of NOTIFY_EVENTS) notifications.inc({ event }, 0);

  return {
    registry,
    refresh,
    onEvent(e: RunbookEvent) {
      notifications.inc({ event: e.event });
      if (e.event === 'backup-failed') backupFailures.inc({ target: e.target });
      if (e.event === 'drill-failed') drillFailures.inc({ target: e.target });
      // The drill report or manifest behind the event is stored by now: the next scrape shows it.
      void refresh();
    },
    serve(port: number, host = '127.0.0.1') {
      const server = http.createServer((req, res) => {
        const url = new URL(req.url ?? '/', 'http://metrics');
        if (url.pathname !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
          return;
        }
        registry.metrics().then(
          (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : body),
          (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
        );
      });
      return new Promise<MetricsServer>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve({
            port: (server.address() as AddressInfo).port,
            close: () =>
              new Promise<void>((done) => {
                server.close(() => done());
                server.closeAllConnections();
              }),
          });
        });
      });
    },
  };
}
