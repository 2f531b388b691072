// Types of the drill and disaster-recovery runbooks, shared by workflows, activities, the CLI and the
// HTML report. No secrets here: all of it lands in history and in the stored reports.
import type { KeyspaceDb } from './types';
import type { RestoreReport } from './restore-types';
import type { Signature } from './signature';

export interface DrillInput {
  target: string;
  /** Drill one of the newest N backups at random; default: the target's drill.random (1: the newest). */
  random?: number;
  /** The destination to fetch from; default: the target's drill source (the off-site one). */
  from?: string;
  /** Drill this backup instead of picking one. */
  backupId?: string;
  requestedBy?: string;
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface Phase {
  name: string;
  durationMs: number;
}

/** Recovery point figures over the verified backups a destination holds. */
export interface RpoFigures {
  /** Age of the newest verified backup at the moment of the drill: the data a recovery now would lose. */
  newestAgeMs: number | null;
  /** The largest gap between consecutive verified backups in the window, the gap up to now included. */
  maxGapMs: number | null;
  windowMs: number;
  backupsInWindow: number;
}

export interface DrillPick {
  backupId: string;
  createdAt: string;
  destination: string;
  /** How many backups the pick was made among. */
  among: number;
  rpo: RpoFigures;
}

export interface DrillRestoreResult {
  phases: Phase[];
  checks: Check[];
  /** Keys per database in the sandbox once loaded. */
  keyspace: Record<string, KeyspaceDb>;
  rdbSize: number;
  storedSize: number;
  /** The worker's signature over these results, for this run: what lets a passing report be signed. */
  receipt?: Signature;
}

export type DrillOutcome = 'passed' | 'failed';

export interface DrillReport {
  drillId: string;
  target: string;
  workflowId: string;
  runId: string;
  requestedBy: string;
  startedAt: string;
  finishedAt: string;
  outcome: DrillOutcome;
  /** Why it failed, in one sentence. */
  reason?: string;
  backup?: {
    backupId: string;
    createdAt: string;
    destination: string;
    /** Picked at random among the newest this many (1: the newest, or the one asked for). */
    among?: number;
    ageMs: number;
    rdbSize: number;
    storedSize: number;
  };
  phases: Phase[];
  checks: Check[];
  /** Start of the drill to a verified, usable sandbox; null when it never became usable. */
  rto: { measuredMs: number | null; objectiveMs: number; met: boolean };
  /** met: neither the newest backup's age nor the largest gap exceeds the objective. */
  rpo: RpoFigures & { objectiveMs: number; met: boolean };
  objectivesMet: boolean;
  /** The worker's signature over the rest, added when it is stored: only a signed report counts. */
  signature?: Signature;
}

export const drillReportKeys = (target: string, drillId: string) => ({
  json: `${target}/drills/${drillId}.json`,
  markdown: `${target}/drills/${drillId}.md`,
});

export interface RecoverInput {
  /** The target whose backups are recovered. */
  target: string;
  /** Restore into this target instead (a rebuilt server, or a clone to staging). */
  to?: string;
  /** The newest verified backup taken before this moment (ISO 8601). */
  at?: string;
  /** This backup. */
  from?: string;
  reason: string;
  requestedBy: string;
  /** Assess and choose, then stop: nothing is touched. */
  dryRun?: boolean;
}

export interface Assessment {
  target: string;
  reachable: boolean;
  error?: string;
  role?: string;
  version?: string;
  dbsize?: number;
  loading?: boolean;
  aofEnabled?: boolean;
  rdbLastBgsaveStatus?: string;
  lastSaveAt?: string;
  /** redis-check-rdb / redis-check-aof on the files, when the worker can read the server's data dir. */
  files: Check[];
}

export interface CandidateCopy {
  backupId: string;
  createdAt: string;
  destination: string;
  ok: boolean;
  detail: string;
}

export interface RecoveryPoint {
  backupId: string;
  createdAt: string;
  /** The destination whose copy verified; the restore fetches from it first. */
  destination: string;
  /** Every copy looked at, newest first, with why a rejected one was rejected. */
  considered: CandidateCopy[];
}

export type RecoverOutcome = 'recovered' | 'dry-run' | 'rejected' | 'expired' | 'failed' | 'cancelled';

export interface RecoverReport {
  target: string;
  to: string;
  reason: string;
  requestedBy: string;
  outcome: RecoverOutcome;
  startedAt: string;
  finishedAt: string;
  assessment: Assessment;
  point?: RecoveryPoint;
  restoreWorkflowId?: string;
  restore?: RestoreReport;
  /** Start of the recovery to a verified target, and the same without the wait for approval. */
  rto?: { measuredMs: number; withoutApprovalMs: number; objectiveMs: number; met: boolean };
  /** The data lost: from the recovery point to the incident (the start of the recovery, or --at). */
  rpo?: { measuredMs: number; objectiveMs: number; met: boolean };
  error?: string;
}

/** What `runbook dr` and `runbook approve` read from a running recovery (its `status` query). */
export interface RecoverStatus {
  step: string;
  assessment?: Assessment;
  point?: RecoveryPoint;
  restoreWorkflowId?: string;
  /** The run of that restore: an approval by the recovery's id goes to this run and no other. */
  restoreRunId?: string;
}
