import { Command } from 'commander';
import { WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { z } from 'zod';
import { RunbookError } from '../../common/errors';
import type { Decision, RestoreStatus } from '../../common/restore-types';
import type { RecoverStatus } from '../../common/drill-types';
import { action, connectClient, requireWorker, loadCliConfig, print, type GlobalOptions } from '../context';

const approver = z.string().regex(/^[\w.@-]{1,64}$/, 'a name of letters, digits and . _ @ -');

/** approve and reject are the same gesture with a different update; the workflow's validator decides. */
function decisionCommand(kind: 'approve' | 'reject') {
  const cmd = new Command(kind)
    .description(kind === 'approve' ? 'approve a restore that waits for approval' : 'reject a restore: nothing is touched')
    .argument('<workflowId>', 'e.g. restore/main')
    .requiredOption('--as <name>', "who decides: must be one of the target's approvers");
  if (kind === 'approve') cmd.option('--comment <text>');
  else cmd.requiredOption('--reason <text>');
  return cmd.action(
    action(async (workflowId: string, raw: { as: string; comment?: string; reason?: string }, c: Command) => {
      const global = c.optsWithGlobals<GlobalOptions>();
      const name = approver.safeParse(raw.as);
      if (!name.success) throw new RunbookError('BAD_INPUT', `--as: ${name.error.issues[0]!.message}`);
      if (kind === 'reject' && !raw.reason?.trim()) throw new RunbookError('BAD_INPUT', '--reason: a rejection needs a reason');
      if (!workflowId.trim()) throw new RunbookError('BAD_INPUT', '<workflowId>: a workflow id such as restore/main');
      const config = loadCliConfig(global);
      const client = await connectClient(config);
      await requireWorker(client, config);
      const args = { approver: name.data, comment: raw.comment, reason: raw.reason ?? '', identity: client.options.identity };
      const handle = await decidedHandle(client, workflowId);
      await untilAwaitingApproval(handle);
      let decisions: Decision[];
      try {
        decisions = await handle.executeUpdate<Decision[], [typeof args]>(kind, { args: [args] });
      } catch (err) {
        if (err instanceof WorkflowUpdateFailedError) {
          throw new RunbookError('APPROVAL_REFUSED', (err.cause as Error | undefined)?.message ?? err.message, 'nothing was recorded');
        }
        throw err;
      }
      print(global, decisions, () => `${kind === 'approve' ? 'approved' : 'rejected'} ${handle.workflowId} as ${name.data}\n`);
      await client.connection.close();
    }),
  );
}

/** A disaster recovery is decided on its restore: `runbook approve dr/main` means its restore/main. */
async function decidedHandle(client: Client, workflowId: string): Promise<WorkflowHandle> {
  const handle = client.workflow.getHandle(workflowId);
  const d = await handle.describe();
  if (d.type !== 'recoverRedis') return handle;
  if (d.status.name !== 'RUNNING') {
    throw new RunbookError('APPROVAL_REFUSED', `the recovery ${workflowId} is ${d.status.name.toLowerCase()}: nothing waits for approval`);
  }
  for (let i = 0; i < 300; i++) {
    const status = await handle.query<RecoverStatus>('status');
    // That very run: an older recovery's id must never approve a restore someone started since.
    if (status.restoreWorkflowId) return client.workflow.getHandle(status.restoreWorkflowId, status.restoreRunId);
    if (['failed', 'cancelled', 'done'].includes(status.step)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new RunbookError(
    'APPROVAL_REFUSED',
    `the recovery ${workflowId} has no restore waiting for approval`,
    `see \`runbook status ${workflowId}\``,
  );
}

/** A restore still planning is not yet ready to be decided; wait a little for it rather than fail. */
async function untilAwaitingApproval(handle: WorkflowHandle): Promise<void> {
  for (let i = 0; i < 150; i++) {
    const status = await handle.query<RestoreStatus>('status');
    if (status.step !== 'plan') return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

export const approveCommand = decisionCommand('approve');
export const rejectCommand = decisionCommand('reject');
