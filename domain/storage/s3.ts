import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { StorageConfig } from '../../common/config';
import { durationMs } from '../../common/duration';
import { resolveOptionalSecret } from '../secrets';
import { RunbookError } from '../../common/errors';
import { agree } from './consensus';
import { assertKey, mustMatch, notFound, type CreateOptions, type Store, type WriteOptions, type Written } from './store';

type S3Config = Extract<StorageConfig, { type: 's3' }>;

/** Parts in flight at once per upload: as many as the server takes while the next one is gathered. */
const PARTS_IN_FLIGHT = 2;

/** An S3 checksum header's value: the CRC32, big-endian, in base64. */
const b64 = (crc: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc >>> 0);
  return b.toString('base64');
};

/**
 * An S3 bucket. Multipart uploads become visible only when completed; aborted ones are cleaned up.
 * Every part carries our CRC32 of its bytes and the completion our CRC32 of the whole object
 * (FULL_OBJECT), computed from the very buffers sent: the server refuses a part, or the object, whose
 * bytes do not match (BadDigest), so its acceptance proves what it stored.
 */
export class S3Store implements Store {
  private readonly client: S3Client;

  constructor(
    readonly name: string,
    private readonly config: S3Config,
  ) {
    const accessKeyId = resolveOptionalSecret(config.accessKeyId, `storage ${name} accessKeyId`);
    const secretAccessKey = resolveOptionalSecret(config.secretAccessKey, `storage ${name} secretAccessKey`);
    // One agent per destination, so that the bytes it sends can be counted (progress while a part goes out).
    const agent = { keepAlive: true, maxSockets: 50 };
    this.agents = [new HttpAgent(agent), new HttpsAgent(agent)];
    this.client = new S3Client({
      region: config.region,
      requestHandler: new NodeHttpHandler({ httpAgent: this.agents[0], httpsAgent: this.agents[1] as HttpsAgent }),
      endpoint: config.endpoint,
      forcePathStyle: config.forcePathStyle,
      credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined,
      // The checksums sent are ours, from our bytes (write()); the SDK adds none of its own.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  private readonly agents: HttpAgent[];
  private sent = 0;
  private readonly seen = new WeakMap<object, number>();

  /** What this destination's sockets have written so far, counted socket by socket. */
  bytesOnWire(): number {
    for (const agent of this.agents) {
      for (const list of [...Object.values(agent.sockets), ...Object.values(agent.freeSockets)]) {
        for (const socket of list ?? []) {
          // Handed to the kernel, not merely queued in the socket: a slow uplink shows as it drains.
          const drained = socket.bytesWritten - socket.writableLength;
          this.sent += Math.max(0, drained - (this.seen.get(socket) ?? 0));
          this.seen.set(socket, Math.max(drained, this.seen.get(socket) ?? 0));
        }
      }
    }
    return this.sent;
  }

  private objectKey(key: string): string {
    return `${this.config.prefix}${assertKey(key)}`;
  }

  location(key: string): string {
    return `s3://${this.config.bucket}/${this.objectKey(key)}`;
  }

  /** Credentials and buckets that are wrong stay wrong: a clear, permanent error instead of retries. */
  private refused(err: unknown): never {
    const name = (err as { name?: string }).name ?? '';
    if (
      /InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|NoSuchBucket|Forbidden|InvalidClientTokenId/.test(name) ||
      /No user exists/.test((err as Error).message)
    ) {
      throw new RunbookError(
        'STORAGE_REFUSED',
        `destination ${this.name} (s3://${this.config.bucket}) refused the request: ${name}: ${(err as Error).message}`,
        'check the bucket name and the accessKeyId/secretAccessKey references of this destination',
      );
    }
    throw err;
  }

  async write(key: string, body: Readable | Buffer | string, options?: WriteOptions): Promise<Written> {
    const Bucket = this.config.bucket;
    const Key = this.objectKey(key);
    const stream = typeof body === 'string' || Buffer.isBuffer(body) ? undefined : body;
    const sha = createHash('sha256');
    let size = 0;
    let whole = 0; // the CRC32 of the object so far
    let uploadId: string | undefined;
    const parts: CompletedPart[] = [];
    const inFlight = new Set<Promise<unknown>>();
    let failed: unknown;
    const done = async (): Promise<Written & { server: NonNullable<Written['server']> }> => {
      const written = { size, sha256: sha.digest('hex') };
      await mustMatch(this, key, written, options);
      return { ...written, server: { algorithm: 'CRC32' as const, checksum: b64(whole), parts: Math.max(parts.length, 1) } };
    };
    try {
      for await (const { data, last } of inParts(stream ?? [Buffer.from(body as string | Buffer)], this.config.partSizeMiB << 20)) {
        if (failed) throw failed;
        sha.update(data);
        whole = crc32(data, whole);
        size += data.length;
        if (last && !uploadId) {
          // One part in all: one PUT, committed only once its bytes are known to be the expected ones.
          const written = await done();
          await this.client.send(new PutObjectCommand({ Bucket, Key, Body: data, ChecksumCRC32: b64(whole) }));
          return written;
        }
        uploadId ??= (
          await this.client.send(new CreateMultipartUploadCommand({ Bucket, Key, ChecksumAlgorithm: 'CRC32', ChecksumType: 'FULL_OBJECT' }))
        ).UploadId;
        const part: CompletedPart = { PartNumber: parts.length + 1, ChecksumCRC32: b64(crc32(data)) };
        parts.push(part);
        const sent = this.client
          .send(
            new UploadPartCommand({
              Bucket,
              Key,
              UploadId: uploadId,
              PartNumber: part.PartNumber,
              Body: data,
              ChecksumCRC32: part.ChecksumCRC32,
            }),
          )
          .then(
            (res) => void (part.ETag = res.ETag),
            (err: unknown) => {
              failed ??= err;
              // Stop reading at once: the stream before it fails with this error, not later.
              stream?.destroy(err as Error);
            },
          )
          .finally(() => inFlight.delete(sent));
        inFlight.add(sent);
        if (inFlight.size >= PARTS_IN_FLIGHT) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      if (failed) throw failed;
      const written = await done();
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket,
          Key,
          UploadId: uploadId,
          ChecksumType: 'FULL_OBJECT',
          ChecksumCRC32: written.server.checksum,
          MultipartUpload: { Parts: parts },
        }),
      );
      uploadId = undefined;
      return written;
    } catch (err) {
      const cause = failed ?? err;
      await Promise.allSettled(inFlight);
      // Best effort: an upload the server could not be told to drop is found by abortStaleUploads.
      if (uploadId) await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: uploadId })).catch(() => {});
      if (cause instanceof RunbookError) throw cause;
      this.refused(cause);
    }
  }

  /** Size and full-object CRC32 from a HEAD (no byte of the object is read). */
  async head(key: string): Promise<{ size: number; crc32?: string } | null> {
    try {
      const res = await this.client.send(
        new HeadObjectCommand({ Bucket: this.config.bucket, Key: this.objectKey(key), ChecksumMode: 'ENABLED' }),
      );
      return {
        size: res.ContentLength ?? 0,
        ...(res.ChecksumCRC32 && !res.ChecksumCRC32.includes('-') ? { crc32: res.ChecksumCRC32 } : {}),
      };
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404 || /NotFound|NoSuchKey/.test((err as { name?: string }).name ?? '')) return null;
      this.refused(err);
    }
  }

  async read(key: string): Promise<Readable> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: this.objectKey(key) }));
      return res.Body as Readable;
    } catch (err) {
      if (err instanceof NoSuchKey || (err as { name?: string }).name === 'NoSuchKey') throw notFound(this.name, key);
      this.refused(err);
    }
  }

  async readText(key: string): Promise<string | null> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: this.objectKey(key) }));
      return (await res.Body?.transformToString('utf8')) ?? null;
    } catch (err) {
      if (err instanceof NoSuchKey || (err as { name?: string }).name === 'NoSuchKey') return null;
      this.refused(err);
    }
  }

  /** One level of a folder-like prefix, page by page: its sub-folders and its files. */
  private async listLevel(prefix: string): Promise<{ dirs: string[]; files: string[] }> {
    const base = `${this.objectKey(prefix)}/`;
    const out = { dirs: [] as string[], files: [] as string[] };
    let token: string | undefined;
    do {
      const res = await this.client
        .send(new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: base, Delimiter: '/', ContinuationToken: token }))
        .catch((err) => this.refused(err));
      for (const p of res.CommonPrefixes ?? []) if (p.Prefix) out.dirs.push(p.Prefix.slice(base.length, -1));
      for (const o of res.Contents ?? []) if (o.Key) out.files.push(o.Key.slice(base.length));
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async listDirs(prefix: string): Promise<string[]> {
    return (await this.listLevel(prefix)).dirs;
  }

  async listFiles(prefix: string): Promise<string[]> {
    return (await this.listLevel(prefix)).files;
  }

  async removeDir(prefix: string): Promise<void> {
    const base = `${this.objectKey(prefix)}/`;
    let token: string | undefined;
    do {
      const res = await this.client.send(new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: base, ContinuationToken: token }));
      const keys = (res.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length) {
        await this.client.send(new DeleteObjectsCommand({ Bucket: this.config.bucket, Delete: { Objects: keys, Quiet: true } }));
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  /** An upload whose attempt died with the server gone is never completed nor aborted by it: this finds them. */
  async abortStaleUploads(prefix: string, olderThanMs: number): Promise<string[]> {
    const base = `${this.objectKey(prefix)}/`;
    const aborted: string[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const res = await this.client
        .send(
          new ListMultipartUploadsCommand({
            Bucket: this.config.bucket,
            Prefix: base,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        )
        .catch((err) => this.refused(err));
      for (const u of res.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Initiated || Date.now() - u.Initiated.getTime() < olderThanMs) continue;
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.config.bucket, Key: u.Key, UploadId: u.UploadId }));
        aborted.push(u.Key.slice(this.config.prefix.length));
      }
      keyMarker = res.IsTruncated ? res.NextKeyMarker : undefined;
      uploadIdMarker = res.IsTruncated ? res.NextUploadIdMarker : undefined;
    } while (keyMarker);
    return aborted;
  }

  /** A small object in one request; the checksum header is what a bucket with Object Lock requires. */
  private async put(key: string, body: string, more: Partial<PutObjectCommandInput> = {}): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: this.config.bucket, Key: this.objectKey(key), Body: body, ChecksumAlgorithm: 'SHA256', ...more }),
    );
  }

  private objectLock?: Promise<boolean>;

  /** Retention for an audit record where the bucket has Object Lock enabled (asked once). */
  private async retention(options?: CreateOptions): Promise<Partial<PutObjectCommandInput>> {
    if (!options?.retain) return {};
    this.objectLock ??= this.client.send(new GetObjectLockConfigurationCommand({ Bucket: this.config.bucket })).then(
      (res) => res.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled',
      (err: unknown) => {
        // No lock configuration, or a server or a policy that will not tell: written without retention
        // of our own (a bucket's default retention, if any, still applies).
        const name = (err as { name?: string }).name ?? '';
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if (/ObjectLockConfigurationNotFound|NotImplemented|AccessDenied|MethodNotAllowed/.test(name) || status === 404 || status === 501) {
          return false;
        }
        this.objectLock = undefined;
        throw err;
      },
    );
    if (!(await this.objectLock)) return {};
    return {
      ObjectLockMode: this.config.auditRetentionMode ?? 'COMPLIANCE',
      ObjectLockRetainUntilDate: new Date(Date.now() + durationMs(this.config.auditRetention ?? '400d')),
    };
  }

  /**
   * Never overwrites: an existing key is read and compared. The conditional PUT covers a writer racing
   * in between (on servers that honour it; the racers of such keys write the same bytes anyway).
   */
  async createIfAbsent(key: string, body: string, options?: CreateOptions): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      const existing = await this.readText(key);
      if (existing !== null) return existing === body;
      try {
        await this.put(key, body, { IfNoneMatch: '*', ...(await this.retention(options)) });
        return true;
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        // 412: it exists now; 409: a racing conditional write is in flight; 403: an object under Object
        // Lock already holds the key. Each is settled by reading it again.
        if (attempt < 5 && (status === 412 || status === 409 || status === 403)) continue;
        this.refused(err);
      }
    }
  }

  /**
   * Racing creators agree on one body first (domain/storage/consensus.ts: not every S3 server makes a
   * conditional PUT atomic), with their blocks under `<folder>/claims/<name>/`; the agreed body is then
   * created like a copy.
   */
  async createExclusive(key: string, body: string, options?: CreateOptions): Promise<boolean> {
    const cut = key.lastIndexOf('/');
    const claims = `${key.slice(0, cut + 1)}claims/${key.slice(cut + 1).replace(/\.json$/, '')}`;
    const agreed = await agree(
      {
        list: () => this.listFiles(claims),
        read: (name) => this.readText(`${claims}/${name}`),
        write: (name, block) => this.put(`${claims}/${name}`, block).catch((err) => this.refused(err)),
      },
      body,
      () => this.readText(key),
      `destination ${this.name} (${this.location(key)})`,
    );
    return (await this.createIfAbsent(key, agreed, options)) && agreed === body;
  }

  destroy(): void {
    this.client.destroy();
  }
}

/**
 * The body cut into parts of exactly `size` bytes, the last one shorter (or empty for an empty body);
 * a part is known to be the last because the body ended, so at most one part and a chunk are held.
 */
async function* inParts(body: AsyncIterable<Buffer> | Iterable<Buffer>, size: number): AsyncGenerator<{ data: Buffer; last: boolean }> {
  let held: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    held.push(chunk);
    n += chunk.length;
    while (n > size) {
      const all = Buffer.concat(held, n);
      const part = all.subarray(0, size);
      const rest = all.subarray(size);
      held = [rest];
      n = rest.length;
      yield { data: part, last: false };
    }
  }
  yield { data: Buffer.concat(held, n), last: true };
}
