import { Command } from 'commander';
import { RunbookError } from '../../common/errors';
import { action, connectClient, loadCliConfig, print, rootFailure, type GlobalOptions } from '../context';

export const statusCommand = new Command('status')
  .description('show where a runbook run stands: its state, current step and result')
  .argument('<workflowId>')
  .action(
    action(async (workflowId: string, _o: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      if (!workflowId.trim()) throw new RunbookError('BAD_INPUT', 'workflowId: a workflow id such as backup/main/nightly-...');
      const config = loadCliConfig(global);
      const client = await connectClient(config);
      const handle = client.workflow.getHandle(workflowId);
      const d = await handle.describe();
      const state = d.status.name;
      const step = state === 'RUNNING' ? await handle.query('status').catch(() => undefined) : undefined;
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
            step ? `  step: ${(step as { step: string }).step}` : '',
            failure ? `  failure: ${failure}` : '',
            result && typeof result === 'object' && 'text' in result ? String((result as { text: string }).text) : '',
          ]
            .filter(Boolean)
            .join('\n') + '\n',
      );
      await client.connection.close();
    }),
  );
