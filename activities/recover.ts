// Activities of the disaster-recovery runbook, over the domain library (domain/recover.ts).
import type { Assessment, RecoveryPoint } from '../common/drill-types';
import { assessTarget, chooseRecoveryPoint } from '../domain/recover';
import { stallMsFor, type Deps } from './deps';
import { whileMoving } from './heartbeat';

export function createRecoverActivities(deps: Deps) {
  return {
    async assessTarget(input: { target: string; checkFiles?: boolean }): Promise<Assessment & { runId?: string }> {
      return whileMoving((p) => assessTarget(deps, input, p));
    },

    async chooseRecoveryPoint(input: { target: string; at?: string; from?: string }): Promise<RecoveryPoint> {
      return whileMoving((p) => chooseRecoveryPoint(deps, input, p), stallMsFor(deps.config, input.target));
    },
  };
}
