// Types of the restore runbook, shared by the workflow, its activities and the CLI. No secrets here.
import type { KeyspaceDb } from './types';

export type RestoreStrategy = 'replica-promote' | 'file-swap' | 'logical';

export interface RestoreInput {
  target: string;
  /** A backup id, or "latest" for the newest verified backup. */
  from: string;
  reason: string;
  requestedBy: string;
  dryRun?: boolean;
  /** The target the backup was taken of, when it is not `target` (disaster recovery to another server, clone to staging). */
  sourceTarget?: string;
  /** Fetch from this destination first (the one a disaster recovery found a good copy in). */
  preferDestination?: string;
}

export interface TargetState {
  version: string;
  role: string;
  keys: number;
  keyspace: Record<string, KeyspaceDb>;
  usedMemory: number;
  aofEnabled: boolean;
  /** CONFIG GET save */
  save: string;
}

export interface RestorePlan {
  target: string;
  strategy: RestoreStrategy;
  current: TargetState;
  backup: {
    backupId: string;
    createdAt: string;
    ageSeconds: number;
    rdbVersion: number;
    keys: number;
    expires: number;
    keyspace: Record<string, KeyspaceDb>;
    size: number;
    /** The destination whose copy was verified and will be used. */
    source: string;
  };
  maxRdbVersion: number;
  writers: string[];
  pauseWrites: boolean;
  pauseLimitMs: number;
  approvers: string[];
  approvalsRequired: number;
  allowSelfApproval: boolean;
  approvalTimeoutMs: number;
}

export interface Decision {
  approver: string;
  decision: 'approve' | 'reject';
  at: string;
  comment?: string;
  /** The Temporal client identity the decision came from. */
  identity?: string;
}

export interface ApproveArgs {
  approver: string;
  comment?: string;
}

export interface RejectArgs {
  approver: string;
  reason: string;
}

export interface WriterPauseState {
  writer: string;
  /** What resuming needs, e.g. the original replica count. */
  state: Record<string, string | number>;
}

export interface MakeLiveResult {
  strategy: RestoreStrategy;
  durationMs: number;
  detail: string;
}

export interface RestoreCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export type RestoreOutcome = 'restored' | 'dry-run' | 'rejected' | 'expired' | 'failed' | 'cancelled';

export interface RestoreReport {
  target: string;
  outcome: RestoreOutcome;
  /** What state the target is in, in one sentence. */
  targetState: string;
  reason: string;
  requestedBy: string;
  plan: RestorePlan;
  decisions: Decision[];
  safetyBackupId?: string;
  steps: { name: string; startedAt: string; durationMs: number }[];
  writePauseMs?: number;
  makeLive?: MakeLiveResult;
  verification?: RestoreCheck[];
  compensations: { name: string; ok: boolean; detail: string }[];
  /** What went wrong without changing the outcome (an audit record not written, a local copy not removed). */
  warnings?: string[];
  error?: string;
}

export interface RestoreStatus {
  step: string;
  plan?: RestorePlan;
  decisions: Decision[];
}
