// The audit trail of a target: a hash chain of records signed by the worker, at
// <target>/audit/chain/<seq>.json in every destination. Each record holds the SHA-256 of the stored
// bytes of the one before it, so a record changed, removed, inserted or moved breaks the chain where it
// happened, and only a trusted key can make a record that verifies. Sequence numbers are claimed by an
// exclusive create on the target's first destination (racing workers: one wins, the others read the
// new head and try again), and the same bytes are then copied to the others, never overwriting.
//
// What the chain alone cannot show is its newest records removed: a shorter chain is still a valid
// one. Comparing destinations shows it (the longest verified chain is the reference), and Object Lock on
// an S3 destination prevents it.
import { createHash } from 'node:crypto';
import { targetOf, type Config } from '../common/config';
import type { AuditBreak, AuditEntry, AuditEvent, AuditRecord, AuditVerification, LegacyAuditRecord } from '../common/audit';
import { RunbookError } from '../common/errors';
import type { Services } from './services';
import type { Store, StoreRegistry } from './storage';
import { canonicalJson } from './trust/signing';

export const GENESIS = '0'.repeat(64);
/** How far back an append looks for its own idempotency key (a retry of an append that did land). */
const LOOKBACK = 20;
const MAX_CLAIMS = 200;

const chainDir = (target: string) => `${target}/audit/chain`;
const chainKey = (target: string, seq: number) => `${chainDir(target)}/${String(seq).padStart(12, '0')}.json`;
const CHAIN_NAME = /^(\d{12})\.json$/;
const LEGACY_NAME = /^[0-9TZ]+-[a-z]+-[0-9a-f]{8}\.json$/;

export const sha256Hex = (bytes: string) => createHash('sha256').update(bytes, 'utf8').digest('hex');

/** The stored bytes of a record: canonical JSON, one line. */
export const recordBytes = (r: AuditRecord) => `${canonicalJson(r)}\n`;

async function chainSeqs(store: Store, target: string): Promise<number[]> {
  return (await store.listFiles(chainDir(target)))
    .map((n) => CHAIN_NAME.exec(n)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

export interface AppendResult {
  seq: number;
  /** False when a record with the same idempotency key was already there (a retried append). */
  appended: boolean;
  /** Destinations holding other bytes at that seq: left as they are, reported by verifyAudit. */
  disagreeing: string[];
}

/**
 * Appends the event to its target's chain, once per idempotency key (`<runId>/<activityId>`): an
 * append retried after it landed finds its record among the newest and only completes its copies.
 */
export async function appendAudit(
  services: Pick<Services, 'config' | 'stores' | 'signer'>,
  event: AuditEvent,
  idempotencyKey: string,
): Promise<AppendResult> {
  const destinations = targetOf(services.config, event.target).destinations;
  const [first, ...others] = destinations.map((d) => services.stores(d));
  const signer = services.signer();
  const seen = new Map<number, string>(); // seq -> stored bytes on the first destination (records never change)
  const read = async (seq: number) => {
    let bytes = seen.get(seq);
    if (bytes === undefined) {
      bytes = (await first!.readText(chainKey(event.target, seq))) ?? undefined;
      if (bytes !== undefined) seen.set(seq, bytes);
    }
    return bytes;
  };
  const copy = async (seq: number, bytes: string) => {
    const disagreeing: string[] = [];
    await Promise.all(
      others.map(async (s) => {
        if (!(await s.createIfAbsent(chainKey(event.target, seq), bytes, { retain: true }))) disagreeing.push(s.name);
      }),
    );
    return disagreeing;
  };

  for (let claim = 0; claim < MAX_CLAIMS; claim++) {
    const seqs = await chainSeqs(first!, event.target);
    const head = seqs.at(-1) ?? 0;
    for (const seq of seqs.slice(-LOOKBACK).reverse()) {
      const bytes = await read(seq);
      if (bytes !== undefined && parseRecord(bytes)?.idempotencyKey === idempotencyKey) {
        return { seq, appended: false, disagreeing: await copy(seq, bytes) };
      }
    }
    const prevBytes = head > 0 ? await read(head) : GENESIS;
    if (prevBytes === undefined) continue; // listed, then gone: read the head again
    // The event's own fields only: nothing else an input carries gets into a signed record.
    const { at, target, workflowId, runId, action, event: what, actor, identity, detail, evidence } = event;
    const record = signer.sign({
      at,
      target,
      workflowId,
      runId,
      action,
      event: what,
      actor,
      identity,
      detail,
      evidence,
      seq: head + 1,
      prev: head > 0 ? sha256Hex(prevBytes) : GENESIS,
      idempotencyKey,
    }) as AuditRecord;
    const bytes = recordBytes(record);
    if (await first!.createExclusive(chainKey(event.target, record.seq), bytes, { retain: true })) {
      return { seq: record.seq, appended: true, disagreeing: await copy(record.seq, bytes) };
    }
    // Another writer took that seq: read the new head and try again, after a moment.
    await new Promise((r) => setTimeout(r, Math.random() * Math.min(200, 5 * (claim + 1))));
  }
  throw new RunbookError(
    'STORAGE_FAILED',
    `could not append to the audit trail of ${event.target} in destination ${first!.name}: ${MAX_CLAIMS} sequence numbers taken by other writers in a row`,
    'retried; check for a runaway writer of that trail',
  );
}

function parseRecord(bytes: string): AuditRecord | null {
  try {
    const r = JSON.parse(bytes) as AuditRecord;
    return r && typeof r === 'object' && !Array.isArray(r) ? r : null;
  } catch {
    return null;
  }
}

/**
 * The trail of a target: records from before the chain first (marked legacy, unverifiable, oldest
 * first), then the chain in seq order, each seq from the first destination holding it. Reading is not
 * proving: `verifyAudit` does that.
 */
export async function readAudit(config: Config, stores: StoreRegistry, target: string): Promise<AuditEntry[]> {
  const legacy = new Map<string, LegacyAuditRecord>();
  const chain = new Map<number, AuditRecord>();
  for (const d of targetOf(config, target).destinations) {
    const store = stores(d);
    for (const name of await store.listFiles(`${target}/audit`)) {
      if (legacy.has(name) || !LEGACY_NAME.test(name)) continue;
      const text = await store.readText(`${target}/audit/${name}`);
      const e = text === null ? null : (parseRecord(text) as AuditEvent | null);
      if (e) legacy.set(name, { ...e, legacy: true });
    }
    for (const seq of await chainSeqs(store, target)) {
      if (chain.has(seq)) continue;
      const text = await store.readText(chainKey(target, seq));
      const r = text === null ? null : parseRecord(text);
      if (r) chain.set(seq, r);
    }
  }
  return [
    ...[...legacy.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, e]) => e),
    ...[...chain.entries()].sort(([a], [b]) => a - b).map(([, r]) => r),
  ];
}

interface DestinationWalk {
  destination: string;
  records: number;
  /** The stored bytes of the verified prefix: seq 1, 2, ... up to the first break. */
  verified: string[];
  break?: AuditBreak;
}

/** Walks one destination's chain from seq 1 to its first break. */
async function walk(services: Pick<Services, 'verify'>, store: Store, target: string): Promise<DestinationWalk> {
  const seqs = await chainSeqs(store, target);
  const out: DestinationWalk = { destination: store.name, records: seqs.length, verified: [] };
  const at = (seq: number, kind: AuditBreak['kind'], message: string) => {
    out.break = { destination: store.name, seq, kind, message };
    return out;
  };
  const texts = new Map<number, string | null>();
  const text = async (seq: number) => {
    if (!texts.has(seq)) texts.set(seq, await store.readText(chainKey(target, seq)));
    return texts.get(seq)!;
  };
  let prev = GENESIS;
  for (let i = 0; i < seqs.length; i++) {
    const seq = seqs[i]!;
    const expected = i + 1;
    if (seq !== expected) {
      const missing = seq === expected + 1 ? `record ${expected} is missing` : `records ${expected} to ${seq - 1} are missing`;
      return at(expected, 'deleted', `${missing} (the chain goes from ${expected === 1 ? 'its start' : expected - 1} to ${seq})`);
    }
    const bytes = await text(seq);
    if (bytes === null) return at(seq, 'deleted', `record ${seq} was listed but cannot be read`);
    const record = parseRecord(bytes);
    if (!record) return at(seq, 'changed', `record ${seq} is not a JSON record`);
    const verdict = services.verify(record);
    if (!verdict.ok) {
      // Whether the next file still chains onto the one before: then this one was put in between.
      const next = seqs[i + 1] === seq + 1 ? parseRecord((await text(seq + 1)) ?? '') : null;
      if (next && services.verify(next).ok && next.prev === prev) {
        return at(seq, 'inserted', `record ${seq} was inserted: the record after it chains onto record ${seq - 1} (${verdict.reason})`);
      }
      if (verdict.state === 'unsigned') return at(seq, 'inserted', `record ${seq} is not a record of this trail: it carries no signature`);
      if (/not in signing\.trust/.test(verdict.reason)) return at(seq, 'untrusted', `record ${seq}: ${verdict.reason}`);
      return at(seq, 'changed', `record ${seq} was changed: ${verdict.reason}`);
    }
    if (record.seq !== seq) {
      return at(
        seq,
        'reordered',
        `file ${seq} holds record ${typeof record.seq === 'number' ? record.seq : 'without a number'}: a record was moved, copied or renumbered`,
      );
    }
    if (record.target !== target) return at(seq, 'inserted', `record ${seq} belongs to the trail of another target`);
    if (record.prev !== prev) {
      return seq === 1
        ? at(seq, 'inserted', 'record 1 does not start a chain: records before it were removed and the rest renumbered')
        : at(
            seq - 1,
            'changed',
            `record ${seq - 1} is not the one record ${seq} was chained to: its stored bytes were changed or replaced`,
          );
    }
    out.verified.push(bytes);
    prev = sha256Hex(bytes);
  }
  return out;
}

/**
 * Verifies the chain of a target in every destination: each from seq 1 to its first break, then
 * against each other. The longest verified chain is the reference; a destination that differs from
 * it, or holds fewer records, is reported (the only way to see the newest records removed).
 */
export async function verifyAudit(services: Pick<Services, 'config' | 'stores' | 'verify'>, target: string): Promise<AuditVerification> {
  const destinations = targetOf(services.config, target).destinations;
  const walks = await Promise.all(destinations.map((d) => walk(services, services.stores(d), target)));
  const breaks: AuditBreak[] = walks.flatMap((w) => (w.break ? [w.break] : []));
  const reference = walks.reduce((best, w) => (w.verified.length > best.verified.length ? w : best), walks[0]!);
  for (const w of walks) {
    if (w === reference) continue;
    const differs = w.verified.findIndex((bytes, i) => bytes !== reference.verified[i]);
    if (differs >= 0) {
      breaks.push({
        destination: w.destination,
        seq: differs + 1,
        kind: 'disagrees',
        message: `record ${differs + 1} differs from the one in destination ${reference.destination} (both verify: the trails forked)`,
      });
    } else if (!w.break && w.verified.length < reference.verified.length) {
      const from = w.verified.length + 1;
      const to = reference.verified.length;
      breaks.push({
        destination: w.destination,
        seq: from,
        kind: 'shorter',
        message:
          `holds ${w.verified.length} records, destination ${reference.destination} ${to}: ` +
          `${from === to ? `record ${to} is` : `records ${from} to ${to} are`} missing here (the newest removed, or not copied yet)`,
      });
    }
  }
  let legacy = 0;
  for (const d of destinations) {
    const names = (await services.stores(d).listFiles(`${target}/audit`)).filter((n) => LEGACY_NAME.test(n));
    legacy = Math.max(legacy, names.length);
  }
  return {
    target,
    ok: breaks.length === 0,
    records: reference.verified.length,
    legacy,
    destinations: walks.map((w) => ({ destination: w.destination, records: w.records, verified: w.verified.length })),
    breaks,
  };
}
