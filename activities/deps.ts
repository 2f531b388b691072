// What the activities are given, built once at worker start (or by a test): the domain library's
// services, and a listener for notification events (the worker's metrics).
import type { RunbookEvent } from '../common/events';
import { durationMs } from '../common/duration';
import { servicesFor, type Services } from '../domain/services';
import { DEFAULT_STALL_MS } from './heartbeat';

export interface ActivityDeps extends Partial<Services> {
  config: Services['config'];
  /** Told of every notification event, whether or not a webhook wants it. */
  onEvent?: (e: RunbookEvent) => void;
}

export type Deps = Services & Pick<ActivityDeps, 'onEvent'>;

export const buildDeps = (deps: ActivityDeps): Deps => ({ ...servicesFor(deps.config, deps), onEvent: deps.onEvent });

/** How long a read from a target's destinations may receive nothing before it is given up and retried. */
export function stallMsFor(config: Services['config'], target: string): number {
  const t = config.targets[target];
  const each = (t?.destinations ?? []).map((d) => {
    const spec = config.storage[d];
    return spec?.type === 's3' && spec.stallTimeout ? durationMs(spec.stallTimeout) : DEFAULT_STALL_MS;
  });
  return Math.max(DEFAULT_STALL_MS / 60, ...each);
}
