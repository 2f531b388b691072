// The worker: builds the clients once and injects them into the activities.
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { storeRegistry } from '../activities/storage';
import type { Config } from '../common/config';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface RunbookWorkerOptions {
  config: Config;
  address: string;
  taskQueue?: string;
  identity?: string;
  overrides?: Partial<WorkerOptions>;
}

export async function createRunbookWorker(opts: RunbookWorkerOptions) {
  const { config } = opts;
  const connection = await NativeConnection.connect({ address: opts.address });
  const clientConnection = await Connection.connect({ address: opts.address });
  const temporal = new Client({ connection: clientConnection, namespace: config.temporal.namespace });
  const activities = createActivities({ config, stores: storeRegistry(config), temporal });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: opts.taskQueue ?? config.temporal.taskQueue,
    identity: opts.identity,
    workflowsPath,
    activities,
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
