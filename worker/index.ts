// The worker: builds the clients once and injects them into the activities.
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { trustedKeys } from '../domain/trust/people';
import { signerFor } from '../domain/trust/signing';
import { storeRegistry } from '../domain/storage';
import type { Config } from '../common/config';
import { RunbookError } from '../common/errors';
import { dataConverterFor } from './payload-codec';
import { connectOptions, devServerSettings, temporalConnectionSettings, unreachable, type TemporalConnectionSettings } from './connection';
import { workflowBundlePath } from './bundle';
import { createMetrics, type MetricsServer } from './metrics';

export { workflowsPath } from './workflows-path';

export interface RunbookWorkerOptions {
  config: Config;
  /** A local dev server to use instead of the configured Temporal: plain, no credentials. */
  address?: string;
  /** The connection to use; default: the config's (and the TEMPORAL_* environment's). */
  connection?: TemporalConnectionSettings;
  taskQueue?: string;
  identity?: string;
  overrides?: Partial<WorkerOptions>;
  /** Serve Prometheus metrics on this port (0: any free one); absent: no metrics. */
  metricsPort?: number;
  /** Default 127.0.0.1: the figures are no secret, but nobody else needs them unless told. */
  metricsHost?: string;
}

/**
 * Heartbeats, with the bytes moved so far, reach Temporal twice a second: what `--wait` shows. The SDK
 * would hold them for 80% of the heartbeat timeout (16 s for a capture), hiding a whole backup; at 1 s
 * they would beat against the capture's own once-a-second count and show it up to 2 s late.
 */
export const HEARTBEAT_THROTTLE = { maxHeartbeatThrottleInterval: '500ms', defaultHeartbeatThrottleInterval: '500ms' } as const;

let runtimeInstalled = false;

export async function createRunbookWorker(opts: RunbookWorkerOptions) {
  const { config } = opts;
  if (!runtimeInstalled) {
    runtimeInstalled = true;
    try {
      // Warnings and errors only: webpack's bundling report is noise to an operator.
      Runtime.install({ logger: new DefaultLogger((process.env.RUNBOOK_LOG_LEVEL as 'INFO' | undefined) ?? 'WARN') });
    } catch {
      // Already installed by the embedding program (tests, the demo): keep its logger.
    }
  }
  // A worker signs every manifest, drill report and audit record, and checks who approved against its
  // people: a missing or untrusted signing key, or a malformed key of a person, is said at start.
  signerFor(config);
  trustedKeys(config);
  const settings = opts.connection ?? (opts.address ? devServerSettings(config, opts.address) : temporalConnectionSettings(config));
  const dataConverter = dataConverterFor(config);
  const connection = await NativeConnection.connect(connectOptions(settings)).catch(async (err: unknown) => {
    throw await unreachable(settings, err);
  });
  const clientConnection = await Connection.connect({ ...connectOptions(settings), connectTimeout: '10s' }).catch(async (err: unknown) => {
    await connection.close();
    throw await unreachable(settings, err);
  });
  const temporal = new Client({ connection: clientConnection, namespace: settings.namespace, dataConverter });
  const stores = storeRegistry(config);
  const metrics = opts.metricsPort === undefined ? undefined : createMetrics(config, stores);
  const activities = createActivities({ config, stores, temporal, ...(metrics ? { onEvent: metrics.onEvent } : {}) });
  const worker = await Worker.create({
    connection,
    namespace: settings.namespace,
    taskQueue: opts.taskQueue ?? config.temporal.taskQueue,
    ...(opts.identity ? { identity: opts.identity } : {}),
    workflowBundle: { codePath: await workflowBundlePath() },
    activities,
    dataConverter,
    maxConcurrentActivityTaskExecutions: 8,
    ...HEARTBEAT_THROTTLE,
    ...opts.overrides,
  });
  const metricsHost = opts.metricsHost ?? '127.0.0.1';
  let served: MetricsServer | undefined;
  try {
    served = metrics ? await metrics.serve(opts.metricsPort!, metricsHost) : undefined;
  } catch (err) {
    await clientConnection.close();
    await connection.close();
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new RunbookError(
      'BAD_INPUT',
      `cannot serve metrics on ${metricsHost}:${opts.metricsPort}: ${reason}`,
      'choose another --metrics-port or --metrics-host',
    );
  }
  return {
    worker,
    /** Where it serves: no secret in it. */
    address: settings.address,
    namespace: settings.namespace,
    /** Where the metrics are served, when they are. */
    metrics: served
      ? { url: `http://${metricsHost.includes(':') ? `[${metricsHost}]` : metricsHost}:${served.port}/metrics`, port: served.port }
      : undefined,
    async close() {
      await served?.close();
      await clientConnection.close();
      await connection.close();
    },
  };
}
