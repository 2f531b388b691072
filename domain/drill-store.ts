// Drill reports are stored beside the target's backups, under <target>/drills/, in every destination:
// the evidence that recovery works outlives the Temporal history that produced it.
import type { Config } from '../common/config';
import { targetOf } from '../common/config';
import { drillReportKeys, type DrillReport } from '../common/drill-types';
import type { StoreRegistry } from './storage';

export async function writeDrillReport(config: Config, stores: StoreRegistry, report: DrillReport, markdown: string): Promise<void> {
  const keys = drillReportKeys(report.target, report.drillId);
  await Promise.all(
    targetOf(config, report.target).destinations.flatMap((d) => [
      stores(d).write(keys.json, JSON.stringify(report, null, 2)),
      stores(d).write(keys.markdown, markdown),
    ]),
  );
}

/** A target's drill reports, newest first, merged across destinations (one unreadable copy is skipped). */
export async function listDrillReports(config: Config, stores: StoreRegistry, target: string): Promise<DrillReport[]> {
  const found = new Map<string, DrillReport>();
  for (const d of targetOf(config, target).destinations) {
    const store = stores(d);
    for (const name of await store.listFiles(`${target}/drills`)) {
      const id = /^(.+)\.json$/.exec(name)?.[1];
      if (!id || found.has(id)) continue;
      const text = await store.readText(`${target}/drills/${name}`);
      try {
        const r = text ? (JSON.parse(text) as DrillReport) : null;
        if (r && r.drillId === id && r.target === target) found.set(id, r);
      } catch {
        // a damaged copy: another destination may hold a good one
      }
    }
  }
  return [...found.values()].sort((a, b) => b.startedAt.localeCompare(a.startedAt));
}
