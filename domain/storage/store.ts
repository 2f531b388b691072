// A destination where backups are kept. Keys are relative ("<target>/<backupId>/<file>") and always
// built from validated names; `assertKey` is the last line of defence against a path or key trick.
import type { Readable } from 'node:stream';
import { RunbookError } from '../../common/errors';

export interface Store {
  readonly name: string;
  /** Where a key is, for people: a path or an s3:// URL. */
  location(key: string): string;
  /**
   * Writes atomically: readers see the whole object or nothing. Says what it handed over, hashed by the
   * writer itself (not by whoever produced the body), and what the server checked on receipt.
   */
  write(key: string, body: Readable | Buffer | string, options?: WriteOptions): Promise<Written>;
  /** Throws BACKUP_NOT_FOUND when absent. */
  read(key: string): Promise<Readable>;
  readText(key: string): Promise<string | null>;
  /** Names of the immediate children of a folder-like prefix ("cache" -> backup ids). */
  listDirs(prefix: string): Promise<string[]>;
  /** Names of the files directly under a folder-like prefix. */
  listFiles(prefix: string): Promise<string[]>;
  removeDir(prefix: string): Promise<void>;
  /** The object's size (and the full-object CRC32 the server keeps, where it does), or null when absent: no byte is read. */
  head?(key: string): Promise<{ size: number; crc32?: string } | null>;
  /** Bytes this destination's client has written to its sockets so far (network destinations). */
  bytesOnWire?(): number;
  /** Aborts multipart uploads under a prefix begun longer ago than that (S3 only); returns their keys. */
  abortStaleUploads?(prefix: string, olderThanMs: number): Promise<string[]>;
  /**
   * Creates a small object unless the key exists, safely when several writers race for the same key
   * with different bodies: exactly one body wins, and no writer's win is later overwritten. True when
   * the key holds `body` (this call's, or the same bytes written before), false when it holds another.
   */
  createExclusive(key: string, body: string, options?: CreateOptions): Promise<boolean>;
  /**
   * Creates a small object unless the key exists; never overwrites. For keys whose racing writers all
   * write the same bytes (the copies of a record): true when the key holds `body`, false when another.
   */
  createIfAbsent(key: string, body: string, options?: CreateOptions): Promise<boolean>;
}

export interface WriteOptions {
  /**
   * What the bytes handed over must be, asked once the body has ended and awaited before the write is
   * committed (the rename, the upload's completion): a copy that differs, or an expectation that
   * rejects, is thrown away and the write fails.
   */
  expect?: () => Promise<{ size: number; sha256: string }>;
}

export interface Written {
  /** Bytes handed to the file or the server. */
  size: number;
  /** SHA-256 of exactly those bytes, computed as they were handed over. */
  sha256: string;
  /** What the server verified on receipt: our CRC32 of every part (their count) and of the whole object. */
  server?: { algorithm: 'CRC32'; checksum: string; parts: number };
}

/** Refuses to commit a copy whose bytes are not the ones expected; says which destination and how they differ. */
export async function mustMatch(
  store: { name: string; location(key: string): string },
  key: string,
  got: { size: number; sha256: string },
  options: WriteOptions | undefined,
): Promise<void> {
  if (!options?.expect) return;
  const want = await options.expect();
  if (got.size === want.size && got.sha256 === want.sha256) return;
  throw new RunbookError(
    'STORAGE_FAILED',
    `destination ${store.name} (${store.location(key)}): the bytes handed to it differ from the backup stream ` +
      `(${got.size} bytes, sha256 ${got.sha256.slice(0, 12)}… written; ${want.size} bytes, sha256 ${want.sha256.slice(0, 12)}… streamed): the copy was not kept`,
    "retried while it may clear; again and again points at the worker's memory or the destination's driver or disk",
  );
}

export interface CreateOptions {
  /** An audit record: kept under the destination's audit retention where the bucket has Object Lock. */
  retain?: boolean;
}

const SAFE_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function assertKey(key: string): string {
  const parts = key.split('/');
  if (!parts.every((p) => SAFE_SEGMENT.test(p) && p !== '..' && p !== '.' && !p.includes('..'))) {
    throw new RunbookError('BAD_INPUT', `refusing the storage key "${key.slice(0, 200)}"`, 'keys are <target>/<backupId>/<file>');
  }
  return key;
}

export function notFound(store: string, key: string): RunbookError {
  return new RunbookError(
    'BACKUP_NOT_FOUND',
    `${key} is not in destination ${store}`,
    'list what exists with `runbook backups list <target>`',
  );
}
