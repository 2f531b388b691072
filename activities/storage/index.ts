import type { Config } from '../../common/config';
import { RunbookError } from '../../common/errors';
import { LocalStore } from './local';
import { S3Store } from './s3';
import type { Store } from './store';

export type { Store } from './store';

/** Builds each destination's client once, on first use (an S3 secret is resolved only when needed). */
export function storeRegistry(config: Config) {
  const cache = new Map<string, Store>();
  return (name: string): Store => {
    let store = cache.get(name);
    if (store) return store;
    const spec = config.storage[name];
    if (!spec) throw new RunbookError('CONFIG_INVALID', `no storage destination named "${name}"`);
    store = spec.type === 'local' ? new LocalStore(name, spec.path) : new S3Store(name, spec);
    cache.set(name, store);
    return store;
  };
}
export type StoreRegistry = ReturnType<typeof storeRegistry>;
