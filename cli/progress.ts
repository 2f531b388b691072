// Live progress of a running backup: the workflow's `status` query for the step, and the capture
// activity's heartbeat (bytes so far) from the workflow's description.
import type { WorkflowHandle } from '@temporalio/client';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';
import type { BackupReport, BackupStatus } from '../common/types';

export async function followBackup(handle: WorkflowHandle, out?: NodeJS.WritableStream): Promise<BackupReport> {
  const result = handle.result() as Promise<BackupReport>;
  let finished = false;
  void result.then(
    () => (finished = true),
    () => (finished = true),
  );
  let last = '';
  while (!finished && out) {
    const line = await describeProgress(handle).catch(() => '');
    if (line && line !== last) {
      out.write(`  ${line}\n`);
      last = line;
    }
    await Promise.race([result.catch(() => {}), new Promise((r) => setTimeout(r, 1000))]);
  }
  return result;
}

async function describeProgress(handle: WorkflowHandle): Promise<string> {
  const status = await handle.query<BackupStatus>('status');
  const d = await handle.describe();
  const pending = d.raw.pendingActivities?.[0];
  const payloads = pending?.heartbeatDetails?.payloads;
  let detail = '';
  if (payloads?.length) {
    // Heartbeats go through the payload codec like everything else: decode them the client's way.
    const hb = await decodeFromPayloadsAtIndex<{ bytes?: number }>(handle.client.options.loadedDataConverter, 0, payloads);
    if (hb?.bytes) detail = ` ${(hb.bytes / 1048576).toFixed(0)} MiB read`;
  }
  const attempt = pending && (pending.attempt ?? 1) > 1 ? ` (attempt ${pending.attempt})` : '';
  return `${status.backupId}: ${status.step}${detail}${attempt}`;
}
