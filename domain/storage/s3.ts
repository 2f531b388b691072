import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { StorageConfig } from '../../common/config';
import { durationMs } from '../../common/duration';
import { resolveOptionalSecret } from '../secrets';
import { RunbookError } from '../../common/errors';
import { agree } from './consensus';
import { assertKey, notFound, type CreateOptions, type Store } from './store';

type S3Config = Extract<StorageConfig, { type: 's3' }>;

/** An S3 bucket. Multipart uploads become visible only when completed; aborted ones are cleaned up. */
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
      // The bucket holds what it is sent; checksums are ours (SHA-256 in the manifest).
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

  async write(key: string, body: Readable | Buffer | string): Promise<number> {
    let bytes = typeof body === 'string' ? Buffer.byteLength(body) : Buffer.isBuffer(body) ? body.length : 0;
    if (!(typeof body === 'string' || Buffer.isBuffer(body))) body.on('data', (c: Buffer) => (bytes += c.length));
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.config.bucket, Key: this.objectKey(key), Body: body },
      partSize: this.config.partSizeMiB * 1024 * 1024,
      queueSize: 2,
      leavePartsOnError: false,
    });
    await upload.done().catch((err) => this.refused(err));
    return bytes;
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
