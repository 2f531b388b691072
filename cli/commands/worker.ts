import { Command } from 'commander';
import { z } from 'zod';
import { action, loadCliConfig, parseOptions, type GlobalOptions } from '../context';

export const METRICS_PORT_HELP = 'serve Prometheus metrics on http://<host>:<port>/metrics (0: any free port)';
export const METRICS_HOST_HELP = 'the address the metrics are served on';

const metricsOptions = z.object({
  metricsPort: z
    .string()
    .regex(/^\d{1,5}$/, 'a port number')
    .transform(Number)
    .pipe(z.number().max(65535, 'a port number up to 65535'))
    .optional(),
  metricsHost: z.string().min(1, 'a host name or address').default('127.0.0.1'),
});

/** --metrics-port and --metrics-host of `runbook worker` and `runbook dev`. */
export const parseMetricsOptions = (raw: unknown) => parseOptions(metricsOptions, raw);

export const workerCommand = new Command('worker')
  .description("serve the runbooks' task queue (stop with Ctrl-C: running activities are handed back)")
  .option('--metrics-port <port>', METRICS_PORT_HELP)
  .option('--metrics-host <host>', METRICS_HOST_HELP, '127.0.0.1')
  .action(
    action(async (raw: unknown, cmd: Command) => {
      const opts = parseMetricsOptions(raw);
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = loadCliConfig(global);
      const { createRunbookWorker } = await import('../../worker');
      const { worker, metrics, close, address, namespace } = await createRunbookWorker({
        config,
        metricsPort: opts.metricsPort,
        metricsHost: opts.metricsHost,
      });
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => worker.shutdown());
      process.stderr.write(`worker serving ${config.temporal.taskQueue} on ${address} (namespace ${namespace})\n`);
      if (metrics) process.stderr.write(`metrics at ${metrics.url}\n`);
      try {
        await worker.run();
      } finally {
        await close();
      }
    }),
  );
