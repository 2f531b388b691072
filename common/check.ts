// `runbook check`: is a target within its objectives? A pure judgement over what storage holds (the
// manifests, the drill reports, the disks), so that it runs from cron when Temporal is down, and so
// that every rule is tested with a fixed clock.
import type { DrillReport } from './drill-types';
import type { Manifest } from './types';

export interface CheckInput {
  target: string;
  now: Date;
  rpoMs: number;
  /** Absent: drills are not required, and none being overdue is no problem. */
  drill?: { intervalMs: number };
  /** A fraction: the newest RDB may differ from the average of the previous ones by this much. */
  sizeChange: number;
  /** A fraction: a local destination's file system may be this full. */
  diskFull: number;
  /** Newest first, merged across destinations. */
  backups: Manifest[];
  /** Newest first. */
  drills: DrillReport[];
  /** Damaged manifests, as "destination:backupId". */
  suspicious: string[];
  /** usedFraction is null where it cannot be known (S3). */
  disks: { destination: string; usedFraction: number | null }[];
  /** Destinations that could not be read: what was read of the others is judged, and no-backup is not claimed. */
  unreadable?: { destination: string; error: string }[];
  /** Breaks of the audit chain, one line each ("destination d, seq n: ..."), from verifyAudit. */
  auditBreaks?: string[];
}

export type ProblemCode =
  | 'no-backup'
  | 'backup-too-old'
  | 'size-anomaly'
  | 'disk-full'
  | 'verification'
  | 'drill-failed'
  | 'drill-overdue'
  | 'objective-missed'
  | 'storage-unreadable'
  | 'audit-broken';

export interface Problem {
  code: ProblemCode;
  message: string;
}

export interface TargetCheck {
  target: string;
  ok: boolean;
  problems: Problem[];
  facts: {
    backups: number;
    newestBackup: { backupId: string; createdAt: string; ageMs: number; rdbSize: number; verified: boolean } | null;
    newestVerifiedBackup: { backupId: string; createdAt: string; ageMs: number } | null;
    lastDrill: { drillId: string; outcome: DrillReport['outcome']; finishedAt: string; ageMs: number; objectivesMet: boolean } | null;
    lastPassedDrill: { drillId: string; finishedAt: string; ageMs: number } | null;
    disks: { destination: string; usedFraction: number | null }[];
  };
}

/** How many previous backups the size of the newest is compared with, and how many at least. */
const SIZE_WINDOW = 7;
const SIZE_MIN_PREVIOUS = 3;

/** As retention and `backups list` judge it: every copy checked at backup time matched. */
export const verified = (m: Manifest): boolean => m.verification.copies.every((c) => c.ok);

export function evaluateTarget(input: CheckInput): TargetCheck {
  const { target, now } = input;
  const at = now.getTime();
  const problems: Problem[] = [];
  const add = (code: ProblemCode, message: string) => problems.push({ code, message });
  const unreadable = input.unreadable ?? [];

  for (const u of unreadable) {
    add(
      'storage-unreadable',
      `${target}: destination ${u.destination} could not be read (${u.error}); check its credentials and reachability`,
    );
  }

  const newest = input.backups[0];
  const newestVerified = input.backups.find(verified);

  if (!newest) {
    if (unreadable.length === 0) {
      add('no-backup', `${target} has no backup in any destination; run \`runbook backup ${target}\` and check its schedules`);
    }
  } else if (!newestVerified) {
    add(
      'backup-too-old',
      `${target} has no verified backup (newest ${newest.backupId} failed verification); run \`runbook backup ${target}\` and look at the worker's logs`,
    );
  } else {
    const age = at - Date.parse(newestVerified.createdAt);
    if (age > input.rpoMs) {
      add(
        'backup-too-old',
        `${target}'s newest verified backup ${newestVerified.backupId} is ${humanMs(age)} old, over the ${humanMs(input.rpoMs)} RPO; ` +
          `check the backup schedule (\`runbook schedules list\`) and the worker, or run \`runbook backup ${target}\``,
      );
    }
  }

  if (newest) {
    const previous = input.backups.slice(1, 1 + SIZE_WINDOW);
    if (previous.length >= SIZE_MIN_PREVIOUS) {
      const average = previous.reduce((sum, m) => sum + m.rdb.size, 0) / previous.length;
      const change = average > 0 ? (newest.rdb.size - average) / average : 0;
      if (Math.abs(change) > input.sizeChange) {
        add(
          'size-anomaly',
          `${target}'s newest backup ${newest.backupId} has an RDB of ${bytes(newest.rdb.size)}, ${change > 0 ? '+' : ''}${Math.round(change * 100)}% ` +
            `against the ${bytes(average)} average of the ${previous.length} before it (limit ±${Math.round(input.sizeChange * 100)}%); ` +
            `make sure the data did not vanish or balloon (\`runbook backups show ${newest.backupId}\`)`,
        );
      }
    }
    const failed = newest.verification.copies.filter((c) => !c.ok);
    for (const c of failed) {
      add(
        'verification',
        `${target}'s newest backup ${newest.backupId} has a copy in ${c.destination} that failed verification (${c.detail}); ` +
          `run \`runbook backups verify ${newest.backupId}\` and take a new backup`,
      );
    }
  }

  if (input.suspicious.length > 0) {
    add(
      'verification',
      `${target} has ${input.suspicious.length} damaged manifest${input.suspicious.length === 1 ? '' : 's'} (${input.suspicious.join(', ')}); ` +
        `a person must look at them: they are never deleted automatically`,
    );
  }

  for (const d of input.disks) {
    if (d.usedFraction !== null && d.usedFraction > input.diskFull) {
      add(
        'disk-full',
        `destination ${d.destination} of ${target} is ${Math.round(d.usedFraction * 100)}% full (limit ${Math.round(input.diskFull * 100)}%); ` +
          `free space or tighten ${target}'s retention`,
      );
    }
  }

  for (const b of input.auditBreaks ?? []) {
    add(
      'audit-broken',
      `${target}'s audit trail is broken: ${b}; see \`runbook audit ${target} --verify\` and leave the records as they are`,
    );
  }

  const lastDrill = input.drills[0];
  const lastPassed = input.drills.find((d) => d.outcome === 'passed');
  if (lastDrill?.outcome === 'failed') {
    add(
      'drill-failed',
      `${target}'s last drill ${lastDrill.drillId} (${lastDrill.finishedAt}) failed${lastDrill.reason ? `: ${lastDrill.reason}` : ''}; ` +
        `read its report (${target}/drills/${lastDrill.drillId}.md in the backup storage) and run \`runbook drill ${target}\` once it is fixed`,
    );
  } else if (lastDrill && !lastDrill.objectivesMet) {
    const missed = [
      !lastDrill.rto.met
        ? `RTO ${lastDrill.rto.measuredMs === null ? 'not measured' : humanMs(lastDrill.rto.measuredMs)} against ${humanMs(lastDrill.rto.objectiveMs)}`
        : '',
      !lastDrill.rpo.met ? `RPO ${humanMs(drillRpoMs(lastDrill) ?? 0)} against ${humanMs(lastDrill.rpo.objectiveMs)}` : '',
    ].filter(Boolean);
    add(
      'objective-missed',
      `${target}'s last drill ${lastDrill.drillId} passed but missed its objectives (${missed.join(', ') || 'see its report'}); ` +
        `back up more often or speed up the restore, or revise the objectives`,
    );
  }
  if (input.drill) {
    const passedAge = lastPassed ? at - Date.parse(lastPassed.finishedAt) : null;
    if (passedAge === null || passedAge > input.drill.intervalMs) {
      add(
        'drill-overdue',
        `${target} has ${lastPassed ? `not passed a drill since ${lastPassed.finishedAt} (${humanMs(passedAge!)} ago)` : 'never passed a drill'}, ` +
          `and one is due every ${humanMs(input.drill.intervalMs)}; run \`runbook drill ${target}\` and check the drill schedule`,
      );
    }
  }

  return {
    target,
    ok: problems.length === 0,
    problems,
    facts: {
      backups: input.backups.length,
      newestBackup: newest
        ? {
            backupId: newest.backupId,
            createdAt: newest.createdAt,
            ageMs: at - Date.parse(newest.createdAt),
            rdbSize: newest.rdb.size,
            verified: verified(newest),
          }
        : null,
      newestVerifiedBackup: newestVerified
        ? { backupId: newestVerified.backupId, createdAt: newestVerified.createdAt, ageMs: at - Date.parse(newestVerified.createdAt) }
        : null,
      lastDrill: lastDrill
        ? {
            drillId: lastDrill.drillId,
            outcome: lastDrill.outcome,
            finishedAt: lastDrill.finishedAt,
            ageMs: at - Date.parse(lastDrill.finishedAt),
            objectivesMet: lastDrill.objectivesMet,
          }
        : null,
      lastPassedDrill: lastPassed
        ? { drillId: lastPassed.drillId, finishedAt: lastPassed.finishedAt, ageMs: at - Date.parse(lastPassed.finishedAt) }
        : null,
      disks: input.disks,
    },
  };
}

/** The recovery point a drill measured: the newest backup's age or the largest gap, whichever is larger. */
export function drillRpoMs(report: DrillReport): number | null {
  const { newestAgeMs, maxGapMs } = report.rpo;
  if (newestAgeMs === null && maxGapMs === null) return null;
  return Math.max(newestAgeMs ?? 0, maxGapMs ?? 0);
}

/** 93_784_000 -> "1d 2h": the largest unit and the one after it, enough for a person to act on. */
export function humanMs(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  const i = units.findIndex(([, size]) => ms >= size);
  const [unit, size] = units[i]!;
  const first = `${Math.floor(ms / size)}${unit}`;
  const next = units[i + 1];
  const second = next ? Math.floor((ms % size) / next[1]) : 0;
  return second > 0 ? `${first} ${second}${next![0]}` : first;
}

function bytes(n: number): string {
  if (n >= 1048576) return `${(n / 1048576).toFixed(1)}MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)}KiB`;
  return `${Math.round(n)}B`;
}
