// One Temporal dev server, one S3-less local destination and an in-process worker, for restore tests.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { storeRegistry } from '../../domain/storage';
import { parseConfig, type Config } from '../../common/config';
import type { BackupReport } from '../../common/types';
import type { RestoreInput } from '../../common/restore-types';
import { startTemporal, workflowBundle } from './temporal';

export interface RestoreEnv {
  env: TestWorkflowEnvironment;
  dir: string;
  taskQueue: string;
  config: Config;
  configFile: string;
  backup(target: string): Promise<BackupReport>;
  startRestore(
    input: Omit<RestoreInput, 'reason' | 'requestedBy'> & Partial<RestoreInput>,
  ): ReturnType<TestWorkflowEnvironment['client']['workflow']['start']>;
  /** Starts a worker in this process (again after stopWorker). */
  startWorker(): Promise<void>;
  stopWorker(): Promise<void>;
  close(): Promise<void>;
}

/**
 * `targets` is the YAML of the targets section; "destinations: [disk]" is the destination to use.
 * `more` adds entries under `storage` and top-level sections (webhooks, encryption).
 */
export async function startRestoreEnv(
  taskQueue: string,
  targets: (dir: string) => string,
  more: { storage?: string; top?: string } = {},
): Promise<RestoreEnv> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `rr-${taskQueue}-`));
  const env = await startTemporal();
  const text = `
temporal: { address: "${env.address}", taskQueue: ${taskQueue} }
storage:
  disk: { type: local, path: ${dir}/backups }
${more.storage ?? ''}
targets:
${targets(dir)}
${more.top ?? ''}`;
  const configFile = path.join(dir, 'runbook.yaml');
  writeFileSync(configFile, text);
  const config = parseConfig(text, configFile);
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  let seq = 0;
  const self: RestoreEnv = {
    env,
    dir,
    taskQueue,
    config,
    configFile,
    backup: (target) =>
      env.client.workflow.execute('backupRedis', { taskQueue, workflowId: `backup/${target}/t${++seq}-${Date.now()}`, args: [{ target }] }),
    startRestore: (input) =>
      env.client.workflow.start('restoreRedis', {
        taskQueue,
        workflowId: `restore/${input.target}`,
        args: [{ reason: 'test restore', requestedBy: 'requester', ...input }],
      }),
    async startWorker() {
      worker = await Worker.create({
        connection: env.nativeConnection,
        taskQueue,
        workflowBundle: await workflowBundle(),
        activities: createActivities({ config, stores: storeRegistry(config), temporal: env.client }),
      });
      running = worker.run();
    },
    async stopWorker() {
      worker?.shutdown();
      await running;
      worker = undefined;
    },
    async close() {
      await self.stopWorker();
      await env.teardown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await self.startWorker();
  return self;
}

/** Waits until the restore has made its plan and waits for a decision. */
export async function awaitingApproval(handle: { query<T>(name: string): Promise<T> }, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await handle.query<{ step: string }>('status')).step !== 'awaiting approval') {
    if (Date.now() > deadline) throw new Error('the restore never reached the approval gate');
    await new Promise((r) => setTimeout(r, 50));
  }
}
