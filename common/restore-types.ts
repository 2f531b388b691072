// Types of the restore runbook, shared by the workflow, its activities and the CLI. No secrets here.
import type { KeyspaceDb } from './types';

/** Who signed, as the worker verified it: the person the key belongs to, and the key's fingerprint. */
export interface Signer {
  person: string;
  fingerprint: string;
  /** Other names of the same person (an allowed-signers line with several principals). */
  aliases?: string[];
}

/** Whether the signer is one of these people, by any of their names. */
export const isOneOf = (s: Signer, names: readonly string[]): boolean => [s.person, ...(s.aliases ?? [])].some((n) => names.includes(n));

export type RestoreStrategy = 'replica-promote' | 'file-swap' | 'logical';

export interface RestoreInput {
  target: string;
  /** A backup id, or "latest" for the newest verified backup. */
  from: string;
  reason: string;
  dryRun?: boolean;
  /** The target the backup was taken of, when it is not `target` (disaster recovery to another server, clone to staging). */
  sourceTarget?: string;
  /** Fetch from this destination first (the one a disaster recovery found a good copy in). */
  preferDestination?: string;
  /** Accept a backup whose manifest is unsigned (made before manifests were signed); never a forged one. */
  allowUnsigned?: boolean;
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
    /** SHA-256 of the RDB, from the manifest: what the restored data is. */
    rdbSha256: string;
    /** signed: by a key in signing.trust; unsigned: made before manifests were signed, accepted by allowUnsigned. */
    trust: 'signed' | 'unsigned';
    /** The destination whose copy was verified and will be used. */
    source: string;
  };
  /** The requester accepted an unsigned backup (--allow-unsigned): the approvers see and sign this. */
  allowUnsigned?: boolean;
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
  /** The person whose key signed the decision, as the worker verified it. */
  approver: string;
  /** That key's fingerprint (SHA256:...). */
  fingerprint: string;
  decision: 'approve' | 'reject';
  at: string;
  comment?: string;
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

/** The restore's safety copy, as the worker sealed it with writers paused: sizes, never data. */
export interface SafetyCopySummary {
  /** The worker's host that holds it until it is stored. */
  host: string;
  method: 'replication' | 'bgsave-copy';
  /** When its snapshot was fixed (before writers paused, when followed). */
  startedAt: string;
  /** When it was sealed, with writers paused: the data is as of then. */
  sealedAt: string;
  baseBytes: number;
  /** The writes made between the snapshot and the pause, taken from the replication stream. */
  tailBytes: number;
  tailWrites: number;
  keyspace: Record<string, KeyspaceDb>;
  /** Captured whole with writers paused (a bgsave-copy target, or no followed copy on the sealing worker). */
  capturedWhilePaused: boolean;
}

export interface RestoreReport {
  target: string;
  outcome: RestoreOutcome;
  /** What state the target is in, in one sentence. */
  targetState: string;
  reason: string;
  /** The person whose key signed the request (verified by the worker). */
  requestedBy: string;
  plan: RestorePlan;
  decisions: Decision[];
  safetyBackupId?: string;
  safetyCopy?: SafetyCopySummary;
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
  /** Why, as the requester gave it: part of what people sign. */
  reason: string;
  plan?: RestorePlan;
  /** Who signed the request, once the worker has verified it. */
  requester?: Signer;
  decisions: Decision[];
  /** Signed statements accepted for checking and refused by it: they never count. */
  refused: { kind: string; at: string; why: string }[];
}
