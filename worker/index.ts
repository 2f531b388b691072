// The worker: builds the clients once and injects them into the activities.
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { storeRegistry } from '../activities/storage';
import type { Config } from '../common/config';
import { dataConverterFor } from './payload-codec';
import { workflowBundlePath } from './bundle';

export { workflowsPath } from './workflows-path';

export interface RunbookWorkerOptions {
  config: Config;
  address: string;
  taskQueue?: string;
  identity?: string;
  overrides?: Partial<WorkerOptions>;
}

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
  const connection = await NativeConnection.connect({ address: opts.address });
  const clientConnection = await Connection.connect({ address: opts.address });
  const temporal = new Client({
    connection: clientConnection,
    namespace: config.temporal.namespace,
    dataConverter: dataConverterFor(config),
  });
  const activities = createActivities({ config, stores: storeRegistry(config), temporal });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: opts.taskQueue ?? config.temporal.taskQueue,
    ...(opts.identity ? { identity: opts.identity } : {}),
    workflowBundle: { codePath: await workflowBundlePath() },
    activities,
    dataConverter: dataConverterFor(config),
    maxConcurrentActivityTaskExecutions: 8,
    ...opts.overrides,
  });
  return {
    worker,
    async close() {
      await clientConnection.close();
      await connection.close();
    },
  };
}
