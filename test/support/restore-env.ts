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
import { decide, TEST_PEOPLE, type TestPeople } from './approvals';
import { makePeople, peopleYaml, type TestPerson } from './people';
import { signingKey, type TestSigningKey } from './signing';
import { startTemporal, workflowBundle } from './temporal';

export interface RestoreEnv {
  env: TestWorkflowEnvironment;
  dir: string;
  taskQueue: string;
  config: Config;
  configFile: string;
  /** The worker's signing key (signing.key, and its public half in signing.trust). */
  signing: TestSigningKey;
  /** People with real SSH keys, in the config's `people:`: requester, alice, bob, carol, dave, mallory. */
  people: TestPeople;
  /** dave's second key. */
  daveAlt: TestPerson;
  backup(target: string): Promise<BackupReport>;
  /**
   * Starts a restore and, once it has a plan, signs its request as `requestAs` (default: requester),
   * as `runbook restore` does; `requestAs: null` leaves the request to the test.
   */
  startRestore(
    input: Omit<RestoreInput, 'reason'> & Partial<RestoreInput> & { requestAs?: keyof TestPeople | null },
  ): ReturnType<TestWorkflowEnvironment['client']['workflow']['start']>;
  /** Signs and sends an approval (or rejection) of the restore of `target` as `person`. */
  decide(target: string, person: keyof TestPeople, kind?: 'approve' | 'reject', comment?: string): Promise<unknown>;
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
  const signing = signingKey(dir);
  const people = makePeople(dir, TEST_PEOPLE);
  // dave has a second key: one person with two keys is still one person.
  const daveAlt = makePeople(dir, ['dave-alt'])['dave-alt'];
  const peopleSection = peopleYaml(people).replace(
    /^ {2}dave:\n {4}keys: \[(.*)\]$/m,
    (_, key: string) => `  dave:\n    keys: [${key}, ${JSON.stringify(daveAlt.publicKey)}]`,
  );
  const text = `
temporal: { address: "${env.address}", taskQueue: ${taskQueue} }
storage:
  disk: { type: local, path: ${dir}/backups }
${more.storage ?? ''}
targets:
${targets(dir)}
${signing.yaml}${peopleSection}${more.top ?? ''}`;
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
    signing,
    people,
    daveAlt,
    backup: (target) =>
      env.client.workflow.execute('backupRedis', { taskQueue, workflowId: `backup/${target}/t${++seq}-${Date.now()}`, args: [{ target }] }),
    async startRestore({ requestAs, ...input }) {
      const handle = await env.client.workflow.start('restoreRedis', {
        taskQueue,
        workflowId: `restore/${input.target}`,
        args: [{ reason: 'test restore', ...input }],
      });
      if (!input.dryRun && requestAs !== null) {
        // In the background, as a person would: the test goes on to approve, which waits for it.
        decide(handle, people[requestAs ?? 'requester'], 'request').catch(() => undefined);
      }
      return handle;
    },
    decide: (target, person, kind = 'approve', comment) =>
      decide(env.client.workflow.getHandle(`restore/${target}`), people[person], kind, comment ? { comment } : {}),
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
