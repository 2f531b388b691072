// The worker's own approval gate. Before any step that changes a target, the activity reads the
// history of the very run it belongs to (known from its own context, not from its input), takes the
// signed statements people sent to that run, and checks them against the worker's own config: the
// request and the approvals verify, bind to this run and one plan, were accepted before they expired,
// and meet the target's rule (who may approve, how many, four eyes by key). Nothing the workflow
// passed is believed: a workflow that is not ours, or ours driven by someone else, gets nothing here.
import { Context } from '@temporalio/activity';
import { decodeArrayFromPayloads } from '@temporalio/common/lib/internal-non-workflow';
import {
  bindingProblem,
  type PlanTerms,
  type SignedStatement,
  type Signer,
  type Statement,
  type StatementKind,
} from '../common/approval-statement';
import type { AuditEvent } from '../common/audit';
import { targetOf } from '../common/config';
import { isOneOf } from '../common/restore-types';
import { RunbookError } from '../common/errors';
import { appendAudit } from '../domain/audit';
import { verifyStatement } from '../domain/trust/people';
import type { Deps } from './deps';

export interface Approved {
  workflowId: string;
  runId: string;
  plan: PlanTerms;
  requester: Signer;
  approvers: Signer[];
}

interface Accepted {
  kind: StatementKind;
  signed: SignedStatement;
  /** When the server accepted it: a statement counts only if accepted before it expired. */
  at: number;
}

/** Approvals already proven for a run: the history only grows, and a decided restore takes no more decisions. */
const proven = new Map<string, { approved: Approved; at: number }>();
const PROVEN_FOR_MS = 10 * 60_000;

export function createGate(deps: Deps) {
  const { config } = deps;

  /** The run this activity belongs to, as the server told the worker. */
  const run = () => {
    const info = Context.current().info;
    const execution = info.workflowExecution;
    if (!execution) throw new RunbookError('GATE_REFUSED', `${info.activityType} runs for no workflow: refused`);
    const { workflowId, runId } = execution;
    return {
      namespace: info.workflowNamespace ?? info.activityNamespace,
      workflowId,
      runId,
      activity: info.activityType,
      workflowType: info.workflowType,
    };
  };

  async function statementsOf(workflowId: string, runId: string): Promise<Accepted[]> {
    // The worker's own client; else the one the SDK gives every activity, bound to the worker's namespace.
    const client = deps.temporal ?? Context.current().client;
    const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    const converter = client.workflow.options.loadedDataConverter;
    const out: Accepted[] = [];
    for (const e of history.events ?? []) {
      const input = e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input;
      if (!input?.name || !['request', 'approve', 'reject'].includes(input.name)) continue;
      const [signed] = await decodeArrayFromPayloads(converter, input.args?.payloads).catch(() => [undefined]);
      const t = e.eventTime;
      out.push({
        kind: input.name as StatementKind,
        signed: signed as SignedStatement,
        at: t ? Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : 0,
      });
    }
    return out;
  }

  /** Refuses, on record: who tried what, for which run, and why. */
  const refuser =
    (target: string) =>
    async (why: string): Promise<never> => {
      const r = run();
      await appendAudit(
        deps,
        {
          at: new Date().toISOString(),
          target,
          workflowId: r.workflowId,
          runId: r.runId,
          action: 'restore',
          event: 'refused',
          actor: `worker gate (${r.workflowType})`,
          detail: `${r.activity}: ${why}`,
        },
        `${r.runId}/${Context.current().info.activityId}/refused`,
      ).catch(() => undefined);
      throw new RunbookError(
        'GATE_REFUSED',
        `the worker refuses ${r.activity} on ${target} for ${r.workflowType} ${r.workflowId} (run ${r.runId}): ${why}`,
        'a restore changes a target only after people the worker trusts have signed its request and approvals (`runbook restore`, `runbook approve`)',
      );
    };

  /** Every statement sent to this run that verifies and binds to it, and why the others do not. */
  async function evidence() {
    const r = run();
    const checked: { kind: StatementKind; statement: Statement; signer: Signer }[] = [];
    const problems: string[] = [];
    for (const a of await statementsOf(r.workflowId, r.runId)) {
      try {
        const { statement, signer } = verifyStatement(config, a.signed);
        if (statement.kind !== a.kind) throw new Error(`a ${statement.kind} statement sent as a ${a.kind}`);
        const problem = bindingProblem(statement, {
          namespace: r.namespace,
          workflowId: r.workflowId,
          runId: r.runId,
          plan: statement.plan,
          requester: statement.kind === 'request' ? undefined : checked.find((c) => c.kind === 'request')?.signer,
          now: a.at,
        });
        if (problem) throw new Error(problem);
        checked.push({ kind: a.kind, statement, signer });
      } catch (err) {
        problems.push(`${a.kind}: ${(err as Error).message}`);
      }
    }
    const request = checked.find((c) => c.kind === 'request');
    const samePlan = (s: Statement) => JSON.stringify(s.plan) === JSON.stringify(request?.statement.plan);
    // Decisions count only about the request's plan, and from people the target's rule lets decide.
    const eligible = (target: string) => {
      const rule = targetOf(config, target).restore;
      return checked.filter(
        (d) =>
          request &&
          d.kind !== 'request' &&
          samePlan(d.statement) &&
          isOneOf(d.signer, rule.approvers) &&
          d.signer.fingerprint !== request.signer.fingerprint &&
          (rule.allowSelfApproval || d.signer.person !== request.signer.person),
      );
    };
    return { request, eligible, problems };
  }

  /**
   * The approvals this run holds for a restore of `target`, verified here; refused (GATE_REFUSED) when
   * there is no signed request, a valid rejection, or fewer valid approvals than the target requires.
   */
  async function approvedRun(target: string): Promise<Approved> {
    const r = run();
    const cached = proven.get(r.runId);
    if (cached && cached.approved.plan.target === target && Date.now() - cached.at < PROVEN_FOR_MS) return cached.approved;
    const rule = targetOf(config, target).restore;
    const refuse = refuser(target);
    const { request, eligible, problems } = await evidence();
    if (!request) return refuse(`it holds no valid signed request${problems.length ? ` (${problems.join('; ')})` : ''}`);
    const plan = request.statement.plan;
    if (plan.target !== target) return refuse(`its signed request is for target ${plan.target}`);
    if (plan.strategy !== rule.strategy)
      return refuse(`its signed request is for strategy ${plan.strategy}, the target is configured for ${rule.strategy}`);
    const decisions = eligible(target);
    const rejection = decisions.find((d) => d.kind === 'reject');
    if (rejection) return refuse(`${rejection.signer.person} rejected it`);
    const approvers = [...new Map(decisions.filter((d) => d.kind === 'approve').map((d) => [d.signer.person, d.signer])).values()];
    if (approvers.length < rule.approvals) {
      return refuse(
        `it holds ${approvers.length} valid approval(s) of ${rule.approvals} required (approvers: ${rule.approvers.join(', ')})` +
          (problems.length ? `; not counted: ${problems.join('; ')}` : ''),
      );
    }
    const approved: Approved = { workflowId: r.workflowId, runId: r.runId, plan, requester: request.signer, approvers };
    proven.set(r.runId, { approved, at: Date.now() });
    return approved;
  }

  /**
   * An audit record that claims a person's decision (requested, approved, rejected) or a restore's
   * outcome is written only when this run's history holds that person's valid signed statement (or,
   * for "restored", the approvals): the trail cannot be told what nobody signed.
   */
  async function checkAuditClaim(e: AuditEvent): Promise<void> {
    if (e.action !== 'restore' || !['requested', 'approved', 'rejected', 'restored'].includes(e.event)) return;
    if (e.event === 'restored') {
      const approved = await approvedRun(e.target);
      if (approved.requester.person !== e.actor)
        await refuser(e.target)(`a "restored" record names ${e.actor}, but ${approved.requester.person} signed the request`);
      return;
    }
    const { request, eligible, problems } = await evidence();
    const signed =
      e.event === 'requested'
        ? request && request.signer.person === e.actor && request.statement.plan.target === e.target
        : eligible(e.target).some((d) => d.kind === (e.event === 'approved' ? 'approve' : 'reject') && d.signer.person === e.actor);
    if (!signed) {
      await refuser(e.target)(
        `an "${e.event}" record names ${e.actor}, but this run holds no valid statement of theirs${problems.length ? ` (${problems.join('; ')})` : ''}`,
      );
    }
  }

  return {
    approvedRun,
    checkAuditClaim,
    run,
    /** A statement sent to a restore: signed by a key of a known person, and for the run it was sent to. */
    verifyStatement(input: { kind: StatementKind; signed: SignedStatement }): Signer {
      const r = run();
      const { statement, signer } = verifyStatement(config, input.signed);
      if (statement.kind !== input.kind)
        throw new RunbookError('SIGNATURE_INVALID', `a ${statement.kind} statement sent as a ${input.kind}`);
      if (statement.workflowId !== r.workflowId || statement.runId !== r.runId || statement.namespace !== r.namespace) {
        throw new RunbookError('SIGNATURE_INVALID', `the statement is for ${statement.workflowId} run ${statement.runId}, not this run`);
      }
      if (Date.parse(statement.expires) < Date.now())
        throw new RunbookError('SIGNATURE_INVALID', `the statement expired at ${statement.expires}`);
      return signer;
    },
  };
}
export type Gate = ReturnType<typeof createGate>;
