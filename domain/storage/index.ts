import type { Readable } from 'node:stream';
import type { Config, StorageConfig } from '../../common/config';
import { RunbookError } from '../../common/errors';
import { LocalStore } from './local';
import { assertKey, type CreateOptions, type Store, type WriteOptions } from './store';

export type { Store, WriteOptions, Written } from './store';

/**
 * An S3 destination whose client (and the AWS SDK, ~13 MiB) is loaded on first use: a worker with
 * local destinations only never pays for it, and an S3 secret is resolved only when needed.
 */
class LazyS3Store implements Store {
  private real?: Promise<Store>;
  constructor(
    readonly name: string,
    private readonly spec: Extract<StorageConfig, { type: 's3' }>,
  ) {}
  private store(): Promise<Store> {
    this.real ??= import('./s3').then(({ S3Store }) => new S3Store(this.name, this.spec));
    return this.real;
  }
  location(key: string): string {
    return `s3://${this.spec.bucket}/${this.spec.prefix}${assertKey(key)}`;
  }
  async write(key: string, body: Readable | Buffer | string, options?: WriteOptions) {
    return (await this.store()).write(key, body, options);
  }
  async head(key: string) {
    return (await this.store()).head!(key);
  }
  async read(key: string) {
    return (await this.store()).read(key);
  }
  async readText(key: string) {
    return (await this.store()).readText(key);
  }
  async listDirs(prefix: string) {
    return (await this.store()).listDirs(prefix);
  }
  async listFiles(prefix: string) {
    return (await this.store()).listFiles(prefix);
  }
  async removeDir(prefix: string) {
    return (await this.store()).removeDir(prefix);
  }
  async abortStaleUploads(prefix: string, olderThanMs: number) {
    return (await this.store()).abortStaleUploads!(prefix, olderThanMs);
  }
  async createExclusive(key: string, body: string, options?: CreateOptions) {
    return (await this.store()).createExclusive(key, body, options);
  }
  async createIfAbsent(key: string, body: string, options?: CreateOptions) {
    return (await this.store()).createIfAbsent(key, body, options);
  }
  private loaded?: Store;
  bytesOnWire() {
    void this.store().then((s) => (this.loaded = s));
    return this.loaded?.bytesOnWire?.() ?? 0;
  }
}

/** Out of space or quota, read-only, not ours to write: none of these clears in seconds. */
const FULL = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);
const REFUSED = new Set(['EROFS', 'EACCES', 'EPERM', 'ENOTDIR', 'EISDIR']);

/**
 * Every failure of a destination names it and the path, and says whether it may clear: a full disk
 * or a refused write fails at once, an unreachable or erring server is retried (activities/failures.ts).
 */
class Classified implements Store {
  readonly head?: Store['head'];
  constructor(private readonly store: Store) {
    if (store.head) this.head = (key) => this.call('looking up', key, () => store.head!(key));
  }
  get name() {
    return this.store.name;
  }
  location(key: string) {
    return this.store.location(key);
  }
  private async call<T>(what: string, key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.classify(what, key, err);
    }
  }
  private classify(what: string, key: string, err: unknown): unknown {
    if (err instanceof RunbookError || (err as Error)?.name === 'AbortError') return err;
    const code = (err as NodeJS.ErrnoException).code ?? (err as { name?: string }).name ?? '';
    const where = `destination ${this.name} (${this.store.location(key)})`;
    const why = `${code && !(err as Error).message?.includes(code) ? `${code}: ` : ''}${(err as Error).message ?? String(err)}`;
    if (FULL.has(code))
      return new RunbookError(
        'STORAGE_FULL',
        `${where}: ${what} failed: ${why}`,
        'free space there (or raise the quota), or remove old backups with `runbook retention`',
      );
    if (REFUSED.has(code))
      return new RunbookError('STORAGE_REFUSED', `${where}: ${what} failed: ${why}`, 'check that the worker may write there');
    return new RunbookError(
      'STORAGE_FAILED',
      `${where}: ${what} failed: ${why}`,
      'retried while it may clear; check that the destination is up and reachable',
    );
  }
  write(key: string, body: Readable | Buffer | string, options?: WriteOptions) {
    return this.call('writing', key, () => this.store.write(key, body, options));
  }

  read(key: string) {
    return this.call('reading', key, () => this.store.read(key));
  }
  readText(key: string) {
    return this.call('reading', key, () => this.store.readText(key));
  }
  listDirs(prefix: string) {
    return this.call('listing', prefix, () => this.store.listDirs(prefix));
  }
  listFiles(prefix: string) {
    return this.call('listing', prefix, () => this.store.listFiles(prefix));
  }
  removeDir(prefix: string) {
    return this.call('removing', prefix, () => this.store.removeDir(prefix));
  }
  bytesOnWire() {
    return this.store.bytesOnWire?.() ?? 0;
  }
  createExclusive(key: string, body: string, options?: CreateOptions) {
    return this.call('creating', key, () => this.store.createExclusive(key, body, options));
  }
  createIfAbsent(key: string, body: string, options?: CreateOptions) {
    return this.call('creating', key, () => this.store.createIfAbsent(key, body, options));
  }
  abortStaleUploads(prefix: string, olderThanMs: number) {
    return this.call(
      'cleaning unfinished uploads under',
      prefix,
      async () => (await this.store.abortStaleUploads?.(prefix, olderThanMs)) ?? [],
    );
  }
}

/** Builds each destination's client once, on first use. */
export function storeRegistry(config: Config) {
  const cache = new Map<string, Store>();
  return (name: string): Store => {
    let store = cache.get(name);
    if (store) return store;
    const spec = config.storage[name];
    if (!spec) throw new RunbookError('CONFIG_INVALID', `no storage destination named "${name}"`);
    store = new Classified(spec.type === 'local' ? new LocalStore(name, spec.path) : new LazyS3Store(name, spec));
    cache.set(name, store);
    return store;
  };
}
export type StoreRegistry = ReturnType<typeof storeRegistry>;
