// What people sign to ask for and decide a restore. A statement binds one run of one workflow (its
// namespace, id and run id) to one plan (target, backup, the backup's RDB SHA-256, strategy, whether
// an unsigned backup was allowed, the reason), to the requester's key (in a decision) and to an
// expiry. Its text is what the SSH signature covers. Pure: the workflow checks bindings with it, the
// worker checks signatures and bindings again before anything is changed.
import { canonicalJson } from './canonical-json';
import type { RestorePlan, RestoreStrategy, Signer } from './restore-types';

export type { Signer };

export const STATEMENT_HEADER = 'redis-runbooks restore statement v1';

export type StatementKind = 'request' | 'approve' | 'reject';

/** The plan as people sign it: what will replace what, and why. */
export interface PlanTerms {
  target: string;
  backupId: string;
  rdbSha256: string;
  strategy: RestoreStrategy;
  allowUnsigned: boolean;
  reason: string;
}

export interface Statement {
  kind: StatementKind;
  namespace: string;
  workflowId: string;
  runId: string;
  plan: PlanTerms;
  /** In a decision: whose request it decides, by the key that signed it. */
  requester?: { person: string; fingerprint: string };
  /** An approval's comment, a rejection's reason. */
  comment?: string;
  signedAt: string;
  expires: string;
}

/** What an update carries: the statement's exact text and its SSH signature (armored SSHSIG). */
export interface SignedStatement {
  statement: string;
  signature: string;
}

export const statementText = (s: Statement): string => `${STATEMENT_HEADER}\n${canonicalJson(s)}\n`;

export const planTerms = (plan: RestorePlan, reason: string): PlanTerms => ({
  target: plan.target,
  backupId: plan.backup.backupId,
  rdbSha256: plan.backup.rdbSha256,
  strategy: plan.strategy,
  allowUnsigned: plan.allowUnsigned ?? false,
  reason,
});

/** The statement in a signed text, or why it is not one. */
export function parseStatement(text: unknown): Statement | string {
  if (typeof text !== 'string') return 'no statement text';
  const [header, body, rest] = text.split('\n');
  if (header !== STATEMENT_HEADER) return `not a restore statement (it must begin with "${STATEMENT_HEADER}")`;
  if (rest !== '' || text.split('\n').length !== 3) return 'a statement is two lines: its header and its JSON';
  let s: Statement;
  try {
    s = JSON.parse(body!) as Statement;
  } catch {
    return 'the statement is not valid JSON';
  }
  if (typeof s !== 'object' || s === null || statementText(s) !== text) return 'the statement is not in canonical form';
  if (!['request', 'approve', 'reject'].includes(s.kind)) return `unknown statement kind ${JSON.stringify(s.kind)}`;
  for (const k of ['namespace', 'workflowId', 'runId', 'signedAt', 'expires'] as const) {
    if (typeof s[k] !== 'string' || !s[k]) return `the statement lacks ${k}`;
  }
  if (Number.isNaN(Date.parse(s.expires)) || Number.isNaN(Date.parse(s.signedAt))) return 'the statement has a malformed time';
  const p = s.plan as PlanTerms | undefined;
  if (
    !p ||
    typeof p.target !== 'string' ||
    typeof p.backupId !== 'string' ||
    typeof p.rdbSha256 !== 'string' ||
    typeof p.strategy !== 'string' ||
    typeof p.allowUnsigned !== 'boolean' ||
    typeof p.reason !== 'string'
  ) {
    return 'the statement lacks the plan it is about';
  }
  if (s.kind !== 'request' && (typeof s.requester?.fingerprint !== 'string' || typeof s.requester.person !== 'string')) {
    return 'a decision must name the request it decides (requester)';
  }
  if (s.kind === 'reject' && !s.comment?.trim()) return 'a rejection needs a reason';
  return s;
}

export interface Expected {
  namespace: string;
  workflowId: string;
  runId: string;
  plan: PlanTerms;
  /** The verified signer of the request, for decisions. */
  requester?: Signer;
  /** Milliseconds since the epoch: the moment the statement is judged at. */
  now: number;
}

/** Why a statement does not bind to this run and this plan, or undefined when it does. */
export function bindingProblem(s: Statement, e: Expected): string | undefined {
  if (s.namespace !== e.namespace) return `it is for namespace ${s.namespace}, not ${e.namespace}`;
  if (s.workflowId !== e.workflowId) return `it is for workflow ${s.workflowId}, not ${e.workflowId}`;
  if (s.runId !== e.runId) return `it is for run ${s.runId}, not this run ${e.runId}`;
  for (const k of ['target', 'backupId', 'rdbSha256', 'strategy', 'allowUnsigned', 'reason'] as const) {
    if (s.plan[k] !== e.plan[k])
      return `it is for another plan (${k}: ${JSON.stringify(s.plan[k])}, this plan: ${JSON.stringify(e.plan[k])})`;
  }
  if (s.kind !== 'request') {
    if (!e.requester) return 'nobody has signed the request yet';
    if (s.requester?.fingerprint !== e.requester.fingerprint) {
      return `it decides a request signed by ${s.requester?.fingerprint}, but this one was signed by ${e.requester.fingerprint}`;
    }
  }
  if (Date.parse(s.expires) < e.now) return `it expired at ${s.expires}`;
  if (Date.parse(s.signedAt) > e.now + 5 * 60_000) return `it is dated ${s.signedAt}, in the future`;
  return undefined;
}
