// Drill reports are stored beside the target's backups, under <target>/drills/, in every destination:
// the evidence that recovery works outlives the Temporal history that produced it. Storage is not
// trusted: the JSON report is signed by the worker, and a report counts only when it verifies (the
// markdown beside it is for people, and counts for nothing).
import type { Config } from '../common/config';
import { targetOf } from '../common/config';
import { drillReportKeys, type DrillReport } from '../common/drill-types';
import { CLOCK_SKEW_MS, verifierOf } from './catalog';
import type { StoreRegistry } from './storage';
import { signerFor, type Signer } from './trust/signing';

const signers = new WeakMap<Config, Signer>();

/** Signs the report with `signer` (the worker's; by default the one of `config`) and writes it to every destination. */
export async function writeDrillReport(
  config: Config,
  stores: StoreRegistry,
  report: DrillReport,
  markdown: string,
  signer?: Signer,
): Promise<void> {
  if (!signer) {
    signer = signers.get(config) ?? signerFor(config);
    signers.set(config, signer);
  }
  const keys = drillReportKeys(report.target, report.drillId);
  const body = JSON.stringify(signer.sign(report), null, 2);
  await Promise.all(
    targetOf(config, report.target).destinations.flatMap((d) => [
      stores(d).write(keys.json, body),
      stores(d).write(keys.markdown, markdown),
    ]),
  );
}

/** A stored drill report that does not count, and why. */
export interface IgnoredDrillReport {
  drillId: string;
  /** Where copies with this verdict are. */
  destinations: string[];
  state: 'unsigned' | 'forged' | 'refused';
  reason: string;
}

/**
 * A target's drill reports, newest first, merged across destinations: the trusted ones, and those
 * ignored with why (unsigned, forged, dated in the future). One unreadable copy is skipped; a trusted
 * copy in any destination counts, and an untrusted copy beside it is still told.
 */
export async function readDrillReports(
  config: Config,
  stores: StoreRegistry,
  target: string,
): Promise<{ reports: DrillReport[]; ignored: IgnoredDrillReport[] }> {
  const verify = verifierOf(config);
  const now = Date.now();
  const found = new Map<string, DrillReport>();
  const ignored = new Map<string, IgnoredDrillReport[]>();
  for (const d of targetOf(config, target).destinations) {
    const store = stores(d);
    for (const name of await store.listFiles(`${target}/drills`)) {
      const id = /^(.+)\.json$/.exec(name)?.[1];
      if (!id || found.has(id)) continue;
      const text = await store.readText(`${target}/drills/${name}`);
      let r: DrillReport | null = null;
      try {
        r = text ? (JSON.parse(text) as DrillReport) : null;
      } catch {
        // a damaged copy: another destination may hold a good one
      }
      if (!r || r.drillId !== id || r.target !== target) continue;
      const verdict = verify(r);
      const problems = [...new Set([r.startedAt, r.finishedAt])].flatMap((t) => {
        const at = Date.parse(t);
        if (Number.isNaN(at)) return [`its time "${String(t).slice(0, 40)}" is not a time`];
        return at > now + CLOCK_SKEW_MS ? [`it is dated ${t}, in the future`] : [];
      });
      if (verdict.ok && problems.length === 0) {
        found.set(id, r);
        continue;
      }
      const forged = !verdict.ok && verdict.state === 'forged';
      const state = forged ? 'forged' : problems.length ? 'refused' : 'unsigned';
      const reason = forged ? [verdict.reason, ...problems] : [...problems, ...(verdict.ok ? [] : [verdict.reason])];
      const told = ignored.get(id) ?? [];
      const same = told.find((x) => x.state === state && x.reason === reason.join('; '));
      if (same) same.destinations.push(d);
      else ignored.set(id, [...told, { drillId: id, destinations: [d], state, reason: reason.join('; ') }]);
    }
  }
  return {
    reports: [...found.values()].sort((a, b) => b.startedAt.localeCompare(a.startedAt)),
    ignored: [...ignored.values()].flat().sort((a, b) => b.drillId.localeCompare(a.drillId)),
  };
}

/** A target's trusted drill reports, newest first (the others are ignored: see readDrillReports). */
export async function listDrillReports(config: Config, stores: StoreRegistry, target: string): Promise<DrillReport[]> {
  return (await readDrillReports(config, stores, target)).reports;
}
