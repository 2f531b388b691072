// The restore's approval gate: four eyes by default. The handlers are registered as the workflow
// starts, so that no early update is lost, and their validators refuse before anything is recorded in
// history. The wait itself is audited and announced; a cancellation while waiting changes nothing.
import { CancellationScope, condition, defineUpdate, isCancellation, setHandler, workflowInfo } from '@temporalio/workflow';
import type { AuditEvent } from '../common/audit';
import type { ApproveArgs, Decision, RejectArgs, RestoreInput, RestorePlan, RestoreStatus } from '../common/restore-types';
import { records } from './shared';

export const approveUpdate = defineUpdate<Decision[], [ApproveArgs & { identity?: string }]>('approve');
export const rejectUpdate = defineUpdate<Decision[], [RejectArgs & { identity?: string }]>('reject');

export type Verdict = 'approved' | 'rejected' | 'expired';

/** Audit records and notifications of one restore run. Told, never in the way: a webhook down changes nothing. */
export function restoreRecords(input: RestoreInput) {
  const { workflowId, runId } = workflowInfo();
  const { target } = input;
  return {
    audit: (event: AuditEvent['event'], actor: string, detail?: string, identity?: string, at = new Date().toISOString()) =>
      records.recordAudit({ at, target, workflowId, runId, action: 'restore', event, actor, identity, detail }),
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
          fields: { requestedBy: input.requestedBy, ...fields },
        })
        .then(
          () => undefined,
          () => undefined,
        ),
  };
}

export function approvalGate(input: RestoreInput, status: RestoreStatus) {
  const { target } = input;
  let plan: RestorePlan | undefined;
  const approvedBy = new Set<string>();
  let rejected = false;
  const decided = () => rejected || (plan !== undefined && approvedBy.size >= plan.approvalsRequired);
  const validate = (approver: string) => {
    if (!plan || status.step !== 'awaiting approval')
      throw new Error(`the restore of ${target} is not awaiting approval (step: ${status.step})`);
    if (decided()) throw new Error(`the restore of ${target} has already been ${rejected ? 'rejected' : 'approved'}`);
    if (!plan.approvers.includes(approver)) {
      throw new Error(`${approver} may not approve restores of ${target} (approvers: ${plan.approvers.join(', ')})`);
    }
    if (!plan.allowSelfApproval && approver === input.requestedBy) {
      throw new Error(`${approver} asked for this restore and cannot also approve it (four eyes)`);
    }
  };
  const decide = (d: Decision) => {
    status.decisions.push(d);
    return status.decisions;
  };
  setHandler(
    approveUpdate,
    ({ approver, comment, identity }) => {
      approvedBy.add(approver);
      return decide({ approver, decision: 'approve', at: new Date().toISOString(), comment, identity });
    },
    {
      validator: ({ approver }) => {
        validate(approver);
        if (approvedBy.has(approver)) throw new Error(`${approver} has already approved this restore`);
      },
    },
  );
  setHandler(
    rejectUpdate,
    ({ approver, reason, identity }) => {
      rejected = true;
      return decide({ approver, decision: 'reject', at: new Date().toISOString(), comment: reason, identity });
    },
    {
      validator: ({ approver, reason }) => {
        validate(approver);
        if (!reason?.trim()) throw new Error('a rejection needs a reason');
      },
    },
  );

  return {
    /**
     * Asks for approval of this plan and waits for the decision. Every decision is audited; a
     * cancellation while waiting is audited and announced, `onCancel` runs, and the cancellation is
     * rethrown: nothing was touched.
     */
    async decide(p: RestorePlan, onCancel: () => Promise<void>): Promise<Verdict> {
      const { audit, tell } = restoreRecords(input);
      plan = p;
      status.step = 'awaiting approval';
      await audit('requested', input.requestedBy, `restore ${p.backup.backupId} (${p.strategy}): ${input.reason}`);
      await tell(
        'restore-awaiting-approval',
        `restore of ${target} awaits approval`,
        [
          `${input.requestedBy} asks to restore ${p.backup.backupId} (${p.backup.keys} keys, taken ${p.backup.createdAt}) into ${target}: ${input.reason}`,
          `approvers: ${p.approvers.join(', ')} (${p.approvalsRequired} needed)`,
          `runbook approve ${workflowInfo().workflowId} --as <approver>`,
        ].join('\n'),
      );
      let inTime: boolean;
      try {
        inTime = await condition(decided, p.approvalTimeoutMs);
      } catch (err) {
        if (isCancellation(err)) {
          await CancellationScope.nonCancellable(async () => {
            await onCancel();
            await audit('cancelled', input.requestedBy, 'cancelled while awaiting approval; target untouched').catch(() => undefined);
            await tell('restore-done', `restore of ${target} cancelled`, 'cancelled while awaiting approval; nothing was changed', {
              outcome: 'cancelled',
            });
          });
        }
        throw err;
      }
      for (const d of status.decisions)
        await audit(d.decision === 'approve' ? 'approved' : 'rejected', d.approver, d.comment, d.identity, d.at);
      if (rejected) return 'rejected';
      if (!inTime) {
        await audit('expired', 'timeout', `no decision within ${p.approvalTimeoutMs / 1000} s`);
        return 'expired';
      }
      return 'approved';
    },
  };
}
