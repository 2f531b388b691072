// The audit trail: every request, decision and outcome of a gated runbook, one immutable record each.
export interface AuditEvent {
  at: string;
  target: string;
  workflowId: string;
  runId: string;
  action: 'restore' | 'recover' | 'retention';
  event: 'requested' | 'approved' | 'rejected' | 'expired' | 'restored' | 'recovered' | 'failed' | 'cancelled' | 'deleted';
  /** Who: the requester, or the approver. */
  actor: string;
  /** The Temporal client identity the decision came from. */
  identity?: string;
  detail?: string;
}
