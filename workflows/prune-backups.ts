// pruneBackups: a target's retention policy applied now, as a run of its own (every backup also
// applies it when it ends). What it deletes is written to the target's audit trail.
import type { RetentionOutcome } from '../common/types';
import { quick } from './shared';

export async function pruneBackups(input: { target: string; requestedBy: string }): Promise<RetentionOutcome> {
  return quick.applyRetention({ target: input.target, dryRun: false, requestedBy: input.requestedBy });
}
