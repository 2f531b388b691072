// Replays every recorded history in test/histories/ (written by `npm run record:histories`) against the
// current workflow code, without any server: a change to a workflow that would break its runs already
// in flight (commands in another order, an activity added or removed outside patched()) fails here
// with the SDK's DeterminismViolationError. See docs/replay.md.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { beforeAll, describe, expect, it } from 'vitest';
import { workflowsPath } from '../../worker/workflows-path';
import { HISTORY_WORKFLOW_IDS, historyFromJson } from '../support/histories';

const dir = fileURLToPath(new URL('../histories/', import.meta.url));
const names = (existsSync(dir) ? readdirSync(dir) : [])
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.slice(0, -'.json'.length))
  .sort();

/** What scripts/record-histories.ts records; each must stay replayable. */
const EXPECTED = ['backup', 'restore-approved', 'restore-rollback', 'drill', 'recover'];

const WORKFLOW_IDS: Record<string, string> = HISTORY_WORKFLOW_IDS;

const loadHistory = (name: string): History => historyFromJson(JSON.parse(readFileSync(path.join(dir, `${name}.json`), 'utf8')), name);

let workflowBundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  try {
    // The replay worker's state changes, and core's warning about the violation provoked below, are
    // noise: a determinism violation is thrown to the test, not logged.
    Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR' }, forward: {} } } });
  } catch {
    // installed already in this process
  }
  // Bundled once (webpack takes seconds), as the worker bundles it (worker/build-bundle.ts).
  workflowBundle = await bundleWorkflowCode({
    workflowsPath,
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} },
  });
}, 120_000);

describe('workflow histories replay against the current code', () => {
  it('has a recorded history for every runbook scenario', () => {
    expect(names).toEqual(expect.arrayContaining(EXPECTED));
  });

  for (const name of names) {
    it(`replays the ${name} history against the current workflow code`, { timeout: 60_000 }, async () => {
      await expect(
        Worker.runReplayHistory({ workflowBundle }, loadHistory(name), WORKFLOW_IDS[name] ?? `replay/${name}`),
      ).resolves.toBeUndefined();
    });
  }

  // The guard itself: a history whose commands the code does not issue must fail, not pass unnoticed.
  it('fails with a DeterminismViolationError when the code schedules another activity than the history holds', async () => {
    const history = loadHistory('backup');
    const scheduled = history.events!.find((e) => e.activityTaskScheduledEventAttributes)!.activityTaskScheduledEventAttributes!;
    scheduled.activityType = { name: `${scheduled.activityType!.name}Renamed` };
    await expect(Worker.runReplayHistory({ workflowBundle }, history, WORKFLOW_IDS.backup)).rejects.toBeInstanceOf(
      DeterminismViolationError,
    );
  });
});
