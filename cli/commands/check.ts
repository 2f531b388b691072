import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { escapeControls } from '../../common/audit';
import type { StoreRegistry } from '../../domain/storage';
import { evaluateTarget, humanMs, type CheckInput, type TargetCheck } from '../../common/check';
import { targetOf, type Config } from '../../common/config';
import type { DrillReport } from '../../common/drill-types';
import { durationMs } from '../../common/duration';
import { RunbookError } from '../../common/errors';
import type { Manifest } from '../../common/types';
import { action, loadCliConfig, print, type GlobalOptions } from '../context';
import { EXIT } from '../exit-codes';

/** Errors of the check's own setup, not of the storage it looks at: they stop it with their exit code. */
const SETUP_ERRORS = new Set(['CONFIG_INVALID', 'CONFIG_NOT_FOUND', 'SECRET_UNRESOLVED', 'UNKNOWN_TARGET']);

export const checkCommand = new Command('check')
  .description(
    'check every target (or one) against its objectives from what storage holds: fresh verified backups, sane sizes, ' +
      'disk space, passed drills; exit 10 when any is out (for cron and monitoring: Temporal is not needed)',
  )
  .argument('[target]', 'a target named in the config (default: all)')
  .action(
    action(async (targetName: string | undefined, _o: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = loadCliConfig(global);
      const names = targetName === undefined ? Object.keys(config.targets) : [targetName];
      names.forEach((n) => targetOf(config, n));
      const { storeRegistry } = await import('../../domain/storage');
      const stores = storeRegistry(config);
      const now = new Date();
      const targets = await Promise.all(names.map((n) => checkTarget(config, stores, n, now)));
      const ok = targets.every((t) => t.ok);
      print(global, { ok, targets }, () => targets.map(renderTarget).join(''));
      if (!ok) process.exitCode = EXIT.CHECK;
    }),
  );

/** A target's check, and what storage holds that does not count (unsigned backups, drill reports not trusted), told but not judged. */
export type CheckedTarget = TargetCheck & { ignored?: string[] };

export async function checkTarget(config: Config, stores: StoreRegistry, name: string, now: Date): Promise<CheckedTarget> {
  const t = targetOf(config, name);
  const [{ listDestination }, { readDrillReports }, { verifyAudit }, { servicesFor }] = await Promise.all([
    import('../../domain/catalog'),
    import('../../domain/drill-store'),
    import('../../domain/audit'),
    import('../../domain/services'),
  ]);
  const unreadable: NonNullable<CheckInput['unreadable']> = [];
  const failed = (destination: string, err: unknown) => {
    if (err instanceof RunbookError && SETUP_ERRORS.has(err.code)) throw err;
    unreadable.push({ destination, error: (err as Error).message.split('\n')[0]! });
  };

  const listings = await Promise.all(
    t.destinations.map((d) =>
      listDestination(config, stores, d, name).catch((err: unknown) => {
        failed(d, err);
        return null;
      }),
    ),
  );
  // A backup is listed once, from the first destination holding its manifest (they are written alike).
  const byId = new Map<string, Manifest>();
  const suspicious: string[] = [];
  const ignored: string[] = [];
  for (const l of listings) {
    if (!l) continue;
    for (const [id, m] of l.withManifest) if (!byId.has(id)) byId.set(id, m);
    suspicious.push(...l.invalidManifest.map((id) => `${l.destination}:${id}`));
    // Only trusted manifests are judged. A forged or impossible one is tampering: a person must look.
    for (const [id, { trust }] of l.untrusted) {
      if (trust.state === 'unsigned') ignored.push(`backup ${id} in ${l.destination} ignored: unsigned (${trust.reason})`);
      else suspicious.push(`${l.destination}:${id} (${trust.state}: ${trust.reason})`);
    }
  }
  const backups = [...byId.values()].sort((a, b) => b.backupId.localeCompare(a.backupId));

  // Drill reports from the destinations that could be read; when even those fail, drills are not judged.
  const readable = t.destinations.filter((_d, i) => listings[i]);
  let drills: DrillReport[] | null = null;
  if (readable.length > 0) {
    const narrowed: Config = { ...config, targets: { ...config.targets, [name]: { ...t, destinations: readable } } };
    const read = await readDrillReports(narrowed, stores, name).catch((err: unknown) => {
      failed(`${readable.join(', ')} (drill reports)`, err);
      return null;
    });
    drills = read?.reports ?? null;
    for (const r of read?.ignored ?? [])
      ignored.push(`drill report ${r.drillId} in ${r.destinations.join(', ')} ignored: ${r.state} (${r.reason})`);
  }

  const disks = await Promise.all(
    t.destinations.map(async (d) => {
      const spec = config.storage[d]!;
      return { destination: d, usedFraction: spec.type === 'local' ? await usedFraction(spec.path) : null };
    }),
  );

  // A destination that cannot be read is a problem of its own already, not also an audit one.
  const audit = await verifyAudit(servicesFor(config, { stores }), name).catch(() => null);
  const auditBreaks = audit?.breaks.map((b) => `destination ${b.destination}, seq ${b.seq}: ${b.kind}: ${escapeControls(b.message)}`);

  const checked: CheckedTarget = evaluateTarget({
    target: name,
    now,
    rpoMs: durationMs(t.rpo),
    ...(t.drill && drills !== null ? { drill: { intervalMs: durationMs(t.drill.interval) } } : {}),
    sizeChange: t.check.sizeChange,
    diskFull: t.check.diskFull,
    backups,
    drills: drills ?? [],
    suspicious,
    disks,
    unreadable,
    auditBreaks,
  });
  return ignored.length ? { ...checked, ignored } : checked;
}

/** The used fraction of the file system holding `dir` (or its nearest existing parent), as df counts it. */
async function usedFraction(dir: string): Promise<number | null> {
  for (let p = path.resolve(dir); ; p = path.dirname(p)) {
    try {
      const s = await statfs(p);
      const used = s.blocks - s.bfree;
      return used + s.bavail > 0 ? used / (used + s.bavail) : null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || p === path.dirname(p)) return null;
    }
  }
}

function renderTarget(t: CheckedTarget): string {
  const f = t.facts;
  const notes = (t.ignored ?? []).map((n) => `  note: ${n}\n`).join('');
  if (t.ok) {
    const backup = f.newestVerifiedBackup ? `newest verified backup ${humanMs(f.newestVerifiedBackup.ageMs)} old` : '';
    const drill = f.lastDrill ? `last drill ${f.lastDrill.outcome} ${humanMs(f.lastDrill.ageMs)} ago` : 'never drilled';
    return `${t.target}: OK (${[backup, drill].filter(Boolean).join(', ')})\n${notes}`;
  }
  return (
    [`${t.target}: FAIL ${[...new Set(t.problems.map((p) => p.code))].join(', ')}`, ...t.problems.map((p) => `  ${p.code}: ${p.message}`)]
      .map((l) => `${l}\n`)
      .join('') + notes
  );
}
