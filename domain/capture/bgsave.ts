// bgsave-copy: ask the server for a fresh snapshot and read the file it wrote. Needs the worker to
// see the server's data dir. BGSAVE can fail without anyone noticing (redis/redis#12037), so its
// status is checked, and a save already running is waited for rather than treated as an error.
import { open } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { RunbookError } from '../../common/errors';
import { parseInfo } from '../redis-target';

export interface BgsaveCaptureOptions {
  /** Overrides the server's CONFIG GET dir (a volume mounted elsewhere on the worker). */
  dataDir?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  onWait?: () => void;
}

export async function openBgsaveSnapshot(client: Redis, opts: BgsaveCaptureOptions = {}): Promise<{ stream: Readable; file: string }> {
  const deadline = Date.now() + (opts.timeoutMs ?? 6 * 3600_000);
  const saves = async () => {
    const info = parseInfo(await client.info('persistence'));
    return {
      inProgress: info.rdb_bgsave_in_progress === '1',
      status: info.rdb_last_bgsave_status,
      // rdb_saves (Redis >= 7.0) counts snapshots; LASTSAVE has a one-second granularity.
      count: info.rdb_saves !== undefined ? Number(info.rdb_saves) : Number(await client.lastsave()),
    };
  };
  const waitIdle = async () => {
    for (;;) {
      const s = await saves();
      if (!s.inProgress) return s;
      if (Date.now() > deadline) throw new RunbookError('CAPTURE_FAILED', 'BGSAVE did not finish in time');
      opts.onWait?.();
      await sleep(100, undefined, { signal: opts.signal });
    }
  };

  const before = await waitIdle();
  await client.call('BGSAVE', 'SCHEDULE');
  let after = await saves();
  while (after.inProgress || after.count === before.count) {
    if (Date.now() > deadline) throw new RunbookError('CAPTURE_FAILED', 'BGSAVE did not finish in time');
    opts.onWait?.();
    await sleep(100, undefined, { signal: opts.signal });
    after = await saves();
  }
  if (after.status !== 'ok') {
    throw new RunbookError(
      'BGSAVE_FAILED',
      `the server's BGSAVE failed (rdb_last_bgsave_status:${after.status})`,
      'read the Redis log: usually a full disk, permissions on its dir, or fork failing (vm.overcommit_memory)',
    );
  }
  const [, dir] = (await client.config('GET', 'dir')) as string[];
  const [, dbfilename] = (await client.config('GET', 'dbfilename')) as string[];
  const file = path.join(opts.dataDir ?? dir, dbfilename);
  // Opening first pins this snapshot's inode: a later BGSAVE renames a new file over the name.
  const fh = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new RunbookError(
      'CAPTURE_FAILED',
      `cannot read the snapshot at ${file} (${err.code})`,
      'bgsave-copy needs the server data dir on the worker: set dataDir on the target, or use capture: replication',
    );
  });
  return { stream: fh.createReadStream({ highWaterMark: 1 << 20 }), file };
}
