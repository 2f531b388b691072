import { Command } from 'commander';
import { createRunbookWorker } from '../../worker';
import { action, loadCliConfig, temporalAddress, type GlobalOptions } from '../context';

export const workerCommand = new Command('worker')
  .description("serve the runbooks' task queue (stop with Ctrl-C: running activities are handed back)")
  .action(
    action(async (_o: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = loadCliConfig(global);
      const { worker, close } = await createRunbookWorker({ config, address: temporalAddress(config) });
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => worker.shutdown());
      process.stderr.write(`worker serving ${config.temporal.taskQueue} on ${temporalAddress(config)}\n`);
      await worker.run();
      await close();
    }),
  );
