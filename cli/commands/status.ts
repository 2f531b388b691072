import { Command } from 'commander';
import { RunbookError } from '../../common/errors';
import type { RestoreStatus } from '../../common/restore-types';
import { escapeControls as escapeText } from '../../common/escape';
import { EXIT } from '../exit-codes';
import { action, connectClient, loadCliConfig, print, requireWorker, rootFailure, type GlobalOptions } from '../context';

export const statusCommand = new Command('status')
  .description('show where a runbook run stands: its state, current step and result')
  .argument('<workflowId>')
  .action(
    action(async (workflowId: string, _o: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      if (!workflowId.trim()) throw new RunbookError('BAD_INPUT', '<workflowId>: a workflow id such as backup/main/nightly-...');
      const config = loadCliConfig(global);
      const client = await connectClient(config);
      const handle = client.workflow.getHandle(workflowId);
      const d = await handle.describe();
      const state = d.status.name;
      // A running run's step comes from a worker: without one polling, say so (exit 11) instead of waiting.
      const noWorker =
        state === 'RUNNING'
          ? await requireWorker(client, config).then(
              () => undefined,
              (err: unknown) => err,
            )
          : undefined;
      if (noWorker && !(noWorker instanceof RunbookError && noWorker.code === 'NO_WORKER')) throw noWorker;
      const step = state === 'RUNNING' && !noWorker ? await handle.query('status').catch(() => undefined) : undefined;
      // Each pending activity's attempt and the cause of the last failure: what a retrying run is riding out.
      const pending = (d.raw.pendingActivities ?? []).map((a) => ({
        activity: a.activityType?.name ?? '?',
        attempt: a.attempt ?? 1,
        lastFailure: a.lastFailure?.message ?? undefined,
      }));
      let result: unknown;
      let failure: string | undefined;
      if (state === 'COMPLETED') result = await handle.result();
      if (state === 'FAILED')
        failure = await handle.result().then(
          () => undefined,
          (err) => rootFailure(err).message,
        );
      const out = {
        workflowId,
        runId: d.runId,
        type: d.type,
        state,
        startTime: d.startTime,
        closeTime: d.closeTime,
        step,
        pending,
        ...(noWorker ? { warning: (noWorker as RunbookError).message } : {}),
        result,
        failure,
      };
      print(
        global,
        out,
        () =>
          [
            `${workflowId} (${d.type}): ${state}`,
            `  started ${d.startTime.toISOString()}${d.closeTime ? `, closed ${d.closeTime.toISOString()}` : ''}`,
            step ? `  step: ${escapeText((step as { step: string }).step)}` : '',
            ...approvalLines(step as Partial<RestoreStatus> | undefined),
            ...pending.map((p) => `  ${p.activity}: attempt ${p.attempt}${p.lastFailure ? `, last failure: ${p.lastFailure}` : ''}`),
            noWorker ? `  warning: ${(noWorker as RunbookError).message}` : '',
            failure ? `  failure: ${failure}` : '',
            result && typeof result === 'object' && 'text' in result ? String((result as { text: string }).text) : '',
          ]
            .filter(Boolean)
            .join('\n') + '\n',
      );
      await client.connection.close();
      if (noWorker) process.exitCode = EXIT.NO_WORKER;
    }),
  );

/** A restore's gate, as the worker verified it: who signed the request, each decision, each refusal. */
function approvalLines(s: Partial<RestoreStatus> | undefined): string[] {
  if (!s || !Array.isArray(s.decisions)) return [];
  return [
    ...(s.requester ? [`  requested by ${escapeText(s.requester.person)} (key ${s.requester.fingerprint})`] : []),
    ...s.decisions.map((d) => `  ${d.decision}d by ${escapeText(d.approver)} (key ${d.fingerprint}) at ${d.at}`),
    ...(s.refused ?? []).map((r) => `  refused ${r.kind} at ${r.at}: ${escapeText(r.why)}`),
  ];
}
