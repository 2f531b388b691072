import type { Readable } from 'node:stream';
import type { Config, StorageConfig } from '../../common/config';
import { RunbookError } from '../../common/errors';
import { LocalStore } from './local';
import { assertKey, type Store } from './store';

export type { Store } from './store';

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
  async write(key: string, body: Readable | Buffer | string) {
    return (await this.store()).write(key, body);
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
}

/** Builds each destination's client once, on first use. */
export function storeRegistry(config: Config) {
  const cache = new Map<string, Store>();
  return (name: string): Store => {
    let store = cache.get(name);
    if (store) return store;
    const spec = config.storage[name];
    if (!spec) throw new RunbookError('CONFIG_INVALID', `no storage destination named "${name}"`);
    store = spec.type === 'local' ? new LocalStore(name, spec.path) : new LazyS3Store(name, spec);
    cache.set(name, store);
    return store;
  };
}
export type StoreRegistry = ReturnType<typeof storeRegistry>;
