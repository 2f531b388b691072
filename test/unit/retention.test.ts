import { describe, expect, it } from 'vitest';
import type { RetentionPolicy } from '../../common/config';
import { RunbookError } from '../../common/errors';
import { applyRetentionPolicy, type RetentionCandidate } from '../../common/retention';

/** [backupId, ISO time, verified (default true)] */
type Row = [id: string, iso: string, verified?: boolean];

interface Case {
  name: string;
  backups: Row[];
  policy: Partial<RetentionPolicy>;
  keep: string[];
  remove: string[];
  /** Reasons to check for some kept ids (the others are only checked for being kept). */
  reasons?: Record<string, string[]>;
}

const policyOf = (p: Partial<RetentionPolicy>): RetentionPolicy => ({
  keepLast: 0,
  hourly: 0,
  daily: 0,
  weekly: 0,
  monthly: 0,
  ...p,
});

const candidates = (rows: Row[]): RetentionCandidate[] =>
  rows.map(([backupId, iso, verified = true]) => ({ backupId, time: new Date(iso), verified }));

/** A deterministic PRNG (mulberry32), so the random tests are the same on every run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

// A day of backups every 20 minutes on 2026-11-20, ids "hHH-MM", plus one on the evening before.
const everyTwentyMinutes: Row[] = [['prev-day', '2026-11-19T23:40:00Z']];
for (let h = 0; h < 24; h++) {
  const hh = String(h).padStart(2, '0');
  for (const mm of ['00', '20', '40']) everyTwentyMinutes.push([`h${hh}-${mm}`, `2026-11-20T${hh}:${mm}:00Z`]);
}
const lastOfEachHour = Array.from({ length: 24 }, (_, i) => `h${String(23 - i).padStart(2, '0')}-40`);

const cases: Case[] = [
  {
    name: 'keepLast 3 keeps the three newest backups and removes the rest',
    backups: [
      ['k1', '2026-11-20T01:00:00Z'],
      ['k2', '2026-11-20T02:00:00Z'],
      ['k3', '2026-11-20T03:00:00Z'],
      ['k4', '2026-11-20T04:00:00Z'],
      ['k5', '2026-11-20T05:00:00Z'],
    ],
    policy: { keepLast: 3 },
    keep: ['k5', 'k4', 'k3'],
    remove: ['k2', 'k1'],
    reasons: { k5: ['last'], k4: ['last'], k3: ['last'] },
  },
  {
    name: 'keepLast larger than the number of backups keeps them all',
    backups: [
      ['a', '2026-11-20T01:00:00Z'],
      ['b', '2026-11-20T02:00:00Z'],
    ],
    policy: { keepLast: 10 },
    keep: ['b', 'a'],
    remove: [],
  },
  {
    name: 'hourly 24 over a day of backups every 20 minutes keeps the last backup of each hour',
    backups: everyTwentyMinutes,
    policy: { hourly: 24 },
    keep: lastOfEachHour,
    remove: everyTwentyMinutes
      .map(([id]) => id)
      .filter((id) => !lastOfEachHour.includes(id))
      .reverse(),
    reasons: { 'h23-40': ['hourly'], 'h00-40': ['hourly'] },
  },
  {
    name: 'hourly 3 over a day of backups every 20 minutes keeps only the last backup of the three newest hours',
    backups: everyTwentyMinutes,
    policy: { hourly: 3 },
    keep: ['h23-40', 'h22-40', 'h21-40'],
    remove: everyTwentyMinutes
      .map(([id]) => id)
      .filter((id) => !['h23-40', 'h22-40', 'h21-40'].includes(id))
      .reverse(),
  },
  {
    name: 'daily with several backups per day keeps the newest of each day, with days cut in UTC',
    backups: [
      ['a', '2026-11-18T01:00:00Z'],
      ['b', '2026-11-18T23:59:00Z'],
      ['c', '2026-11-19T00:00:00Z'],
      ['d', '2026-11-20T01:30:00+02:00'], // 2026-11-19T23:30Z: the newest of the 19th, not of the 20th
      ['e', '2026-11-20T06:00:00Z'],
      ['f', '2026-11-20T06:30:00Z'],
    ],
    policy: { daily: 3 },
    keep: ['f', 'd', 'b'],
    remove: ['e', 'c', 'a'],
    reasons: { f: ['daily'], d: ['daily'], b: ['daily'] },
  },
  {
    name: 'weekly across the ISO year boundary puts 2026-12-28 to 2027-01-03 in one week, 2026-W53',
    backups: [
      ['w1', '2026-12-20T12:00:00Z'], // Sunday, 2026-W51
      ['w2', '2026-12-21T12:00:00Z'], // Monday, 2026-W52
      ['w3', '2026-12-27T12:00:00Z'], // Sunday, 2026-W52
      ['w4', '2026-12-28T12:00:00Z'], // Monday, 2026-W53
      ['w5', '2026-12-31T12:00:00Z'], // Thursday, 2026-W53
      ['w6', '2027-01-01T12:00:00Z'], // Friday, still 2026-W53
      ['w7', '2027-01-03T23:59:00Z'], // Sunday, still 2026-W53
      ['w8', '2027-01-04T00:00:00Z'], // Monday, 2027-W01
    ],
    policy: { weekly: 3 },
    keep: ['w8', 'w7', 'w3'],
    remove: ['w6', 'w5', 'w4', 'w2', 'w1'],
    reasons: { w8: ['weekly'], w7: ['weekly'], w3: ['weekly'] },
  },
  {
    name: 'monthly keeps the newest backup of each of the newest months that have backups',
    backups: [
      ['sep', '2026-09-15T12:00:00Z'],
      ['oct-first', '2026-10-01T00:00:00Z'],
      ['oct-last', '2026-10-31T23:59:00Z'],
      ['nov-first', '2026-11-01T00:00:00Z'],
      ['nov-mid', '2026-11-20T12:00:00Z'],
      ['jan', '2027-01-02T12:00:00Z'], // no backup in December
    ],
    policy: { monthly: 3 },
    keep: ['jan', 'nov-mid', 'oct-last'],
    remove: ['nov-first', 'oct-first', 'sep'],
    reasons: { jan: ['monthly'], 'nov-mid': ['monthly'], 'oct-last': ['monthly'] },
  },
  {
    name: 'a combined policy lists every reason a backup is kept for, in the order last, hourly, daily, weekly, monthly',
    backups: [
      ['c1', '2026-11-10T08:00:00Z'], // 2026-W46
      ['c2', '2026-10-30T08:00:00Z'], // October
      ['c3', '2026-11-19T10:00:00Z'],
      ['c4', '2026-11-20T09:15:00Z'],
      ['c5', '2026-11-20T10:05:00Z'],
      ['c6', '2026-11-20T10:45:00Z'],
    ],
    policy: { keepLast: 1, hourly: 2, daily: 2, weekly: 2, monthly: 2 },
    keep: ['c6', 'c4', 'c3', 'c1', 'c2'],
    remove: ['c5'],
    reasons: {
      c6: ['last', 'hourly', 'daily', 'weekly', 'monthly'],
      c4: ['hourly'],
      c3: ['daily'],
      c1: ['weekly'],
      c2: ['monthly'],
    },
  },
  {
    name: 'an empty list of backups keeps nothing and removes nothing',
    backups: [],
    policy: { keepLast: 3 },
    keep: [],
    remove: [],
  },
  {
    name: 'unverified backups newer than the newest verified are kept and older unverified ones are removed',
    backups: [
      ['v1', '2026-11-20T01:00:00Z'],
      ['u1', '2026-11-20T02:00:00Z', false],
      ['v2', '2026-11-20T03:00:00Z'],
      ['u2', '2026-11-20T04:00:00Z', false],
      ['u3', '2026-11-20T05:00:00Z', false],
    ],
    policy: { keepLast: 1 },
    keep: ['u3', 'u2', 'v2'],
    remove: ['u1', 'v1'],
    reasons: { u3: ['newer-than-newest-verified'], u2: ['newer-than-newest-verified'], v2: ['last'] },
  },
  {
    name: 'unverified backups never count toward keepLast',
    backups: [
      ['v1', '2026-11-20T01:00:00Z'],
      ['v2', '2026-11-20T02:00:00Z'],
      ['u1', '2026-11-20T02:30:00Z', false],
      ['v3', '2026-11-20T03:00:00Z'],
    ],
    policy: { keepLast: 2 },
    keep: ['v3', 'v2'],
    remove: ['u1', 'v1'],
  },
  {
    name: 'with no verified backup at all nothing is removed',
    backups: [
      ['u1', '2026-11-18T01:00:00Z', false],
      ['u2', '2026-11-19T01:00:00Z', false],
      ['u3', '2026-11-20T01:00:00Z', false],
    ],
    policy: { keepLast: 1 },
    keep: ['u3', 'u2', 'u1'],
    remove: [],
    reasons: { u3: ['no-verified-backup'], u2: ['no-verified-backup'], u1: ['no-verified-backup'] },
  },
  {
    name: 'the newest verified backup survives hourly 1 when a newer unverified backup shares its hour',
    backups: [
      ['older-hour', '2026-11-20T09:00:00Z'],
      ['same-hour-older', '2026-11-20T10:10:00Z'],
      ['newest-verified', '2026-11-20T10:30:00Z'],
      ['newer-unverified', '2026-11-20T10:50:00Z', false],
    ],
    policy: { hourly: 1 },
    keep: ['newer-unverified', 'newest-verified'],
    remove: ['same-hour-older', 'older-hour'],
    reasons: { 'newer-unverified': ['newer-than-newest-verified'], 'newest-verified': ['hourly'] },
  },
  {
    name: 'backups taken at the same instant are ordered by id descending',
    backups: [
      ['tie-a', '2026-11-20T10:00:00Z'],
      ['tie-c', '2026-11-20T10:00:00Z'],
      ['tie-b', '2026-11-20T10:00:00Z'],
    ],
    policy: { keepLast: 1 },
    keep: ['tie-c'],
    remove: ['tie-b', 'tie-a'],
  },
];

describe('applyRetentionPolicy', () => {
  it.each(cases)('$name', ({ backups, policy, keep, remove, reasons }) => {
    const decision = applyRetentionPolicy(candidates(backups), policyOf(policy));
    expect(decision.keep.map((k) => k.backupId)).toEqual(keep);
    expect(decision.remove).toEqual(remove);
    for (const k of decision.keep) expect(k.reasons.length).toBeGreaterThan(0);
    for (const [id, why] of Object.entries(reasons ?? {})) {
      expect(decision.keep.find((k) => k.backupId === id)?.reasons).toEqual(why);
    }
  });

  it.each(cases)('shuffling the input gives the same decision: $name', ({ backups, policy }) => {
    const random = mulberry32(42);
    const expected = applyRetentionPolicy(candidates(backups), policyOf(policy));
    for (let round = 0; round < 5; round++) {
      expect(applyRetentionPolicy(shuffled(candidates(backups), random), policyOf(policy))).toEqual(expected);
    }
    expect(applyRetentionPolicy(candidates(backups).reverse(), policyOf(policy))).toEqual(expected);
  });

  it('does not reorder or change the array it is given', () => {
    const input = candidates([
      ['a', '2026-11-20T01:00:00Z'],
      ['c', '2026-11-20T03:00:00Z', false],
      ['b', '2026-11-20T02:00:00Z'],
    ]);
    const before = structuredClone(input);
    applyRetentionPolicy(input, policyOf({ keepLast: 1 }));
    expect(input).toEqual(before);
  });

  it('refuses a policy that keeps nothing with a BAD_INPUT error that says how to fix it', () => {
    const backups = candidates([['a', '2026-11-20T01:00:00Z']]);
    let caught: unknown;
    try {
      applyRetentionPolicy(backups, policyOf({}));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RunbookError);
    expect((caught as RunbookError).code).toBe('BAD_INPUT');
    expect((caught as RunbookError).message).toMatch(/keeps nothing is refused/);
    expect(`${(caught as RunbookError).message} ${(caught as RunbookError).hint}`).toMatch(/keepLast/);
  });

  it.each([
    ['a negative count', policyOf({ keepLast: 1, daily: -1 }), candidates([['a', '2026-11-20T01:00:00Z']])],
    ['a fractional count', policyOf({ keepLast: 1.5 }), candidates([['a', '2026-11-20T01:00:00Z']])],
    [
      'a backup id listed twice',
      policyOf({ keepLast: 1 }),
      candidates([
        ['a', '2026-11-20T01:00:00Z'],
        ['a', '2026-11-20T02:00:00Z'],
      ]),
    ],
    ['a backup with an invalid time', policyOf({ keepLast: 1 }), candidates([['a', 'not a time']])],
  ])('refuses %s with a BAD_INPUT error', (_what, policy, backups) => {
    expect(() => applyRetentionPolicy(backups, policy)).toThrow(expect.objectContaining({ name: 'RunbookError', code: 'BAD_INPUT' }));
  });

  it('keeps every id exactly once and always keeps the newest verified backup, for 200 random sets', () => {
    const random = mulberry32(20261120);
    const int = (max: number) => Math.floor(random() * (max + 1));
    const start = Date.UTC(2026, 9, 1);
    for (let set = 0; set < 200; set++) {
      const backups: RetentionCandidate[] = Array.from({ length: int(40) }, (_, i) => ({
        backupId: `b${set}-${i}`,
        // Some collide on the same minute, to exercise the tie-break.
        time: new Date(start + int(120 * 24 * 60) * 60_000),
        verified: random() < 0.7,
      }));
      const policy = policyOf({ keepLast: int(4), hourly: int(6), daily: int(8), weekly: int(5), monthly: int(4) });
      if (policy.keepLast + policy.hourly + policy.daily + policy.weekly + policy.monthly === 0) policy.daily = 1;

      const decision = applyRetentionPolicy(backups, policy);
      const context = `set ${set}: ${JSON.stringify(policy)}`;

      const ids = [...decision.keep.map((k) => k.backupId), ...decision.remove];
      expect([...ids].sort(), context).toEqual(backups.map((b) => b.backupId).sort());

      const byId = new Map(backups.map((b) => [b.backupId, b]));
      const order = (id: string) => byId.get(id)!.time.getTime();
      for (const list of [decision.keep.map((k) => k.backupId), decision.remove]) {
        for (let i = 1; i < list.length; i++) expect(order(list[i - 1]!), context).toBeGreaterThanOrEqual(order(list[i]!));
      }
      for (const k of decision.keep) expect(k.reasons.length, context).toBeGreaterThan(0);

      const verified = backups.filter((b) => b.verified);
      if (verified.length === 0) {
        expect(decision.remove, context).toEqual([]);
        continue;
      }
      const newestVerified = verified.reduce((a, b) =>
        b.time.getTime() > a.time.getTime() || (b.time.getTime() === a.time.getTime() && b.backupId > a.backupId) ? b : a,
      );
      expect(
        decision.keep.map((k) => k.backupId),
        context,
      ).toContain(newestVerified.backupId);
      expect(applyRetentionPolicy(shuffled(backups, random), policy), context).toEqual(decision);
    }
  });
});
