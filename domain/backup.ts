// Taking a backup: the capture streamed once through checks, compression and encryption to every
// destination, each copy proven as it is written; the verify step (that proof, or with `verify: reread`
// a read of every copy); the manifest, written last (the commit point); the report.
import { targetOf } from '../common/config';
import { durationMs } from '../common/duration';
import {
  artifactFileName,
  artifactKeys,
  type BackupReport,
  type CaptureResult,
  type CopyCheck,
  type Manifest,
  type WriteProof,
} from '../common/types';
import { openBgsaveSnapshot } from './capture/bgsave';
import { openReplicationStream } from './capture/replication';
import { storeRdb } from './pipeline';
import { keyspaceNow } from './preflight';
import type { Progress } from './progress';
import { classifyRedisError, connectTarget, endpointOf } from './redis-target';
import type { Services } from './services';
import type { Store } from './storage';
import { verifyCopy, type ExpectedArtifact } from './verify';

export interface CaptureInput {
  target: string;
  backupId: string;
  workflowId: string;
  runId: string;
}

/** Safe to run again: a retried capture rewrites the same keys (the backup id is fixed by the run). */
export async function captureBackup(s: Services, input: CaptureInput, p: Progress): Promise<CaptureResult> {
  const target = targetOf(s.config, input.target);
  const keys = artifactKeys(input.target, input.backupId);
  // A worker that cannot sign stores backups nobody may use: it fails before writing any byte.
  s.signer();
  // A target that encrypts never stores cleartext: no usable key, no byte written.
  const enc = target.encrypt ? s.keys.encryptionFor(target.encrypt) : undefined;
  const file = artifactFileName(target.compression, enc !== undefined);
  const destinations = target.destinations.map((d) => ({ store: s.stores(d), key: keys.data(file) }));
  // An earlier attempt of this run that died with its S3 server gone left its multipart upload open:
  // only this run writes under this folder, so it is aborted before this attempt starts.
  await Promise.all(destinations.map(({ store }) => store.abortStaleUploads?.(keys.dir, 0)));
  // The run marker comes first: retention can then tell this folder belongs to a live run.
  const marker = JSON.stringify({ workflowId: input.workflowId, runId: input.runId, startedAt: new Date().toISOString() });
  await Promise.all(destinations.map(({ store }) => store.write(keys.run, marker)));

  const startedAt = new Date();
  const client = await connectTarget(input.target, target);
  let keyspace: CaptureResult['keyspace'];
  let source;
  try {
    keyspace = await keyspaceNow(client);
    p.moved({ phase: 'waiting for the RDB', bytes: 0 });
    if (target.capture === 'bgsave-copy') {
      source = (await openBgsaveSnapshot(client, { dataDir: target.dataDir, signal: p.signal, onWait: () => p.moved({ phase: 'bgsave' }) }))
        .stream;
    } else {
      // Waiting for the server's first byte is bounded by captureIdleTimeout in the capture itself.
      const e = endpointOf(input.target, target);
      source = (
        await openReplicationStream({
          host: e.host,
          port: e.port,
          username: e.username,
          password: e.password,
          tls: e.tls,
          idleTimeoutMs: durationMs(target.captureIdleTimeout),
          signal: p.signal,
        })
      ).stream;
    }
  } catch (err) {
    throw classifyRedisError(err, input.target, endpointOf(input.target, target));
  } finally {
    client.disconnect();
  }
  let bytes = 0;
  const result = await storeRdb(source, destinations, {
    encryptTo: enc?.recipients,
    compression: target.compression,
    compressionLevel: target.compressionLevel,
    roundTrip: target.verify === 'stream',
    signal: p.signal,
    onWire: () => p.moved(),
    onProgress: (raw, stored) => {
      // Alive only while bytes move: a pipeline stalled anywhere stops the heartbeats.
      if (raw + stored !== bytes) p.moved({ phase: 'transfer', bytes: raw });
      bytes = raw + stored;
    },
  });
  return {
    method: target.capture,
    startedAt: startedAt.toISOString(),
    durationMs: Date.now() - startedAt.getTime(),
    rdb: { ...result.rdb, check: 'redis-check-rdb' },
    artifact: {
      file,
      compression: target.compression,
      encryption: enc?.encryption ?? null,
      size: result.stored.size,
      sha256: result.stored.sha256,
    },
    copies: result.copies,
    keyspace,
    proof: result.proof,
  };
}

export interface VerifyCopiesInput {
  target: string;
  backupId: string;
  artifact: CaptureResult['artifact'];
  rdb: CaptureResult['rdb'];
  destinations?: string[];
  /** The capture's proof of each copy as written: with `verify: stream`, what the step reports instead of a re-read. */
  proof?: CaptureResult['proof'];
}

export async function verifyCopies(s: Services, input: VerifyCopiesInput, p: Progress): Promise<CopyCheck[]> {
  const target = targetOf(s.config, input.target);
  const destinations = input.destinations ?? target.destinations;
  const key = artifactKeys(input.target, input.backupId).data(input.artifact.file);
  // Proven as written: nothing is read back. A copy without a proof (a capture by an older worker) is read.
  const proof = target.verify === 'stream' ? input.proof : undefined;
  const proven = (d: string) => proof?.copies.find((c) => c.destination === d);
  const rereads = destinations.filter((d) => !proven(d));
  const reread = rereads.length ? await rereadCopies(s, input, rereads, key, p) : [];
  return Promise.all(
    destinations.map(
      async (d) => reread.find((c) => c.destination === d) ?? provenCopy(s.stores(d), key, input, proven(d)!, proof!.roundTrip),
    ),
  );
}

/** A copy proven as it was written, said as such, and found in place with its size (a HEAD, no byte read). */
async function provenCopy(
  store: Store,
  key: string,
  input: VerifyCopiesInput,
  w: WriteProof,
  roundTrip: { sha256: string } | null,
): Promise<CopyCheck> {
  const { artifact, rdb } = input;
  const problems: string[] = [];
  if (w.size !== artifact.size || w.sha256 !== artifact.sha256) {
    problems.push(
      `written ${w.size} bytes, sha256 ${w.sha256.slice(0, 12)}… != ${artifact.size} bytes, sha256 ${artifact.sha256.slice(0, 12)}…`,
    );
  }
  const here = await store.head?.(key);
  if (here === null) problems.push('not there after the write');
  else if (here && here.size !== artifact.size) problems.push(`there with ${here.size} bytes, not ${artifact.size}`);
  else if (here?.crc32 && w.server && here.crc32 !== w.server.checksum)
    problems.push(`its CRC32 is ${here.crc32}, not the ${w.server.checksum} sent`);
  if (artifact.compression !== 'none' && roundTrip?.sha256 !== rdb.sha256) {
    problems.push('no decompression round trip matched the RDB');
  }
  if (problems.length) return { destination: store.name, ok: false, detail: problems.join('; ') };
  const said = [`sha256 ${w.sha256.slice(0, 12)}… of the stored bytes matched as written`];
  if (w.server) {
    const { algorithm, parts } = w.server;
    said.push(`S3 verified ${algorithm} of ${parts > 1 ? `every part (${parts}) and of ` : ''}the whole object`);
  }
  if (here) said.push(`in place, ${here.size} bytes${here.crc32 && w.server ? ` and the ${w.server.algorithm} sent` : ''}`);
  said.push(
    artifact.compression === 'none'
      ? `not compressed: what was stored is the RDB${artifact.encryption ? ', encrypted' : ''} (sha256 ${rdb.sha256.slice(0, 12)}…)`
      : `decompression round trip matched the RDB (sha256 ${rdb.sha256.slice(0, 12)}…)${artifact.encryption ? ', before encryption' : ''}`,
  );
  return { destination: store.name, ok: true, detail: said.join('; ') };
}

/** Every copy read back: size and SHA-256 of the stored bytes, and one copy decrypted and decompressed to the RDB. */
async function rereadCopies(s: Services, input: VerifyCopiesInput, destinations: string[], key: string, p: Progress): Promise<CopyCheck[]> {
  const expected: ExpectedArtifact = { ...input.artifact, rdb: input.rdb };
  // A worker that encrypts to recipients only holds no identity to read what it stored: it proves the
  // stored bytes (hashed as they were written), and restores and drills prove the RDB.
  const readable = !input.artifact.encryption || s.keys.canDecrypt(input.artifact.encryption);
  const checks = await Promise.all(
    // One copy is decompressed and checked to the RDB's checksum; the others have the same stored
    // bytes, so their stored checksum proves them too.
    destinations.map((d, i) =>
      verifyCopy(s.stores(d), key, expected, {
        keys: s.keys,
        signal: p.signal,
        depth: i === 0 && readable ? 'full' : 'stored',
        onBytes: () => p.moved({ phase: 'verify' }),
      }),
    ),
  );
  return readable
    ? checks
    : checks.map((c) => ({
        ...c,
        detail: c.detail.replace(
          / \(same bytes as the fully checked copy\)$/,
          ' (encrypted to recipients this worker holds no key of: the RDB is checked when restored)',
        ),
      }));
}

/** The commit point: a backup exists from the moment its manifest does, signed by this worker (storage is not trusted). */
export async function writeManifest(s: Services, manifest: Manifest): Promise<void> {
  const keys = artifactKeys(manifest.target, manifest.backupId);
  const body = JSON.stringify(s.signer().sign(manifest), null, 2);
  await Promise.all(targetOf(s.config, manifest.target).destinations.map((d) => s.stores(d).write(keys.manifest, body)));
}

export async function writeBackupReport(s: Services, report: BackupReport): Promise<void> {
  const keys = artifactKeys(report.target, report.backupId);
  await Promise.all(
    targetOf(s.config, report.target).destinations.flatMap((d) => [
      s.stores(d).write(keys.reportJson, JSON.stringify(report, null, 2)),
      s.stores(d).write(keys.reportText, report.text),
    ]),
  );
}
