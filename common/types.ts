// Types both sides of Temporal share: workflow inputs and results, and what is stored with a backup.
// Nothing here may hold a secret: all of it lands in workflow history or in manifests.
import type { Signature } from './signature';

export const TASK_QUEUE = 'redis-runbooks';
export const TOOL_NAME = 'redis-runbooks';

export type CaptureMethod = 'replication' | 'bgsave-copy';
export type Compression = 'zstd' | 'gzip' | 'none';

export interface BackupInput {
  target: string;
  tags?: string[];
  /** Who asked for it (CLI user or schedule); recorded in the manifest. */
  requestedBy?: string;
  /** Leave retention to the next backup (a restore's safety backup). */
  skipRetention?: boolean;
}

export interface KeyspaceDb {
  keys: number;
  expires: number;
}

export interface RedisFacts {
  version: string;
  role: string;
  usedMemory: number;
  aofEnabled: boolean;
  rdbLastBgsaveStatus: string;
  rdbChangesSinceLastSave: number;
  latestForkUsec: number;
  rdbLastCowSize: number;
  /** Per database ("db0"...), from INFO keyspace. */
  keyspace: Record<string, KeyspaceDb>;
  warnings: string[];
}

export interface PrefixCount {
  prefix: string;
  sampled: number;
  /** sampled / sampleSize * total keys: an estimate, not a count. */
  estimated: number;
}

export interface PreflightResult {
  redis: RedisFacts;
  prefixes: { sampleSize: number; top: PrefixCount[] };
}

export interface StoredCopy {
  destination: string;
  /** Where it is, for people: a path or an s3:// URL. */
  location: string;
  size: number;
}

export interface CaptureResult {
  method: CaptureMethod;
  startedAt: string;
  durationMs: number;
  rdb: { version: number; size: number; sha256: string; keys: number; expires: number; check: 'redis-check-rdb' };
  artifact: { file: string; compression: Compression; encryption: Encryption | null; size: number; sha256: string };
  copies: StoredCopy[];
  /** Keyspace read at the moment of the capture (INFO just before the fork). */
  keyspace: Record<string, KeyspaceDb>;
  /** What was proven while writing (each copy, the decompression round trip): the verify step's evidence. */
  proof?: { copies: WriteProof[]; roundTrip: { sha256: string } | null };
  /**
   * The worker's signature over what it captured, for this run: the manifest is signed only if it says
   * what was captured (a workflow cannot have a manifest of its own making signed).
   */
  receipt?: Signature;
}

/** What a destination proved of its copy as it wrote it; it committed the copy only if this matched the stream. */
export interface WriteProof {
  destination: string;
  /** Bytes and SHA-256 of what the destination was handed, hashed by its own writer. */
  size: number;
  sha256: string;
  /** The server's check on receipt (S3): our CRC32 of every part and of the whole object, accepted. */
  server?: { algorithm: 'CRC32'; checksum: string; parts: number };
}

export interface CopyCheck {
  destination: string;
  ok: boolean;
  detail: string;
}

export interface Manifest {
  formatVersion: 1;
  backupId: string;
  target: string;
  tags: string[];
  requestedBy: string;
  createdAt: string;
  completedAt: string;
  durationMs: number;
  tool: { name: string; version: string };
  workflow: { workflowId: string; runId: string };
  redis: RedisFacts;
  capture: { method: CaptureMethod; durationMs: number };
  rdb: CaptureResult['rdb'];
  artifact: CaptureResult['artifact'];
  copies: StoredCopy[];
  keyspace: Record<string, KeyspaceDb>;
  prefixes: PreflightResult['prefixes'];
  verification: { verifiedAt: string; copies: CopyCheck[] };
  /** The worker's signature over the rest, added when it is written: only a signed manifest counts. */
  signature?: Signature;
}

export interface RetentionOutcome {
  dryRun: boolean;
  kept: { backupId: string; reasons: string[] }[];
  deleted: string[];
  /** Unfinished multipart uploads (older than a day) aborted, as destination:key. */
  abortedUploads?: string[];
  /** Folders with no manifest whose run has ended (failed or killed); their files are removed. */
  abandoned: string[];
  /** Folders whose manifest is damaged or names another backup: left alone for a person to look at. */
  suspicious: string[];
}

export interface BackupReport {
  backupId: string;
  target: string;
  ok: boolean;
  manifest: Manifest;
  retention: RetentionOutcome;
  steps: { name: string; startedAt?: string; durationMs: number }[];
  text: string;
}

/** Where the artifacts of a backup live inside a destination. */
export const artifactKeys = (target: string, backupId: string) => ({
  dir: `${target}/${backupId}`,
  manifest: `${target}/${backupId}/manifest.json`,
  run: `${target}/${backupId}/run.json`,
  reportJson: `${target}/${backupId}/report.json`,
  reportText: `${target}/${backupId}/report.txt`,
  data: (file: string) => `${target}/${backupId}/${file}`,
});

export function artifactFileName(compression: Compression, encrypted = false): string {
  const base = compression === 'zstd' ? 'dump.rdb.zst' : compression === 'gzip' ? 'dump.rdb.gz' : 'dump.rdb';
  return encrypted ? `${base}.age` : base;
}

/** How a stored copy is encrypted: the key's name and fingerprints, never a key. */
export interface Encryption {
  format: 'age-x25519';
  /** The name the target's `encrypt` gave: a key under encryption.keys, or a recipient under encryption.recipients. */
  keyId: string;
  /** SHA-256 of its age recipient (age1...), first 16 hex digits. */
  fingerprint: string;
  /** The same of every recipient the copy is encrypted to (break-glass ones included); absent in older manifests: [fingerprint]. */
  recipients?: string[];
}

/** What `runbook status` and the progress line read from a running backup (its `status` query). */
export interface BackupStatus {
  backupId: string;
  step: string;
  steps: { name: string; startedAt?: string; durationMs: number }[];
}
