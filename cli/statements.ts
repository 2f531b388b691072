// Signing what a person decides about a restore: the statement names this run and this plan, and is
// signed with the person's SSH key (a key file, or its public half with the private one in ssh-agent).
import { existsSync } from 'node:fs';
import { WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { planTerms, statementText, type SignedStatement, type Statement, type StatementKind } from '../common/approval-statement';
import { durationMs } from '../common/duration';
import { RunbookError } from '../common/errors';
import type { RestoreStatus } from '../common/restore-types';
import { signWithSshKey } from '../domain/trust/sshsig';
import { escapeControls as escapeText } from '../common/escape';

/** The key to sign with: --key, else $RUNBOOK_SSH_KEY. */
export function signingKeyFile(given: string | undefined, what: string): string {
  const file = given ?? process.env.RUNBOOK_SSH_KEY;
  if (!file) {
    throw new RunbookError(
      'BAD_INPUT',
      `${what} is signed with your SSH key, and none was given`,
      'pass --key ~/.ssh/id_ed25519 (or its .pub with the key in ssh-agent), or set RUNBOOK_SSH_KEY',
    );
  }
  if (!existsSync(file))
    throw new RunbookError('BAD_INPUT', `--key: no such file ${file}`, 'give the path of your SSH private key, or of its .pub');
  return file;
}

/** How long a signature stays good for (it must reach the restore within it): --valid-for. */
export const validForMs = (text: string | undefined) => durationMs(text ?? '15m');

/** The status of a restore, once it has a plan (and, for a decision, a signed request) to sign. */
export async function readyToSign(handle: WorkflowHandle, kind: StatementKind): Promise<RestoreStatus> {
  let status: RestoreStatus | undefined;
  // Planning proves the backup onto the worker first: for a large one, that takes a while.
  for (const until = Date.now() + 30 * 60_000; Date.now() < until;) {
    status = await handle.query<RestoreStatus>('status').catch(() => undefined);
    if (status?.plan && status.step === 'awaiting approval' && (kind === 'request' || status.requester)) return status;
    if (status && ['done', 'failed', 'cancelled', 'rejected', 'expired', 'dry-run'].includes(status.step)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new RunbookError(
    'APPROVAL_REFUSED',
    `${handle.workflowId} is not waiting for ${kind === 'request' ? 'its signed request' : 'a decision'} (step: ${status?.step ?? 'unknown'})`,
    `see \`runbook status ${handle.workflowId}\``,
  );
}

/** Builds the statement for this run's plan, signs it with the key, and sends it as the update `kind`. */
export async function signAndSend(
  client: Client,
  handle: WorkflowHandle,
  runId: string,
  status: RestoreStatus,
  kind: StatementKind,
  keyFile: string,
  opts: { comment?: string; validFor?: string } = {},
): Promise<{ statement: Statement; result: unknown }> {
  const now = Date.now();
  const statement: Statement = {
    kind,
    namespace: client.options.namespace,
    workflowId: handle.workflowId,
    runId,
    plan: planTerms(status.plan!, status.reason),
    ...(kind === 'request' ? {} : { requester: status.requester }),
    ...(opts.comment ? { comment: opts.comment } : {}),
    signedAt: new Date(now).toISOString(),
    expires: new Date(now + validForMs(opts.validFor)).toISOString(),
  };
  const text = statementText(statement);
  const signed: SignedStatement = { statement: text, signature: await signWithSshKey(text, keyFile) };
  try {
    return { statement, result: await handle.executeUpdate(kind, { args: [signed] }) };
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      throw new RunbookError('APPROVAL_REFUSED', (err.cause as Error | undefined)?.message ?? err.message, 'nothing was counted');
    }
    throw err;
  }
}

/** What a person is about to sign, in full: shown before they sign it. */
export function renderSigning(status: RestoreStatus, kind: StatementKind): string {
  const p = status.plan!;
  const b = p.backup;
  return [
    `${kind === 'request' ? 'request' : kind === 'approve' ? 'approve' : 'reject'} the restore of ${escapeText(p.target)}:`,
    `  backup:       ${b.backupId}, taken ${b.createdAt} (${Math.round(b.ageSeconds / 60)} min ago), ${b.keys} keys, RDB SHA-256 ${b.rdbSha256}`,
    `  trust:        ${p.allowUnsigned ? 'UNSIGNED backup, allowed by --allow-unsigned' : 'signed by the worker'}`,
    `  strategy:     ${p.strategy}; replaces ${p.current.keys} keys on ${p.current.role}, Redis ${p.current.version}`,
    `  requested by: ${status.requester ? `${escapeText(status.requester.person)} (key ${status.requester.fingerprint})` : 'you'}`,
    `  reason:       ${escapeText(status.reason)}`,
    '',
  ].join('\n');
}
