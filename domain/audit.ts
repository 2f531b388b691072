// Audit records are separate objects under <target>/audit/, written once and never rewritten: the
// trail can only grow, in a directory or a bucket alike (object lock, if the bucket has it, makes
// that a guarantee). Each goes to every destination of the target.
import { randomBytes } from 'node:crypto';
import type { Config } from '../common/config';
import { targetOf } from '../common/config';
import type { AuditEvent } from '../common/audit';
import type { StoreRegistry } from './storage';

export async function appendAudit(config: Config, stores: StoreRegistry, e: AuditEvent): Promise<void> {
  const name = `${e.at.replace(/[-:.]/g, '')}-${e.event}-${randomBytes(4).toString('hex')}.json`;
  const body = JSON.stringify(e);
  await Promise.all(targetOf(config, e.target).destinations.map((d) => stores(d).write(`${e.target}/audit/${name}`, body)));
}

/** The trail of a target, oldest first, merged across destinations. */
export async function readAudit(config: Config, stores: StoreRegistry, target: string): Promise<AuditEvent[]> {
  const seen = new Map<string, AuditEvent>();
  for (const d of targetOf(config, target).destinations) {
    const store = stores(d);
    for (const name of await store.listFiles(`${target}/audit`)) {
      if (seen.has(name) || !/^[0-9TZ]+-[a-z]+-[0-9a-f]{8}\.json$/.test(name)) continue;
      const text = await store.readText(`${target}/audit/${name}`);
      if (text) seen.set(name, JSON.parse(text) as AuditEvent);
    }
  }
  return [...seen.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, e]) => e);
}
