// The restore's approval gate: people decide with their keys, not with names. The requester signs a
// statement binding this run to this plan (`runbook restore` does), then approvers sign theirs
// (`runbook approve`). Validators refuse what is unsigned, for another run or plan, or expired before
// anything is recorded; each accepted statement is then verified by the worker against the people in
// its own config, and one that fails is recorded as refused and never counts. Four eyes compares
// keys: the requester's key never approves. The worker checks all of this again, from the run's
// history, before it changes anything (activities/gate.ts).
import { CancellationScope, condition, defineUpdate, isCancellation, setHandler, workflowInfo } from '@temporalio/workflow';
import {
  bindingProblem,
  parseStatement,
  planTerms,
  type SignedStatement,
  type Signer,
  type StatementKind,
} from '../common/approval-statement';
import type { AuditEvent } from '../common/audit';
import { isOneOf, type Decision, type RestoreInput, type RestorePlan, type RestoreStatus } from '../common/restore-types';
import { fail } from '../common/errors';
import { messageOf, quick, records } from './shared';

export const requestUpdate = defineUpdate<RestoreStatus, [SignedStatement]>('request');
export const approveUpdate = defineUpdate<Decision[], [SignedStatement]>('approve');
export const rejectUpdate = defineUpdate<Decision[], [SignedStatement]>('reject');

export type Verdict = 'approved' | 'rejected' | 'expired';

/** Audit records and notifications of one restore run. Told, never in the way: a webhook down changes nothing. */
export function restoreRecords(input: RestoreInput, status: RestoreStatus) {
  const { workflowId, runId } = workflowInfo();
  const { target } = input;
  const requester = () => status.requester?.person ?? '(no signed request)';
  return {
    audit: (event: AuditEvent['event'], actor: string, detail?: string, identity?: string, at = new Date().toISOString()) =>
      records.recordAudit({ at, target, workflowId, runId, action: 'restore', event, actor, identity, detail }),
    requester,
    tell: (
      event: 'restore-awaiting-approval' | 'restore-done' | 'restore-undo-waiting',
      title: string,
      text: string,
      fields: Record<string, string> = {},
    ) =>
      records
        .notify({
          event,
          target,
          at: new Date().toISOString(),
          title,
          text,
          workflowId,
          fields: { requestedBy: requester(), ...fields },
        })
        .then(
          () => undefined,
          () => undefined,
        ),
  };
}

export function approvalGate(input: RestoreInput, status: RestoreStatus) {
  const { target } = input;
  const info = workflowInfo();
  let plan: RestorePlan | undefined;
  const approvedBy = new Set<string>();
  let rejected = false;
  const decided = () => rejected || (plan !== undefined && approvedBy.size >= plan.approvalsRequired);

  /** Refuses, before anything is recorded, a statement that is not for this run, this plan, now. */
  const validate = (kind: StatementKind, signed: SignedStatement) => {
    if (!plan || status.step !== 'awaiting approval')
      throw new Error(`the restore of ${target} is not awaiting approval (step: ${status.step})`);
    if (decided()) throw new Error(`the restore of ${target} has already been ${rejected ? 'rejected' : 'approved'}`);
    const s = parseStatement(signed?.statement);
    if (typeof s === 'string') throw new Error(`refused: ${s}`);
    if (s.kind !== kind) throw new Error(`refused: a ${s.kind} statement sent as a ${kind}`);
    if (typeof signed.signature !== 'string' || !signed.signature.includes('BEGIN SSH SIGNATURE')) {
      throw new Error(`refused: the ${kind} is not signed (sign it with an SSH key: --key)`);
    }
    if (kind === 'request' && status.requester) throw new Error(`refused: ${status.requester.person} has already signed the request`);
    if (kind !== 'request' && !status.requester) throw new Error('refused: the request is not signed yet (`runbook restore` signs it)');
    const problem = bindingProblem(s, {
      namespace: info.namespace,
      workflowId: info.workflowId,
      runId: info.runId,
      plan: planTerms(plan, input.reason),
      requester: status.requester,
      now: Date.now(),
    });
    if (problem) throw new Error(`refused: ${problem}`);
    return s;
  };

  /** The worker's verdict on who signed; a statement it cannot verify fails its update and never counts. */
  const verified = async (kind: StatementKind, signed: SignedStatement): Promise<Signer> => {
    try {
      return await quick.verifyStatement({ kind, signed });
    } catch (err) {
      return refuse(kind, messageOf(err));
    }
  };
  // An update handler fails its update only with an ApplicationFailure (any other error would fail the workflow task).
  const refuse = (kind: StatementKind, why: string): never => {
    status.refused.push({ kind, at: new Date().toISOString(), why });
    return fail('APPROVAL_REFUSED', `refused: ${why}`);
  };

  setHandler(
    requestUpdate,
    async (signed) => {
      const signer = await verified('request', signed);
      if (status.requester) refuse('request', `${status.requester.person} has already signed the request`);
      status.requester = signer;
      return status;
    },
    { validator: (signed) => void validate('request', signed) },
  );

  const decision = (kind: 'approve' | 'reject') => async (signed: SignedStatement) => {
    let s: ReturnType<typeof validate>;
    try {
      s = validate(kind, signed);
    } catch (err) {
      return refuse(kind, (err as Error).message.replace(/^refused: /, ''));
    }
    const signer = await verified(kind, signed);
    const p = plan!;
    const requester = status.requester!;
    if (!isOneOf(signer, p.approvers)) {
      refuse(
        kind,
        `${signer.person} (key ${signer.fingerprint}) may not decide restores of ${target} (approvers: ${p.approvers.join(', ')})`,
      );
    }
    if (signer.fingerprint === requester.fingerprint) {
      refuse(kind, `the key ${signer.fingerprint} signed the request, so it cannot also decide it (four eyes)`);
    }
    if (!p.allowSelfApproval && signer.person === requester.person) {
      refuse(kind, `${signer.person} asked for this restore and cannot also decide it (four eyes)`);
    }
    if (decided()) refuse(kind, `the restore of ${target} has already been ${rejected ? 'rejected' : 'approved'}`);
    if (kind === 'approve' && approvedBy.has(signer.person)) refuse(kind, `${signer.person} has already approved this restore`);
    if (kind === 'approve') approvedBy.add(signer.person);
    else rejected = true;
    status.decisions.push({
      approver: signer.person,
      fingerprint: signer.fingerprint,
      decision: kind,
      at: new Date().toISOString(),
      ...(s.comment ? { comment: s.comment } : {}),
    });
    return status.decisions;
  };
  setHandler(approveUpdate, decision('approve'), { validator: (signed) => void validate('approve', signed) });
  setHandler(rejectUpdate, decision('reject'), { validator: (signed) => void validate('reject', signed) });

  return {
    /**
     * Waits for the signed request, asks for approval of this plan and waits for the decision. Every
     * decision is audited; a cancellation while waiting is audited and announced, `onCancel` runs, and
     * the cancellation is rethrown: nothing was touched.
     */
    async decide(p: RestorePlan, onCancel: () => Promise<void>): Promise<Verdict> {
      const { audit, tell, requester } = restoreRecords(input, status);
      plan = p;
      status.step = 'awaiting approval';
      const deadline = Date.now() + p.approvalTimeoutMs;
      let inTime: boolean;
      try {
        inTime = await condition(() => status.requester !== undefined, p.approvalTimeoutMs);
        if (inTime) {
          await audit(
            'requested',
            requester(),
            `restore ${p.backup.backupId} (${p.strategy}): ${input.reason}`,
            status.requester!.fingerprint,
          );
          await tell(
            'restore-awaiting-approval',
            `restore of ${target} awaits approval`,
            [
              `${requester()} asks to restore ${p.backup.backupId} (${p.backup.keys} keys, taken ${p.backup.createdAt}) into ${target}: ${input.reason}`,
              `approvers: ${p.approvers.join(', ')} (${p.approvalsRequired} needed)`,
              `runbook approve ${workflowInfo().workflowId} --key <your SSH key>`,
            ].join('\n'),
          );
          inTime = await condition(decided, Math.max(0, deadline - Date.now()));
        }
      } catch (err) {
        if (isCancellation(err)) {
          await CancellationScope.nonCancellable(async () => {
            await onCancel();
            await audit('cancelled', requester(), 'cancelled while awaiting approval; target untouched').catch(() => undefined);
            await tell('restore-done', `restore of ${target} cancelled`, 'cancelled while awaiting approval; nothing was changed', {
              outcome: 'cancelled',
            });
          });
        }
        throw err;
      }
      for (const d of status.decisions)
        await audit(d.decision === 'approve' ? 'approved' : 'rejected', d.approver, d.comment, d.fingerprint, d.at);
      if (rejected) return 'rejected';
      if (!inTime) {
        await audit(
          'expired',
          'timeout',
          status.requester
            ? `no decision within ${p.approvalTimeoutMs / 1000} s`
            : `no signed request within ${p.approvalTimeoutMs / 1000} s`,
        );
        return 'expired';
      }
      return 'approved';
    },
  };
}
