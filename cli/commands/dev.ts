import { Command } from 'commander';
import { action, loadCliConfig, temporalNamespace, type GlobalOptions } from '../context';
import { METRICS_HOST_HELP, METRICS_PORT_HELP, parseMetricsOptions } from './worker';

export const devCommand = new Command('dev')
  .description('run the embedded Temporal dev server (state in a SQLite file) and a worker, for local use')
  .option('--metrics-port <port>', METRICS_PORT_HELP)
  .option('--metrics-host <host>', METRICS_HOST_HELP, '127.0.0.1')
  .action(
    action(async (raw: unknown, cmd: Command) => {
      const opts = parseMetricsOptions(raw);
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = loadCliConfig(global);
      const dev = config.temporal.devServer;
      const [{ startDevServer }, { createRunbookWorker }] = await Promise.all([import('../../worker/dev-server'), import('../../worker')]);
      const server = await startDevServer({ dbFile: dev.dbFile, port: dev.port, uiPort: dev.uiPort, namespace: temporalNamespace(config) });
      const started = await createRunbookWorker({
        config,
        address: server.address,
        metricsPort: opts.metricsPort,
        metricsHost: opts.metricsHost,
      }).catch(async (err: unknown) => {
        await server.stop();
        throw err;
      });
      const { worker, metrics, close } = started;
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => worker.shutdown());
      process.stderr.write(
        `Temporal ${server.address} (state in ${dev.dbFile})\nTemporal UI: ${server.uiUrl}\nworker serving ${config.temporal.taskQueue}; Ctrl-C to stop\n`,
      );
      if (metrics) process.stderr.write(`metrics at ${metrics.url}\n`);
      try {
        await worker.run();
      } finally {
        await close();
        await server.stop();
      }
    }),
  );
