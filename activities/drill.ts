// Activities of the drill runbook, over the domain library (domain/drill.ts).
import { targetOf } from '../common/config';
import { renderDrillMarkdown } from '../common/drill-report';
import type { DrillPick, DrillReport, DrillRestoreResult } from '../common/drill-types';
import { durationMs } from '../common/duration';
import { drillPick, drillRestore, type DrillRestoreInput } from '../domain/drill';
import { writeDrillReport } from '../domain/drill-store';
import { Context } from '@temporalio/activity';
import { fail } from '../common/errors';
import type { Signature } from '../common/signature';
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
      const result = await whileMoving((p) => drillRestore(deps, input, p), stallMsFor(deps.config, input.target));
      const runId = Context.current().info.workflowExecution?.runId;
      const receipt = deps.signer().sign(drillReceipt(runId, input.drillId, input.target, input.backupId, result)).signature;
      return { ...result, receipt };
    },

    /**
     * The drill's evidence. A passing report is signed only if this run's sandbox restore says it
     * passed: a workflow cannot have a green report of its own making signed.
     */
    async saveDrillReport(input: { report: DrillReport; receipt?: Signature }): Promise<void> {
      const { report, receipt } = input;
      const runId = Context.current().info.workflowExecution?.runId;
      if (report.outcome === 'passed') {
        const claimed = drillReceipt(runId, report.drillId, report.target, report.backup?.backupId ?? '', {
          checks: report.checks,
          rdbSize: report.backup?.rdbSize ?? 0,
          storedSize: report.backup?.storedSize ?? 0,
        });
        const verdict = deps.verify({ ...claimed, signature: receipt });
        if (report.runId !== runId || !verdict.ok || report.checks.length === 0 || report.checks.some((c) => !c.ok)) {
          fail(
            'SIGNATURE_INVALID',
            `the worker refuses to sign a passing report of drill ${report.drillId}: run ${runId}'s sandbox restore did not say so` +
              (verdict.ok ? '' : ` (${verdict.reason})`),
          );
        }
      }
      return writeDrillReport(deps.config, deps.stores, report, renderDrillMarkdown(report), deps.signer());
    },
  };
}

/** What a drill receipt binds: this run, this drill of this backup, and what its sandbox showed. */
function drillReceipt(
  runId: string | undefined,
  drillId: string,
  target: string,
  backupId: string,
  r: Pick<DrillRestoreResult, 'checks' | 'rdbSize' | 'storedSize'>,
) {
  return {
    kind: 'drill-receipt',
    runId: runId ?? '',
    drillId,
    target,
    backupId,
    checks: r.checks,
    rdbSize: r.rdbSize,
    storedSize: r.storedSize,
  };
}
