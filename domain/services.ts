// What the domain library works with, built once: the config, a client per storage destination, the
// encryption keyring, the worker's signer and the verifier of what storage holds, and (for retention
// and the approval gate) a Temporal client.
import type { Client } from '@temporalio/client';
import type { Config } from '../common/config';
import { keyring, type Keyring } from './crypto/keys';
import { storeRegistry, type StoreRegistry } from './storage';
import { signerFor, verifierFor, type Signer, type Verifier } from './trust/signing';

export interface Services {
  config: Config;
  stores: StoreRegistry;
  keys: Keyring;
  /** Signs what the worker writes (manifests, drill reports, audit records); resolved on first use, so a CLI that only reads needs no key. */
  signer: () => Signer;
  /** Whether a stored object is signed by a key in signing.trust. */
  verify: Verifier;
  /** Used by retention to tell a running backup's unfinished folder from an abandoned one, and by the gate to read a run's history. */
  temporal?: Client;
}

export function servicesFor(config: Config, more: Partial<Services> = {}): Services {
  let signer: Signer | undefined;
  return {
    config,
    stores: more.stores ?? storeRegistry(config),
    keys: more.keys ?? keyring(config),
    signer: more.signer ?? (() => (signer ??= signerFor(config))),
    verify: more.verify ?? verifierFor(config),
    temporal: more.temporal,
  };
}
