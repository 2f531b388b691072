// Deciding restores in tests as people do: a statement about this run and this plan, signed with the
// person's real SSH key, sent as an update. `mutate` lets a test sign something else on purpose.
import type { WorkflowHandle } from '@temporalio/client';
import { planTerms, statementText, type Statement, type StatementKind } from '../../common/approval-statement';
import type { RestoreStatus } from '../../common/restore-types';
import { signWithSshKey } from '../../domain/trust/sshsig';
import type { TestPerson } from './people';

export const TEST_PEOPLE = ['requester', 'alice', 'bob', 'carol', 'dave', 'mallory'] as const;
export type TestPeople = Record<(typeof TEST_PEOPLE)[number], TestPerson>;

export interface StatementOptions {
  comment?: string;
  /** Changes the statement before it is signed. */
  mutate?: (s: Statement) => void;
  /** Sends this instead of a real signature. */
  signature?: string;
  namespace?: string;
}

/** The restore's status once it waits for this kind of statement. */
export async function waitingFor(handle: WorkflowHandle, kind: StatementKind): Promise<RestoreStatus> {
  for (let i = 0; i < 600; i++) {
    const s = await handle.query<RestoreStatus>('status').catch(() => undefined);
    if (s?.plan && s.step === 'awaiting approval' && (kind === 'request' || s.requester)) return s;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${handle.workflowId} never waited for a ${kind}`);
}

/** Signs a statement of `kind` for the run `handle` points at, as `person`. */
export async function signedStatement(handle: WorkflowHandle, person: TestPerson, kind: StatementKind, opts: StatementOptions = {}) {
  const status = await waitingFor(handle, kind);
  const { runId } = await handle.describe();
  const now = Date.now();
  const statement: Statement = {
    kind,
    namespace: opts.namespace ?? 'default',
    workflowId: handle.workflowId,
    runId,
    plan: planTerms(status.plan!, status.reason),
    ...(kind === 'request' ? {} : { requester: status.requester }),
    ...(opts.comment ? { comment: opts.comment } : kind === 'reject' ? { comment: 'not this one' } : {}),
    signedAt: new Date(now).toISOString(),
    expires: new Date(now + 15 * 60_000).toISOString(),
  };
  opts.mutate?.(statement);
  const text = statementText(statement);
  return { statement: text, signature: opts.signature ?? (await signWithSshKey(text, person.keyFile)) };
}

/** Signs and sends: the update's result, or its failure as thrown by the client. */
export async function decide<T = unknown>(
  handle: WorkflowHandle,
  person: TestPerson,
  kind: StatementKind,
  opts: StatementOptions = {},
): Promise<T> {
  const signed = await signedStatement(handle, person, kind, opts);
  return handle.executeUpdate<T, [typeof signed]>(kind, { args: [signed] });
}
