// Replays every recorded history in test/histories/ (written by `npm run record:histories`) against the
// current workflow code, without any server: a change to a workflow that would break its runs already
// in flight (commands in another order, an activity added or removed outside patched()) fails here
// with the SDK's DeterminismViolationError. See docs/replay.md.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { historyFromJSON, type History } from '@temporalio/common/lib/proto-utils.js';
import proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root.js';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { beforeAll, describe, expect, it } from 'vitest';
import { workflowsPath } from '../../worker/workflows-path';

const dir = fileURLToPath(new URL('../histories/', import.meta.url));
const names = (existsSync(dir) ? readdirSync(dir) : [])
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.slice(0, -'.json'.length))
  .sort();

/** What scripts/record-histories.ts records; each must stay replayable. */
const EXPECTED = ['backup', 'restore-approved', 'restore-rollback', 'drill', 'recover'];

/**
 * The ids scripts/record-histories.ts ran them under (a history does not hold its workflow id).
 * The runbooks only pass theirs to activities and messages, so another id would still replay.
 */
const WORKFLOW_IDS: Record<string, string> = {
  backup: 'backup/main/replay',
  'restore-approved': 'restore/main',
  'restore-rollback': 'restore/rollback',
  drill: 'drill/main/replay',
  recover: 'recover/prod/replay',
  'recover-restore': 'restore/prod',
};

/**
 * The SDK's historyFromJSON, or the same conversion done with the protobufjs copy @temporalio/proto's
 * types were built with: with protobufjs 7 hoisted in node_modules, npm gives @temporalio/common its own
 * copy of protobufjs 8 and historyFromJSON fails its `instanceof Type` check ("type must be a Type").
 * Worker.runReplayHistory would convert a JSON history the same way, so it is given the loaded one.
 */
function loadHistory(name: string): History {
  const json: unknown = JSON.parse(readFileSync(path.join(dir, `${name}.json`), 'utf8'));
  try {
    return historyFromJSON(json);
  } catch (err) {
    if (!(err instanceof TypeError && /must be a Type/.test(err.message))) throw err;
    const protojson = createRequire(createRequire(import.meta.url).resolve('@temporalio/proto'))('protobufjs/ext/protojson') as {
      fromJson(type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }): History | null;
    };
    const root = patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown };
    const loaded = protojson.fromJson(root.lookupType('temporal.api.history.v1.History'), json, { ignoreUnknownFields: true });
    if (!loaded) throw new TypeError(`${name}.json is not a history`, { cause: err });
    return loaded;
  }
}

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
