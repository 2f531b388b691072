// What backups exist. A backup exists only where its manifest does: data without a manifest is an
// unfinished or abandoned run, invisible here (retention removes it once its run has ended).
import { isBackupId, parseBackupId } from '../common/backup-id';
import type { Config } from '../common/config';
import { RunbookError } from '../common/errors';
import { artifactKeys, type Manifest } from '../common/types';
import type { StoreRegistry } from './storage';

export interface CatalogEntry {
  backupId: string;
  target: string;
  createdAt: string;
  manifest: Manifest;
  /** Destinations holding a manifest for it. */
  destinations: string[];
}

export interface DirListing {
  destination: string;
  withManifest: Map<string, Manifest>;
  withoutManifest: string[];
  /** A manifest that does not parse or names another backup: tampering or damage, never deleted. */
  invalidManifest: string[];
}

export async function listDestination(stores: StoreRegistry, destination: string, target: string): Promise<DirListing> {
  const store = stores(destination);
  const dirs = (await store.listDirs(target)).filter(isBackupId);
  const withManifest = new Map<string, Manifest>();
  const withoutManifest: string[] = [];
  const invalidManifest: string[] = [];
  await Promise.all(
    dirs.map(async (id) => {
      const found = await readManifest(stores, destination, target, id);
      if (found === 'invalid') invalidManifest.push(id);
      else if (found) withManifest.set(id, found);
      else withoutManifest.push(id);
    }),
  );
  return { destination, withManifest, withoutManifest, invalidManifest };
}

/** One backup's manifest in one destination: null when absent, 'invalid' when damaged or another backup's. */
export async function readManifest(
  stores: StoreRegistry,
  destination: string,
  target: string,
  backupId: string,
): Promise<Manifest | 'invalid' | null> {
  const text = await stores(destination).readText(artifactKeys(target, backupId).manifest);
  if (!text) return null;
  const manifest = parseManifest(text);
  return manifest && manifest.backupId === backupId && manifest.target === target ? manifest : 'invalid';
}

function parseManifest(text: string): Manifest | null {
  try {
    const m = JSON.parse(text) as Manifest;
    return m.formatVersion === 1 ? m : null;
  } catch {
    return null;
  }
}

export async function listBackups(config: Config, stores: StoreRegistry, target: string): Promise<CatalogEntry[]> {
  const t = config.targets[target];
  if (!t) throw new RunbookError('UNKNOWN_TARGET', `no target named "${target}" in the config`);
  const listings = await Promise.all(t.destinations.map((d) => listDestination(stores, d, target)));
  const byId = new Map<string, CatalogEntry>();
  for (const l of listings) {
    for (const [id, manifest] of l.withManifest) {
      const entry = byId.get(id) ?? { backupId: id, target, createdAt: manifest.createdAt, manifest, destinations: [] };
      entry.destinations.push(l.destination);
      byId.set(id, entry);
    }
  }
  // Newest first by the time of capture: ids of one second differ only by their random suffix.
  return [...byId.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.backupId.localeCompare(a.backupId));
}

/**
 * One backup by its id (which names its target): its manifest read from each destination of that
 * target, without listing anything else.
 */
export async function findBackup(config: Config, stores: StoreRegistry, backupId: string): Promise<CatalogEntry> {
  const { target } = parseBackupId(backupId);
  const t = config.targets[target];
  if (!t) {
    throw new RunbookError('BACKUP_NOT_FOUND', `backup ${backupId} belongs to target "${target}", which is not in the config`);
  }
  const found = await Promise.all(t.destinations.map((d) => readManifest(stores, d, target, backupId)));
  const destinations = t.destinations.filter((_, i) => typeof found[i] === 'object' && found[i] !== null);
  const manifest = found.find((m): m is Manifest => typeof m === 'object' && m !== null);
  if (!manifest) {
    throw new RunbookError(
      'BACKUP_NOT_FOUND',
      `no backup ${backupId} (no manifest in any destination of ${target})`,
      `list them with \`runbook backups list ${target}\``,
    );
  }
  return { backupId, target, createdAt: manifest.createdAt, manifest, destinations };
}
