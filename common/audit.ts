// The audit trail: every request, decision and outcome of a gated runbook, one immutable record each,
// chained per target (domain/audit.ts). Pure types and text helpers, for the CLI and the workflows.
import type { Signature } from './signature';
import { escapeControls } from './escape';

export { escapeControls };

export interface AuditEvent {
  at: string;
  target: string;
  workflowId: string;
  runId: string;
  action: 'restore' | 'recover' | 'retention';
  event:
    | 'requested'
    | 'approved'
    | 'rejected'
    | 'expired'
    | 'restored'
    | 'recovered'
    | 'failed'
    | 'cancelled'
    | 'deleted'
    /** The worker refused a step or a record: the run held no valid signed approval for it. */
    | 'refused';
  /** Who: the requester, or the approver. */
  actor: string;
  /** The Temporal client identity the decision came from. */
  identity?: string;
  detail?: string;
  /** What the decision was about, for machines: a backup id, a plan's hash, a statement's fingerprint. */
  evidence?: Record<string, string>;
}

/** One link of a target's chain, as stored at `<target>/audit/chain/<seq>.json`. */
export interface AuditRecord extends AuditEvent {
  /** 1, 2, 3, ... without gaps. */
  seq: number;
  /** SHA-256 (hex) of the previous record's stored bytes; 64 zeros for the first. */
  prev: string;
  /** Who appended it (`<runId>/<activityId>`): a retried append finds its own record and adds nothing. */
  idempotencyKey?: string;
  /** The worker's Ed25519 signature over everything else. */
  signature: Signature;
}

/** A record from before the chain (`<target>/audit/<time>-<event>-<rand>.json`): shown, but it proves nothing. */
export type LegacyAuditRecord = AuditEvent & { legacy: true };

export type AuditEntry = AuditRecord | LegacyAuditRecord;

export const isLegacy = (e: AuditEntry): e is LegacyAuditRecord => (e as LegacyAuditRecord).legacy === true;

/** What is wrong with a destination's chain, at its first break (or between destinations). */
export type AuditBreakKind = 'changed' | 'deleted' | 'inserted' | 'reordered' | 'untrusted' | 'disagrees' | 'shorter';

export interface AuditBreak {
  destination: string;
  /** The first sequence number affected. */
  seq: number;
  kind: AuditBreakKind;
  message: string;
}

export interface AuditVerification {
  target: string;
  ok: boolean;
  /** Records in the longest verified chain. */
  records: number;
  /** Records from before the chain: listed, unverifiable. */
  legacy: number;
  destinations: { destination: string; records: number; verified: number }[];
  breaks: AuditBreak[];
}

/** One line of `runbook audit`: every field escaped. */
export function auditLine(e: AuditEntry): string {
  const s = (v: unknown) => escapeControls(String(v));
  const head = isLegacy(e) ? 'legacy, unverifiable' : `#${s(e.seq)}`;
  const evidence = e.evidence
    ? ` [${Object.entries(e.evidence)
        .map(([k, v]) => `${s(k)}=${s(v)}`)
        .join(' ')}]`
    : '';
  return (
    `${head}  ${s(e.at)}  ${s(e.action)} ${s(e.event).padEnd(9)} by ${s(e.actor)}${e.identity ? ` (${s(e.identity)})` : ''}` +
    `  ${s(e.workflowId)}${e.detail ? `: ${s(e.detail)}` : ''}${evidence}`
  );
}
