// What backups exist, and which of them count. A backup exists only where its manifest does: data
// without a manifest is an unfinished or abandoned run, invisible here (retention removes it once its
// run has ended). Storage is not trusted: a manifest counts only when the worker's key signed it, it is
// not dated in the future, and it does not contradict the target's config (an encrypting target's
// backup that says it is not encrypted). The others are listed with why, and never used or deleted.
import { isBackupId, parseBackupId } from '../common/backup-id';
import type { Config } from '../common/config';
import { RunbookError } from '../common/errors';
import { artifactKeys, type Manifest } from '../common/types';
import type { StoreRegistry } from './storage';
import { canonicalJson, verifierFor, type Verifier } from './trust/signing';

/** A stored time may run this far ahead of this host's clock before it counts as in the future. */
export const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * trusted: signed by a key in signing.trust and sound. unsigned: no signature and nothing else wrong
 * (made before manifests were signed). forged: a signature that does not verify, or by a key not
 * trusted. refused: something in it cannot be true (dated in the future, unencrypted for a target that
 * encrypts).
 */
export type TrustState = 'trusted' | 'unsigned' | 'forged' | 'refused';

export interface Trust {
  state: TrustState;
  /** Why it does not count (absent when trusted). */
  reason?: string;
  /** The key that signed it, when trusted. */
  keyId?: string;
}

export interface CatalogEntry {
  backupId: string;
  target: string;
  createdAt: string;
  manifest: Manifest;
  /** Destinations holding this manifest (with this trust). */
  destinations: string[];
  trust: Trust;
  /** Destinations whose copy of the manifest does not count as this one does (changed there, or planted). */
  otherCopies?: { destination: string; trust: Trust }[];
}

export interface ReadManifest {
  manifest: Manifest;
  trust: Trust;
}

export interface DirListing {
  destination: string;
  /** Manifests that count: trusted ones only. */
  withManifest: Map<string, Manifest>;
  /** Manifests that do not count (unsigned, forged, refused), with why: never used, never deleted. */
  untrusted: Map<string, ReadManifest>;
  withoutManifest: string[];
  /** A manifest that does not parse or names another backup: tampering or damage, never deleted. */
  invalidManifest: string[];
}

const verifiers = new WeakMap<Config, Verifier>();
/** The verifier of a config's signing.trust, built once per config. */
export function verifierOf(config: Config): Verifier {
  let v = verifiers.get(config);
  if (!v) verifiers.set(config, (v = verifierFor(config)));
  return v;
}

/** The trust verdict on a manifest that names the backup and target it is stored under. */
export function judgeManifest(config: Config, manifest: Manifest, now = Date.now()): Trust {
  const verdict = verifierOf(config)(manifest);
  const problems: string[] = [];
  const created = Date.parse(manifest.createdAt);
  if (Number.isNaN(created)) problems.push(`its createdAt "${manifest.createdAt.slice(0, 40)}" is not a time`);
  else if (created > now + CLOCK_SKEW_MS) problems.push(`it is dated ${manifest.createdAt}, in the future`);
  if (config.targets[manifest.target]?.encrypt && !manifest.artifact?.encryption) {
    problems.push(`target ${manifest.target} encrypts its backups; this manifest says the backup is not encrypted`);
  }
  if (!verdict.ok && verdict.state === 'forged') return { state: 'forged', reason: [verdict.reason, ...problems].join('; ') };
  if (problems.length) return { state: 'refused', reason: [...problems, ...(verdict.ok ? [] : [verdict.reason])].join('; ') };
  return verdict.ok ? { state: 'trusted', keyId: verdict.keyId } : { state: 'unsigned', reason: verdict.reason };
}

export async function listDestination(config: Config, stores: StoreRegistry, destination: string, target: string): Promise<DirListing> {
  const { found, withoutManifest, invalidManifest } = await readDestination(config, stores, destination, target);
  const withManifest = new Map<string, Manifest>();
  const untrusted = new Map<string, ReadManifest>();
  for (const [id, f] of found) {
    if (f.trust.state === 'trusted') withManifest.set(id, f.manifest);
    else untrusted.set(id, f);
  }
  return { destination, withManifest, untrusted, withoutManifest, invalidManifest };
}

async function readDestination(config: Config, stores: StoreRegistry, destination: string, target: string) {
  const dirs = (await stores(destination).listDirs(target)).filter(isBackupId);
  const found = new Map<string, ReadManifest>();
  const withoutManifest: string[] = [];
  const invalidManifest: string[] = [];
  await Promise.all(
    dirs.map(async (id) => {
      const f = await readManifest(config, stores, destination, target, id);
      if (f === 'invalid') invalidManifest.push(id);
      else if (f) found.set(id, f);
      else withoutManifest.push(id);
    }),
  );
  return { found, withoutManifest, invalidManifest };
}

/** One backup's manifest in one destination and its trust: null when absent, 'invalid' when damaged or another backup's. */
export async function readManifest(
  config: Config,
  stores: StoreRegistry,
  destination: string,
  target: string,
  backupId: string,
): Promise<ReadManifest | 'invalid' | null> {
  const text = await stores(destination).readText(artifactKeys(target, backupId).manifest);
  if (!text) return null;
  const manifest = parseManifest(text);
  if (!manifest || manifest.backupId !== backupId || manifest.target !== target) return 'invalid';
  return { manifest, trust: judgeManifest(config, manifest) };
}

function parseManifest(text: string): Manifest | null {
  try {
    const m = JSON.parse(text) as Manifest;
    return m && m.formatVersion === 1 && typeof m.createdAt === 'string' ? m : null;
  } catch {
    return null;
  }
}

/** Which verdict a backup's entry takes when its copies differ: the best one. */
const RANK: Record<TrustState, number> = { trusted: 0, unsigned: 1, refused: 2, forged: 3 };

interface Copy extends ReadManifest {
  destination: string;
}

/** One entry from the copies of a backup's manifest: the best verdict's manifest, and the copies that differ from it. */
function entryOf(backupId: string, target: string, copies: Copy[]): CatalogEntry {
  const best = [...copies].sort((a, b) => RANK[a.trust.state] - RANK[b.trust.state])[0]!;
  const same = (c: Copy) => c.trust.state === best.trust.state && canonicalJson(c.manifest) === canonicalJson(best.manifest);
  const others = copies.filter((c) => !same(c)).map((c) => ({ destination: c.destination, trust: c.trust }));
  return {
    backupId,
    target,
    createdAt: best.manifest.createdAt,
    manifest: best.manifest,
    destinations: copies.filter(same).map((c) => c.destination),
    trust: best.trust,
    ...(others.length ? { otherCopies: others } : {}),
  };
}

/**
 * A target's backups, newest first. Only trusted ones unless `includeUntrusted`: then every backup
 * with a readable manifest, each with its trust and why.
 */
export async function listBackups(
  config: Config,
  stores: StoreRegistry,
  target: string,
  opts: { includeUntrusted?: boolean } = {},
): Promise<CatalogEntry[]> {
  const t = config.targets[target];
  if (!t) throw new RunbookError('UNKNOWN_TARGET', `no target named "${target}" in the config`);
  const listings = await Promise.all(t.destinations.map((d) => readDestination(config, stores, d, target)));
  const byId = new Map<string, Copy[]>();
  listings.forEach((l, i) => {
    for (const [id, f] of l.found) byId.set(id, [...(byId.get(id) ?? []), { destination: t.destinations[i]!, ...f }]);
  });
  const entries = [...byId].map(([id, copies]) => entryOf(id, target, copies));
  // Newest first by the time of capture: ids of one second differ only by their random suffix.
  return entries
    .filter((e) => opts.includeUntrusted || e.trust.state === 'trusted')
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.backupId.localeCompare(a.backupId));
}

/** One backup by its id, whatever its trust (for showing it): BACKUP_NOT_FOUND when no destination holds its manifest. */
export async function inspectBackup(config: Config, stores: StoreRegistry, backupId: string): Promise<CatalogEntry> {
  const { target } = parseBackupId(backupId);
  const t = config.targets[target];
  if (!t) {
    throw new RunbookError('BACKUP_NOT_FOUND', `backup ${backupId} belongs to target "${target}", which is not in the config`);
  }
  const found = await Promise.all(t.destinations.map((d) => readManifest(config, stores, d, target, backupId)));
  const copies = t.destinations.flatMap((destination, i) => {
    const f = found[i];
    return f && f !== 'invalid' ? [{ destination, ...f }] : [];
  });
  if (copies.length === 0) {
    throw new RunbookError(
      'BACKUP_NOT_FOUND',
      `no backup ${backupId} (no manifest in any destination of ${target})`,
      `list them with \`runbook backups list ${target}\``,
    );
  }
  return entryOf(backupId, target, copies);
}

/**
 * One backup by its id (which names its target), to use: its manifest read from each destination of
 * that target, without listing anything else. Refused with SIGNATURE_INVALID unless trusted; with
 * `allowUnsigned`, a merely unsigned one (made before manifests were signed) is accepted, never a
 * forged or refused one.
 */
export async function findBackup(
  config: Config,
  stores: StoreRegistry,
  backupId: string,
  opts: { allowUnsigned?: boolean } = {},
): Promise<CatalogEntry> {
  const entry = await inspectBackup(config, stores, backupId);
  const { state, reason } = entry.trust;
  if (state === 'trusted' || (state === 'unsigned' && opts.allowUnsigned)) return entry;
  const where = entry.destinations.join(', ');
  throw new RunbookError(
    'SIGNATURE_INVALID',
    state === 'unsigned'
      ? `backup ${backupId} is unsigned: its manifest (in ${where}) ${reason}`
      : `backup ${backupId} is not trusted (${state}): its manifest (in ${where}) does not count: ${reason}`,
    state === 'unsigned'
      ? 'a backup made before manifests were signed can be restored with --allow-unsigned (the approvers see it); otherwise take a new backup'
      : `someone with write access to the storage may have changed or planted it: do not use it, look at \`runbook backups list ${entry.target}\` and choose another backup`,
  );
}
