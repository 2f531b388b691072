// Properties, checked on generated inputs: the replication stream parser returns exactly the RDB
// whatever the framing and however TCP cuts the bytes; retention is a partition that never loses the
// newest verified backup and does not depend on input order.
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReplicationStream } from '../../domain/capture/replication';
import type { RetentionPolicy } from '../../common/config';
import { applyRetentionPolicy, type RetentionCandidate } from '../../common/retention';

// ---------- the replication stream parser ----------

/** Deterministic bytes (xorshift32), so a 200 KB payload costs fast-check two numbers, not 200k. */
function bytesOf(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const MARK_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';

interface Transfer {
  /** What the server sends after SYNC. */
  wire: Buffer;
  /** Where to cut `wire` into separate writes. */
  cuts: number[];
}

let server: net.Server;
let port: number;
let transfer: Transfer | undefined;
const sockets = new Set<net.Socket>();

async function writePieces(sock: net.Socket, { wire, cuts }: Transfer): Promise<void> {
  let from = 0;
  for (const to of [...cuts, wire.length]) {
    if (to <= from) continue;
    if (sock.destroyed) return;
    sock.write(wire.subarray(from, to));
    from = to;
    await new Promise((r) => setImmediate(r));
  }
}

beforeAll(async () => {
  server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.length > 4096) return void sock.destroy(); // not our client
      // The client sends two RESP REPLCONFs and an inline SYNC, each after the previous reply.
      for (;;) {
        if (buf.startsWith('SYNC\r\n')) {
          buf = buf.slice(6);
          if (transfer) void writePieces(sock, transfer);
          continue;
        }
        const m = /^\*3\r\n\$8\r\nREPLCONF\r\n\$\d+\r\n[a-z-]+\r\n\$\d+\r\n\w+\r\n/.exec(buf);
        if (!m) return;
        buf = buf.slice(m[0].length);
        sock.write('+OK\r\n');
      }
    });
  });
  server.maxConnections = 4;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

describe('openReplicationStream', () => {
  const framing = fc.oneof(
    fc.record({ kind: fc.constant('length' as const), trailing: fc.boolean() }),
    fc.record({
      kind: fc.constant('eof' as const),
      mark: fc.string({ unit: fc.constantFrom(...MARK_CHARS), minLength: 40, maxLength: 40 }),
    }),
  );
  const arbitrary = fc.record({
    length: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 200_000 })),
    seed: fc.integer(),
    framing,
    keepAlives: fc.integer({ min: 0, max: 5 }),
    // Bursts of cuts a few bytes apart, near the start (the header), the end (the mark) or anywhere.
    cuts: fc.array(
      fc.record({
        anchor: fc.oneof(
          fc.record({ from: fc.constant('start' as const), at: fc.integer({ min: 0, max: 120 }) }),
          fc.record({ from: fc.constant('end' as const), at: fc.integer({ min: 0, max: 120 }) }),
          fc.record({ from: fc.constant('anywhere' as const), at: fc.nat() }),
        ),
        steps: fc.array(fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 45 })), { maxLength: 8 }),
      }),
      { maxLength: 6 },
    ),
  });

  it('yields exactly the payload, whatever the framing, keep-alives and TCP chunking', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(arbitrary, async ({ length, seed, framing, keepAlives, cuts }) => {
        const payload = Buffer.concat([Buffer.from('REDIS0010'), bytesOf(length, seed)]);
        const parts: Buffer[] = [Buffer.from('\n'.repeat(keepAlives))];
        if (framing.kind === 'length') {
          parts.push(Buffer.from(`$${payload.length}\r\n`), payload);
          // A server without rdb-only goes on with the replication stream: never part of the RDB.
          if (framing.trailing) parts.push(Buffer.from('*1\r\n$4\r\nPING\r\n'));
        } else {
          const mark = Buffer.from(framing.mark);
          // The mark must not occur before the end (Redis picks 40 random hex bytes for that reason).
          fc.pre(Buffer.concat([payload, mark]).indexOf(mark) === payload.length);
          parts.push(Buffer.from(`$EOF:${framing.mark}\r\n`), payload, mark);
        }
        const wire = Buffer.concat(parts);
        const at = cuts.flatMap(({ anchor, steps }) => {
          let c = anchor.from === 'start' ? anchor.at : anchor.from === 'end' ? wire.length - anchor.at : anchor.at % (wire.length + 1);
          return [c, ...steps.map((s) => (c += s))];
        });
        transfer = { wire, cuts: [...new Set(at.filter((c) => c > 0 && c < wire.length))].sort((a, b) => a - b) };

        const capture = await openReplicationStream({ host: '127.0.0.1', port, idleTimeoutMs: 1_000, connectTimeoutMs: 2_000 });
        const got = await collect(capture.stream);
        expect(capture.mode).toBe(framing.kind === 'length' ? 'length' : 'eof-mark');
        expect(capture.declaredSize).toBe(framing.kind === 'length' ? payload.length : undefined);
        expect(capture.rdbOnly).toBe(true);
        expect(got.length).toBe(payload.length);
        expect(got.equals(payload)).toBe(true);
      }),
      // A wrong parser may wait for bytes that never come (1 s each): shrinking is cut short, not the test.
      { numRuns: 30, interruptAfterTimeLimit: 40_000, markInterruptAsFailure: true },
    );
  });
});

// ---------- retention ----------

const MINUTE = 60_000;
const BASE = Date.UTC(2025, 10, 1); // spans 2026-W53 and two year ends

const policyArb: fc.Arbitrary<RetentionPolicy> = fc
  .record({
    keepLast: fc.integer({ min: 0, max: 6 }),
    hourly: fc.integer({ min: 0, max: 6 }),
    daily: fc.integer({ min: 0, max: 6 }),
    weekly: fc.integer({ min: 0, max: 6 }),
    monthly: fc.integer({ min: 0, max: 6 }),
  })
  .filter((p) => p.keepLast + p.hourly + p.daily + p.weekly + p.monthly > 0);

const backupsArb: fc.Arbitrary<RetentionCandidate[]> = fc
  .uniqueArray(
    fc.record({
      backupId: fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', '0', '1', '-'), minLength: 1, maxLength: 6 }),
      // Often equal or close times (ties, same hour or day), sometimes anywhere over ~15 months.
      minutes: fc.oneof(
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 0, max: 3 * 24 * 60 }),
        fc.integer({ min: 0, max: 460 * 24 * 60 }),
      ),
      verified: fc.integer({ min: 0, max: 3 }).map((n) => n > 0), // mostly verified
    }),
    { selector: (b) => b.backupId, maxLength: 40 },
  )
  .map((rows) => rows.map(({ backupId, minutes, verified }) => ({ backupId, time: new Date(BASE + minutes * MINUTE), verified })));

/** The order the policy documents: newest first, equal times by backupId descending. */
const newestFirst = (a: RetentionCandidate, b: RetentionCandidate) =>
  b.time.getTime() - a.time.getTime() || (a.backupId < b.backupId ? 1 : a.backupId > b.backupId ? -1 : 0);

/** A permutation of `xs` by sorting on random keys. */
const permuted = <T>(xs: T[], keys: number[]) =>
  xs
    .map((x, i) => [x, keys[i] ?? i] as const)
    .sort((a, b) => a[1] - b[1])
    .map(([x]) => x);

describe('applyRetentionPolicy', () => {
  it('puts every backup in exactly one of keep and remove, each kept one with a reason', () => {
    fc.assert(
      fc.property(backupsArb, policyArb, (backups, policy) => {
        const d = applyRetentionPolicy(backups, policy);
        const all = [...d.keep.map((k) => k.backupId), ...d.remove];
        expect(all.length).toBe(backups.length);
        expect(new Set(all)).toEqual(new Set(backups.map((b) => b.backupId)));
        for (const k of d.keep) expect(k.reasons.length).toBeGreaterThan(0);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps the newest verified backup and the keepLast newest verified ones; removes nothing without a verified one', () => {
    fc.assert(
      fc.property(backupsArb, policyArb, (backups, policy) => {
        const d = applyRetentionPolicy(backups, policy);
        const kept = new Set(d.keep.map((k) => k.backupId));
        const verified = backups.filter((b) => b.verified).sort(newestFirst);
        if (verified.length === 0) {
          expect(d.remove).toEqual([]);
          return;
        }
        expect(kept.has(verified[0]!.backupId)).toBe(true);
        for (const b of verified.slice(0, policy.keepLast)) expect(kept.has(b.backupId)).toBe(true);
        // Unverified backups newer than the newest verified one may still be under verification.
        for (const b of backups) if (!b.verified && newestFirst(b, verified[0]!) < 0) expect(kept.has(b.backupId)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('does not depend on the order of its input, and does not change it', () => {
    fc.assert(
      fc.property(backupsArb, policyArb, fc.array(fc.double({ noNaN: true }), { maxLength: 40 }), (backups, policy, keys) => {
        const copy = backups.map((b) => ({ ...b }));
        const a = applyRetentionPolicy(backups, policy);
        const b = applyRetentionPolicy(permuted(backups, keys), policy);
        expect(b).toEqual(a);
        expect(backups).toEqual(copy);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps at most `count` backups per bucket rule, each in a different bucket', () => {
    const bucketOf: Record<'hourly' | 'daily' | 'monthly', (d: Date) => string> = {
      hourly: (d) => d.toISOString().slice(0, 13),
      daily: (d) => d.toISOString().slice(0, 10),
      monthly: (d) => d.toISOString().slice(0, 7),
    };
    fc.assert(
      fc.property(backupsArb, policyArb, (backups, policy) => {
        const d = applyRetentionPolicy(backups, policy);
        const byId = new Map(backups.map((b) => [b.backupId, b]));
        for (const rule of ['hourly', 'daily', 'weekly', 'monthly'] as const) {
          const ids = d.keep.filter((k) => k.reasons.includes(rule)).map((k) => k.backupId);
          expect(ids.length).toBeLessThanOrEqual(policy[rule]);
          for (const id of ids) expect(byId.get(id)!.verified).toBe(true);
          if (rule !== 'weekly') expect(new Set(ids.map((id) => bucketOf[rule](byId.get(id)!.time))).size).toBe(ids.length);
        }
      }),
      { numRuns: 300 },
    );
  });
});
