// The recorded histories the replay test replays (test/histories/, written by scripts/record-histories.ts):
// the ids they were recorded under, and their JSON form.
import { createRequire } from 'node:module';
import { historyFromJSON, historyToJSON, type History } from '@temporalio/common/lib/proto-utils.js';
import proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root.js';

/**
 * The workflow id each history was recorded under (a history does not hold it; replay is given it).
 * The runbooks only pass theirs to activities and messages, so another id would still replay.
 */
export const HISTORY_WORKFLOW_IDS = {
  backup: 'backup/main/replay',
  'restore-approved': 'restore/main',
  'restore-rollback': 'restore/rollback',
  drill: 'drill/main/replay',
  recover: 'recover/prod/replay',
  'recover-restore': 'restore/prod',
} as const;
export type HistoryName = keyof typeof HISTORY_WORKFLOW_IDS;

/**
 * The protobufjs proto3-JSON codec of the copy @temporalio/proto's types were built with. With
 * protobufjs 7 hoisted to the top of node_modules (@grpc/proto-loader wants it), npm gives
 * @temporalio/common and @temporalio/proto a copy of protobufjs 8 each, and the SDK's
 * historyToJSON/historyFromJSON fail their `type instanceof Type` check ("type must be a Type").
 */
function protoJson() {
  const protojson = createRequire(createRequire(import.meta.url).resolve('@temporalio/proto'))('protobufjs/ext/protojson') as {
    toJson(type: unknown, message: unknown): unknown;
    fromJson(type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }): History | null;
  };
  const root = patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown };
  return { protojson, type: root.lookupType('temporal.api.history.v1.History') };
}

const wrongCopy = (err: unknown) => err instanceof TypeError && /must be a Type/.test(err.message);

export function historyAsJson(history: History): string {
  try {
    return historyToJSON(history);
  } catch (err) {
    if (!wrongCopy(err)) throw err;
    const { protojson, type } = protoJson();
    return JSON.stringify(protojson.toJson(type, proto.temporal.api.history.v1.History.fromObject(history)), null, 2);
  }
}

/** Worker.runReplayHistory would convert a JSON history the same way, so it is given the loaded one. */
export function historyFromJson(json: unknown, name: string): History {
  try {
    return historyFromJSON(json);
  } catch (err) {
    if (!wrongCopy(err)) throw err;
    const { protojson, type } = protoJson();
    const loaded = protojson.fromJson(type, json, { ignoreUnknownFields: true });
    if (!loaded) throw new TypeError(`${name}.json is not a history`, { cause: err });
    return loaded;
  }
}
