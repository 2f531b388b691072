// The backup's RDB as a local file for a restore: fetched once from the first destination whose copy
// checks out, decompressed, and proven against the manifest's checksums before any byte reaches Redis.
import { createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { RDB_HEADER_LENGTH, rdbVersionFromHeader } from '../../common/rdb';
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
import { otherStateDirs, stateDir } from '../state-dir';

/** Decrypted RDBs, scratch servers and drills live in this worker process's private folder. */
export const restoreWorkDir = (): string => stateDir();

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
    /**
     * The run this copy serves: a copy this run already proved (the restore's plan) is trusted as it
     * is by the run's later steps; any other copy on this worker is hashed before it is used.
     */
    runId?: string;
  } = {},
): Promise<{ file: string; destination: string; storedSize: number }> {
  const { signal } = opts;
  const dir = opts.dir ?? path.join(restoreWorkDir(), manifest.backupId);
  const file = path.join(dir, 'dump.rdb');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (!opts.dir && !opts.fresh && opts.runId && (await provenFor(file, manifest, opts.runId))) {
    return { file, destination: 'the copy this run proved on this worker', storedSize: manifest.artifact.size };
  }
  if (!opts.dir && !opts.fresh && (await matches(file, manifest, signal))) {
    if (opts.runId) await recordProof(file, manifest, opts.runId);
    // Its bytes are the backup's, but the manifest's version must still be checked against them.
    await checkVersion(file, manifest);
    return { file, destination: 'the copy already on this worker', storedSize: manifest.artifact.size };
  }
  const problems: { destination: string; problem: string }[] = [];
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
      problems.push({ destination, problem: (err as Error).message.split('\n')[0]! });
      continue;
    }
    if (stored.sha256() !== manifest.artifact.sha256 || raw.sha256() !== manifest.rdb.sha256 || raw.bytes() !== manifest.rdb.size) {
      problems.push({ destination, problem: 'checksum mismatch' });
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
    if (opts.runId) await recordProof(file, manifest, opts.runId);
    return { file, destination, storedSize: stored.bytes() };
  }
  throw new RunbookError(
    'VERIFY_FAILED',
    `no copy of ${manifest.backupId} checks out (${problems.map((p) => `${p.destination}: ${p.problem}`).join('; ')})`,
    'nothing was changed on the target; pick another backup',
    [{ problems }],
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

/** Beside a proven copy: which run proved it, and the file as it was then (a change shows in size or mtime). */
const proofOf = (file: string) => `${file}.proof.json`;

async function recordProof(file: string, manifest: Manifest, runId: string): Promise<void> {
  const s = await stat(file);
  await writeFile(proofOf(file), JSON.stringify({ runId, sha256: manifest.rdb.sha256, size: s.size, mtimeMs: s.mtimeMs }), { mode: 0o600 });
}

async function provenFor(file: string, manifest: Manifest, runId: string): Promise<boolean> {
  const [s, text] = await Promise.all([stat(file).catch(() => null), readFile(proofOf(file), 'utf8').catch(() => null)]);
  if (!s || !text) return false;
  try {
    const p = JSON.parse(text) as { runId: string; sha256: string; size: number; mtimeMs: number };
    return p.runId === runId && p.sha256 === manifest.rdb.sha256 && p.size === s.size && p.mtimeMs === s.mtimeMs;
  } catch {
    return false;
  }
}

async function matches(file: string, manifest: Manifest, signal?: AbortSignal): Promise<boolean> {
  const s = await stat(file).catch(() => null);
  if (!s || s.size !== manifest.rdb.size) return false;
  const d = digester();
  await pipeline(createReadStream(file), d, new Writable({ write: (_c, _e, cb) => cb() }), { signal });
  return d.sha256() === manifest.rdb.sha256;
}

/** Removes the backup's local copy from this worker's folder and any other worker's on this host (a retried attempt's). */
export async function removeLocalRdb(backupId: string): Promise<void> {
  const dirs = [restoreWorkDir(), ...otherStateDirs().map((o) => o.dir)];
  await Promise.all(dirs.map((d) => rm(path.join(d, backupId), { recursive: true, force: true })));
}
