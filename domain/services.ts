// What the domain library works with, built once: the config, a client per storage destination, the
// encryption keyring, and (for retention) a Temporal client.
import type { Client } from '@temporalio/client';
import type { Config } from '../common/config';
import { keyring, type Keyring } from './crypto/keys';
import { storeRegistry, type StoreRegistry } from './storage';

export interface Services {
  config: Config;
  stores: StoreRegistry;
  keys: Keyring;
  /** Used by retention to tell a running backup's unfinished folder from an abandoned one. */
  temporal?: Client;
}

export function servicesFor(config: Config, more: Partial<Services> = {}): Services {
  return { config, stores: more.stores ?? storeRegistry(config), keys: more.keys ?? keyring(config), temporal: more.temporal };
}
