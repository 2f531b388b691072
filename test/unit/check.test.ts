import { describe, expect, it } from 'vitest';
import { evaluateTarget, humanMs, type CheckInput, type ProblemCode } from '../../common/check';
import type { DrillReport } from '../../common/drill-types';
import type { Manifest } from '../../common/types';

const NOW = new Date('2026-11-22T12:00:00Z');
const H = 3_600_000;
const D = 24 * H;
const ago = (ms: number) => new Date(NOW.getTime() - ms).toISOString();

/** A backup taken `age` ago with an RDB of `size` bytes; `failed` names copies that failed verification. */
function backup(age: number, size = 1000, failed: string[] = []): Manifest {
  const createdAt = ago(age);
  const stamp = createdAt.replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  return {
    backupId: `main-${stamp}-${(age % 0xffffffff).toString(16).padStart(8, '0').slice(-8)}`,
    target: 'main',
    createdAt,
    rdb: { version: 12, size, sha256: 'x', keys: 1, expires: 0, check: 'redis-check-rdb' },
    verification: {
      verifiedAt: createdAt,
      copies: ['disk', 'offsite'].map((destination) => ({
        destination,
        ok: !failed.includes(destination),
        detail: failed.includes(destination) ? 'sha256 mismatch' : 'ok',
      })),
    },
  } as Manifest;
}

function drill(age: number, outcome: 'passed' | 'failed', objectivesMet = true): DrillReport {
  return {
    drillId: `drill-${age}`,
    target: 'main',
    workflowId: 'w',
    runId: 'r',
    requestedBy: 'test',
    startedAt: ago(age + 60_000),
    finishedAt: ago(age),
    outcome,
    ...(outcome === 'failed' ? { reason: 'the sandbox did not load the RDB' } : {}),
    phases: [],
    checks: [],
    rto: { measuredMs: outcome === 'passed' ? (objectivesMet ? 60_000 : 2 * H) : null, objectiveMs: H, met: objectivesMet },
    rpo: { newestAgeMs: H, maxGapMs: 2 * H, windowMs: 7 * D, backupsInWindow: 5, objectiveMs: D, met: true },
    objectivesMet: outcome === 'passed' ? objectivesMet : false,
  };
}

const base = (over: Partial<CheckInput> = {}): CheckInput => ({
  target: 'main',
  now: NOW,
  rpoMs: D,
  sizeChange: 0.5,
  diskFull: 0.8,
  backups: [backup(H)],
  drills: [],
  suspicious: [],
  disks: [
    { destination: 'disk', usedFraction: 0.3 },
    { destination: 'offsite', usedFraction: null },
  ],
  ...over,
});

interface Case {
  name: string;
  input: Partial<CheckInput>;
  problems: ProblemCode[];
  /** Fragments the messages must hold (what, where, what to do). */
  says?: string[];
}

const cases: Case[] = [
  { name: 'a fresh verified backup and no drill configured', input: {}, problems: [] },
  { name: 'nothing stored at all', input: { backups: [] }, problems: ['no-backup'], says: ['runbook backup main'] },
  {
    name: 'the newest verified backup older than the RPO',
    input: { backups: [backup(D + H)] },
    problems: ['backup-too-old'],
    says: ['1d 1h old', '1d RPO'],
  },
  { name: 'a backup exactly at the RPO is not too old', input: { backups: [backup(D)] }, problems: [] },
  {
    name: 'a fresh backup that failed verification, an older verified one past the RPO',
    input: { backups: [backup(H, 1000, ['offsite']), backup(2 * D)] },
    problems: ['backup-too-old', 'verification'],
    says: ['offsite', 'sha256 mismatch', 'runbook backups verify'],
  },
  {
    name: 'no verified backup at all',
    input: { backups: [backup(H, 1000, ['disk', 'offsite'])] },
    problems: ['backup-too-old', 'verification', 'verification'],
    says: ['no verified backup'],
  },
  {
    name: 'damaged manifests',
    input: { suspicious: ['disk:main-20261101T000000Z-00000000'] },
    problems: ['verification'],
    says: ['disk:main-20261101T000000Z-00000000'],
  },
  {
    name: 'the newest RDB half the size of the previous ones',
    input: { backups: [backup(H, 400), backup(2 * H, 1000), backup(3 * H, 1000), backup(4 * H, 1000)] },
    problems: ['size-anomaly'],
    says: ['-60%', '±50%'],
  },
  {
    name: 'the newest RDB twice as large and more',
    input: { backups: [backup(H, 2600), backup(2 * H, 1000), backup(3 * H, 1200), backup(4 * H, 800)] },
    problems: ['size-anomaly'],
    says: ['+160%'],
  },
  {
    name: 'a size change within the limit',
    input: { backups: [backup(H, 1400), backup(2 * H, 1000), backup(3 * H, 1000), backup(4 * H, 1000)] },
    problems: [],
  },
  {
    name: 'a size change with only two previous backups is not judged',
    input: { backups: [backup(H, 10), backup(2 * H, 1000), backup(3 * H, 1000)] },
    problems: [],
  },
  {
    name: 'only the previous seven are averaged',
    input: {
      backups: [backup(H, 1000), ...Array.from({ length: 7 }, (_, i) => backup((i + 2) * H, 1000)), backup(10 * H, 1_000_000)],
    },
    problems: [],
  },
  {
    name: 'a size change within a custom, looser limit',
    input: { sizeChange: 2, backups: [backup(H, 2600), backup(2 * H, 1000), backup(3 * H, 1000), backup(4 * H, 1000)] },
    problems: [],
  },
  {
    name: 'a full local disk',
    input: { disks: [{ destination: 'disk', usedFraction: 0.93 }] },
    problems: ['disk-full'],
    says: ['disk', '93%', 'retention'],
  },
  { name: 'a disk at the limit is not full', input: { disks: [{ destination: 'disk', usedFraction: 0.8 }] }, problems: [] },
  {
    name: 'the last drill failed',
    input: { drills: [drill(D, 'failed'), drill(10 * D, 'passed')] },
    problems: ['drill-failed'],
    says: ['the sandbox did not load the RDB', 'runbook drill main'],
  },
  { name: 'an old failure followed by a pass', input: { drills: [drill(D, 'passed'), drill(10 * D, 'failed')] }, problems: [] },
  {
    name: 'drills required and never run',
    input: { drill: { intervalMs: 35 * D } },
    problems: ['drill-overdue'],
    says: ['never passed a drill', 'every 35d'],
  },
  {
    name: 'drills required and the last pass too old',
    input: { drill: { intervalMs: 35 * D }, drills: [drill(40 * D, 'passed')] },
    problems: ['drill-overdue'],
    says: ['40d ago'],
  },
  { name: 'drills required and passed in time', input: { drill: { intervalMs: 35 * D }, drills: [drill(3 * D, 'passed')] }, problems: [] },
  {
    name: 'drills required, failing lately, none passed in time',
    input: { drill: { intervalMs: 35 * D }, drills: [drill(D, 'failed'), drill(50 * D, 'passed')] },
    problems: ['drill-failed', 'drill-overdue'],
  },
  {
    name: 'drills required, the last one failed but an earlier one passed in time',
    input: { drill: { intervalMs: 35 * D }, drills: [drill(D, 'failed'), drill(5 * D, 'passed')] },
    problems: ['drill-failed'],
  },
  {
    name: 'a passed drill that missed its objectives',
    input: { drills: [drill(D, 'passed', false)] },
    problems: ['objective-missed'],
    says: ['RTO 2h against 1h'],
  },
  {
    name: 'an unreadable destination: what was read is judged, no-backup is not claimed',
    input: { backups: [], unreadable: [{ destination: 'offsite', error: 'connect ECONNREFUSED' }] },
    problems: ['storage-unreadable'],
    says: ['offsite', 'ECONNREFUSED'],
  },
  {
    name: 'everything at once',
    input: {
      backups: [backup(3 * D, 100, ['disk']), backup(4 * D), backup(5 * D), backup(6 * D)],
      suspicious: ['offsite:main-20261101T000000Z-00000000'],
      disks: [{ destination: 'disk', usedFraction: 0.99 }],
      drill: { intervalMs: 35 * D },
      drills: [drill(D, 'failed')],
    },
    problems: ['backup-too-old', 'size-anomaly', 'verification', 'verification', 'disk-full', 'drill-failed', 'drill-overdue'],
  },
];

describe('evaluateTarget', () => {
  it.each(cases)('$name', ({ input, problems, says }) => {
    const result = evaluateTarget(base(input));
    expect(result.problems.map((p) => p.code)).toEqual(problems);
    expect(result.ok).toBe(problems.length === 0);
    const text = result.problems.map((p) => p.message).join('\n');
    for (const s of says ?? []) expect(text).toContain(s);
    for (const p of result.problems) expect(p.message).toMatch(/main|disk|offsite/);
  });

  it('states the facts a monitor wants', () => {
    const newest = backup(2 * H, 1000, ['offsite']);
    const older = backup(5 * H);
    const r = evaluateTarget(base({ backups: [newest, older], drills: [drill(D, 'failed'), drill(3 * D, 'passed')] }));
    expect(r.facts).toEqual({
      backups: 2,
      newestBackup: { backupId: newest.backupId, createdAt: newest.createdAt, ageMs: 2 * H, rdbSize: 1000, verified: false },
      newestVerifiedBackup: { backupId: older.backupId, createdAt: older.createdAt, ageMs: 5 * H },
      lastDrill: { drillId: `drill-${D}`, outcome: 'failed', finishedAt: ago(D), ageMs: D, objectivesMet: false },
      lastPassedDrill: { drillId: `drill-${3 * D}`, finishedAt: ago(3 * D), ageMs: 3 * D },
      disks: base().disks,
    });
    expect(evaluateTarget(base({ backups: [] })).facts.newestBackup).toBeNull();
  });
});

describe('humanMs', () => {
  it.each([
    [500, '500ms'],
    [45_000, '45s'],
    [90_000, '1m 30s'],
    [H, '1h'],
    [D + H, '1d 1h'],
    [D + 5 * 60_000, '1d'],
    [40 * D, '40d'],
  ])('%i ms is %s', (ms, text) => expect(humanMs(ms)).toBe(text));
});
