import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  NoSuchKey,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { StorageConfig } from '../../common/config';
import { resolveOptionalSecret } from '../secrets';
import { RunbookError } from '../../common/errors';
import { assertKey, notFound, type Store } from './store';

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

  destroy(): void {
    this.client.destroy();
  }
}
