import { Command } from 'commander';
import { startDevServer } from '../../worker/dev-server';
import { createRunbookWorker } from '../../worker';
import { action, loadCliConfig, type GlobalOptions } from '../context';

export const devCommand = new Command('dev')
  .description('run the embedded Temporal dev server (state in a SQLite file) and a worker, for local use')
  .action(
    action(async (_o: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = loadCliConfig(global);
      const dev = config.temporal.devServer;
      const server = await startDevServer({ dbFile: dev.dbFile, port: dev.port, uiPort: dev.uiPort, namespace: config.temporal.namespace });
      const { worker, close } = await createRunbookWorker({ config, address: server.address });
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => worker.shutdown());
      process.stderr.write(
        `Temporal ${server.address} (state in ${dev.dbFile})\nTemporal UI: ${server.uiUrl}\nworker serving ${config.temporal.taskQueue}; Ctrl-C to stop\n`,
      );
      try {
        await worker.run();
      } finally {
        await close();
        await server.stop();
      }
    }),
  );
