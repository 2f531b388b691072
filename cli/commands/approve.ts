import { createInterface } from 'node:readline/promises';
import { Command } from 'commander';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { RunbookError } from '../../common/errors';
import type { Decision } from '../../common/restore-types';
import type { RecoverStatus } from '../../common/drill-types';
import { action, connectClient, requireWorker, loadCliConfig, print, type GlobalOptions } from '../context';
import { escapeControls as escapeText } from '../../common/escape';

/**
 * approve and reject are the same gesture: show the plan, sign a statement about this run and this
 * plan with your SSH key, send it. Who you are is the key's owner in the worker's config, not a name.
 */
function decisionCommand(kind: 'approve' | 'reject') {
  const cmd = new Command(kind)
    .description(
      kind === 'approve'
        ? 'approve a restore that waits for approval: shows its plan, then signs your approval with your SSH key'
        : 'reject a restore: nothing is touched',
    )
    .argument('<workflowId>', 'e.g. restore/main (or dr/main for a recovery)')
    .option('--key <file>', 'your SSH key (or its .pub, with the key in ssh-agent); default $RUNBOOK_SSH_KEY')
    .option('--valid-for <duration>', 'how long your signature may take to reach the restore (default 15m)')
    .option('--yes', 'sign without asking for confirmation (needed without a terminal)');
  if (kind === 'approve') cmd.option('--comment <text>');
  else cmd.requiredOption('--reason <text>');
  return cmd.action(
    action(
      async (
        workflowId: string,
        raw: { key?: string; validFor?: string; yes?: boolean; comment?: string; reason?: string },
        c: Command,
      ) => {
        const global = c.optsWithGlobals<GlobalOptions>();
        if (kind === 'reject' && !raw.reason?.trim()) throw new RunbookError('BAD_INPUT', '--reason: a rejection needs a reason');
        if (!workflowId.trim()) throw new RunbookError('BAD_INPUT', '<workflowId>: a workflow id such as restore/main');
        if (raw.validFor !== undefined && !/^\d+(s|m|h)$/.test(raw.validFor)) {
          throw new RunbookError('BAD_INPUT', '--valid-for: a duration such as "15m" or "1h"');
        }
        const { readyToSign, renderSigning, signAndSend, signingKeyFile } = await import('../statements');
        const keyFile = signingKeyFile(raw.key, kind === 'approve' ? 'an approval' : 'a rejection');
        const config = loadCliConfig(global);
        const client = await connectClient(config);
        await requireWorker(client, config);
        const handle = await decidedHandle(client, workflowId);
        const status = await readyToSign(handle, kind);
        const { runId } = await handle.describe();
        if (!raw.yes) await confirm(renderSigning(status, kind), kind);
        const { result } = await signAndSend(client, handle, runId, status, kind, keyFile, {
          comment: kind === 'approve' ? raw.comment : raw.reason,
          validFor: raw.validFor,
        });
        const decisions = result as Decision[];
        const mine = decisions.at(-1);
        print(
          global,
          decisions,
          () =>
            `${kind === 'approve' ? 'approved' : 'rejected'} ${handle.workflowId} as ${escapeText(mine?.approver ?? '?')} (key ${mine?.fingerprint})\n`,
        );
        await client.connection.close();
      },
    ),
  );
}

/** Shows what is about to be signed and asks; without a terminal, only --yes signs. */
async function confirm(text: string, kind: string): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new RunbookError('BAD_INPUT', `no terminal to confirm the ${kind} on`, 'read the plan with `runbook status`, then pass --yes');
  }
  process.stderr.write(text);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(`sign and ${kind}? [y/N] `);
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw new RunbookError('APPROVAL_REFUSED', `not signed: nothing was sent`);
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

export const approveCommand = decisionCommand('approve');
export const rejectCommand = decisionCommand('reject');
