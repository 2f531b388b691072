// The backup's RDB as a local file for a restore: fetched once from the first destination whose copy
// checks out, decompressed, and proven against the manifest's checksums before any byte reaches Redis.
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { RDB_HEADER_LENGTH, rdbVersionFromHeader } from '../../common/rdb';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createReadStream } from 'node:fs';
import { PassThrough, Transform, Writable } from 'node:stream';
import { decryptStream } from '../crypto/age';
import type { ReadOptions } from '../verify';
import { RunbookError } from '../../common/errors';
import { artifactKeys, type Manifest } from '../../common/types';
import { decompressor, digester } from '../pipeline';
import type { StoreRegistry } from '../storage';

export const restoreWorkDir = () => path.join(os.tmpdir(), 'redis-runbooks-restore');

export async function localRdb(
  stores: StoreRegistry,
  manifest: Manifest,
  destinations: string[],
  opts: ReadOptions & {
    /** Fetch into this folder, always from the destinations (a drill proves the stored copy, not a cached one). */
    dir?: string;
    /** Fetch from the destinations even when this worker holds a proven copy (a recovery choosing among copies). */
    fresh?: boolean;
    /** Told of every stored chunk read: progress, for a heartbeat that stops when the download does. */
    onBytes?: (n: number) => void;
  } = {},
): Promise<{ file: string; destination: string; storedSize: number }> {
  const { signal } = opts;
  const dir = opts.dir ?? path.join(restoreWorkDir(), manifest.backupId);
  const file = path.join(dir, 'dump.rdb');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (!opts.dir && !opts.fresh && (await matches(file, manifest, signal))) {
    // Its bytes are the backup's, but the manifest's version must still be checked against them.
    await checkVersion(file, manifest);
    return { file, destination: 'the copy already on this worker', storedSize: manifest.artifact.size };
  }
  const problems: string[] = [];
  for (const destination of destinations) {
    const tmp = `${file}.partial`;
    const stored = digester();
    const raw = digester();
    try {
      const key = artifactKeys(manifest.target, manifest.backupId).data(manifest.artifact.file);
      const source = await stores(destination).read(key);
      // Decrypted and authenticated chunk by chunk; checked whole against the manifest before it is used.
      const decrypt = manifest.artifact.encryption
        ? decryptStream(opts.keys!.identitiesFor(manifest.artifact.encryption))
        : new PassThrough();
      const counted = new Transform({
        transform(chunk: Buffer, _e, cb) {
          opts.onBytes?.(chunk.length);
          cb(null, chunk);
        },
      });
      await pipeline(
        source,
        counted,
        stored,
        decrypt,
        decompressor(manifest.artifact.compression),
        raw,
        createWriteStream(tmp, { mode: 0o600 }),
        {
          signal,
        },
      );
    } catch (err) {
      // Decrypted production data: a half-written file never stays behind.
      await rm(tmp, { force: true });
      if (signal?.aborted) throw err;
      problems.push(`${destination}: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    if (stored.sha256() !== manifest.artifact.sha256 || raw.sha256() !== manifest.rdb.sha256 || raw.bytes() !== manifest.rdb.size) {
      problems.push(`${destination}: checksum mismatch`);
      await rm(tmp, { force: true });
      continue;
    }
    try {
      await checkVersion(tmp, manifest);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await rename(tmp, file);
    return { file, destination, storedSize: stored.bytes() };
  }
  throw new RunbookError(
    'VERIFY_FAILED',
    `no copy of ${manifest.backupId} checks out (${problems.join('; ')})`,
    'nothing was changed on the target; pick another backup',
  );
}

/** A manifest that lies about the RDB version would let a restore start that the target cannot load. */
async function checkVersion(file: string, manifest: Manifest): Promise<void> {
  const head = Buffer.alloc(RDB_HEADER_LENGTH);
  const fh = await open(file, 'r');
  await fh.read(head, 0, RDB_HEADER_LENGTH, 0).finally(() => fh.close());
  const actual = rdbVersionFromHeader(head);
  if (actual !== manifest.rdb.version) {
    throw new RunbookError(
      'VERIFY_FAILED',
      `the manifest of ${manifest.backupId} says RDB version ${manifest.rdb.version}, the file is version ${actual}`,
      'the manifest cannot be trusted: pick another backup',
    );
  }
}

async function matches(file: string, manifest: Manifest, signal?: AbortSignal): Promise<boolean> {
  const s = await stat(file).catch(() => null);
  if (!s || s.size !== manifest.rdb.size) return false;
  const d = digester();
  await pipeline(createReadStream(file), d, new Writable({ write: (_c, _e, cb) => cb() }), { signal });
  return d.sha256() === manifest.rdb.sha256;
}

export async function removeLocalRdb(backupId: string): Promise<void> {
  await rm(path.join(restoreWorkDir(), backupId), { recursive: true, force: true });
}
