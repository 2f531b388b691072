// Grandfather-father-son retention, in the style of `restic forget`: a pure function from a list of
// backups and a policy to a decision (what to keep and why, what to remove). Buckets are in UTC.
//
// Only verified backups count toward the rules. Two safety nets stand above the rules:
//  - the newest verified backup is always kept;
//  - with no verified backup at all, nothing is removed.
// Unverified backups newer than the newest verified one are kept (they may still be under
// verification); every other unverified backup is removed.
import type { RetentionPolicy } from './config';
import { RunbookError } from './errors';

export interface RetentionCandidate {
  backupId: string;
  time: Date;
  verified: boolean;
}

export interface RetentionDecision {
  keep: { backupId: string; reasons: string[] }[];
  remove: string[];
}

type BucketRule = 'hourly' | 'daily' | 'weekly' | 'monthly';

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** The ISO-8601 week of a UTC instant, e.g. "2026-W53": weeks start on Monday and belong to the
 * year of their Thursday, so 2027-01-01 (a Friday) is in 2026-W53. */
function isoWeek(d: Date): string {
  const day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  const weekday = (new Date(day).getUTCDay() + 6) % 7; // Monday = 0 .. Sunday = 6
  const thursday = new Date(day + (3 - weekday) * 86_400_000);
  const year = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * 86_400_000)) + 1;
  return `${pad(year, 4)}-W${pad(week)}`;
}

const BUCKETS: readonly { rule: BucketRule; key: (d: Date) => string }[] = [
  { rule: 'hourly', key: (d) => d.toISOString().slice(0, 13) }, // YYYY-MM-DDTHH
  { rule: 'daily', key: (d) => d.toISOString().slice(0, 10) }, // YYYY-MM-DD
  { rule: 'weekly', key: isoWeek }, // YYYY-Www
  { rule: 'monthly', key: (d) => d.toISOString().slice(0, 7) }, // YYYY-MM
];

function checkPolicy(policy: RetentionPolicy): void {
  const counts: [string, number][] = [
    ['keepLast', policy.keepLast],
    ['hourly', policy.hourly],
    ['daily', policy.daily],
    ['weekly', policy.weekly],
    ['monthly', policy.monthly],
  ];
  for (const [key, n] of counts) {
    if (!Number.isInteger(n) || n < 0) {
      throw new RunbookError(
        'BAD_INPUT',
        `retention.${key} is ${String(n)}: a count of backups must be a whole number of 0 or more`,
        `set retention.${key} to 0 or a positive whole number`,
      );
    }
  }
  if (counts.every(([, n]) => n === 0)) {
    throw new RunbookError(
      'BAD_INPUT',
      'a retention policy that keeps nothing is refused: keepLast, hourly, daily, weekly and monthly are all 0, ' +
        'so every backup would be removed',
      'set at least one of retention.keepLast, hourly, daily, weekly or monthly to 1 or more (e.g. "keepLast: 7")',
    );
  }
}

function checkBackups(backups: readonly RetentionCandidate[]): void {
  const seen = new Set<string>();
  for (const b of backups) {
    if (seen.has(b.backupId)) {
      throw new RunbookError(
        'BAD_INPUT',
        `backup id "${b.backupId}" appears more than once in the retention input`,
        'list each backup once',
      );
    }
    seen.add(b.backupId);
    if (!(b.time instanceof Date) || Number.isNaN(b.time.getTime())) {
      throw new RunbookError(
        'BAD_INPUT',
        `backup "${b.backupId}" has no valid time, so retention cannot place it`,
        'give every backup the valid time it was taken',
      );
    }
  }
}

/** Newest first; equal times are ordered by backupId descending, so the result never depends on input order. */
function newestFirst(a: RetentionCandidate, b: RetentionCandidate): number {
  const byTime = b.time.getTime() - a.time.getTime();
  if (byTime !== 0) return byTime;
  return a.backupId < b.backupId ? 1 : a.backupId > b.backupId ? -1 : 0;
}

export function applyRetentionPolicy(backups: RetentionCandidate[], policy: RetentionPolicy): RetentionDecision {
  checkPolicy(policy);
  checkBackups(backups);

  const sorted = [...backups].sort(newestFirst);
  const newestVerifiedIndex = sorted.findIndex((b) => b.verified);

  if (newestVerifiedIndex === -1) {
    return {
      keep: sorted.map((b) => ({ backupId: b.backupId, reasons: ['no-verified-backup'] })),
      remove: [],
    };
  }

  const reasons = new Map<string, string[]>(sorted.map((b) => [b.backupId, []]));
  const verified = sorted.filter((b) => b.verified);

  for (const b of verified.slice(0, policy.keepLast)) reasons.get(b.backupId)!.push('last');

  for (const { rule, key } of BUCKETS) {
    const wanted = policy[rule];
    const buckets = new Set<string>();
    for (const b of verified) {
      if (buckets.size >= wanted) break;
      const bucket = key(b.time);
      if (buckets.has(bucket)) continue; // an older backup of a bucket already kept
      buckets.add(bucket);
      reasons.get(b.backupId)!.push(rule);
    }
  }

  const keep: RetentionDecision['keep'] = [];
  const remove: string[] = [];
  sorted.forEach((b, i) => {
    const why = reasons.get(b.backupId)!;
    if (i < newestVerifiedIndex) why.push('newer-than-newest-verified');
    // Every rule with a count of 1 or more keeps the newest verified backup already; this net
    // holds even if a rule is ever changed so that it would not.
    if (i === newestVerifiedIndex && why.length === 0) why.push('newest-verified');
    if (why.length > 0) keep.push({ backupId: b.backupId, reasons: why });
    else remove.push(b.backupId);
  });
  return { keep, remove };
}
