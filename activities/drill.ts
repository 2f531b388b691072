// Activities of the drill runbook, over the domain library (domain/drill.ts).
import { targetOf } from '../common/config';
import { renderDrillMarkdown } from '../common/drill-report';
import type { DrillPick, DrillReport, DrillRestoreResult } from '../common/drill-types';
import { durationMs } from '../common/duration';
import { drillPick, drillRestore, type DrillRestoreInput } from '../domain/drill';
import { writeDrillReport } from '../domain/drill-store';
import { stallMsFor, type Deps } from './deps';
import { whileMoving } from './heartbeat';

export function createDrillActivities(deps: Deps) {
  return {
    async targetObjectives(target: string): Promise<{ rpoMs: number; rtoMs: number }> {
      const t = targetOf(deps.config, target);
      return { rpoMs: durationMs(t.rpo), rtoMs: durationMs(t.rto) };
    },

    async drillPick(input: { target: string; random?: number; from?: string; backupId?: string }): Promise<DrillPick> {
      return drillPick(deps, input);
    },

    async drillRestore(input: DrillRestoreInput): Promise<DrillRestoreResult> {
      return whileMoving((p) => drillRestore(deps, input, p), stallMsFor(deps.config, input.target));
    },

    async saveDrillReport(report: DrillReport): Promise<void> {
      return writeDrillReport(deps.config, deps.stores, report, renderDrillMarkdown(report), deps.signer());
    },
  };
}
