// drillRedis: prove that a stored backup restores. Pick one, fetch it from the drill's destination,
// load it into a sandbox on the worker, verify it, and measure RTO and RPO against the objectives.
// The target is never touched. A failed drill or a missed objective is reported and alerted.
import { isCancellation, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { fail } from '../common/errors';
import type { DrillInput, DrillPick, DrillReport, DrillRestoreResult } from '../common/drill-types';
import { drillHeadline, hours, seconds } from '../common/drill-report';
import { OUTCOME_ATTR, RPO_ATTR, RTO_ATTR, TARGET_ATTR } from '../common/search-attributes';
import { heavy, messageOf, quick, records } from './shared';

export async function drillRedis(input: DrillInput): Promise<DrillReport> {
  const info = workflowInfo();
  const started = Date.now();
  const { target } = input;
  upsertSearchAttributes([{ key: TARGET_ATTR, value: target }]);
  const stamp = new Date(started)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const drillId = `${target}-drill-${stamp}-${info.runId.replace(/-/g, '').slice(-8)}`;

  let pick: DrillPick | undefined;
  let restored: DrillRestoreResult | undefined;
  let reason: string | undefined;
  let usableAt: number | undefined;
  let objectives = { rpoMs: 0, rtoMs: 0 };
  try {
    objectives = await quick.targetObjectives(target);
    pick = await quick.drillPick({ target, random: input.random, from: input.from, backupId: input.backupId });
    restored = await heavy.drillRestore({ target, backupId: pick.backupId, destination: pick.destination, drillId });
    const failed = restored.checks.filter((c) => !c.ok);
    if (failed.length) reason = failed.map((c) => `${c.name}: ${c.detail}`).join('; ');
    else usableAt = Date.now();
  } catch (err) {
    if (isCancellation(err)) throw err;
    reason = messageOf(err);
  }

  const { rpoMs, rtoMs } = objectives;
  const rtoMeasured = usableAt === undefined ? null : usableAt - started;
  const rpo = pick?.rpo ?? { newestAgeMs: null, maxGapMs: null, windowMs: 0, backupsInWindow: 0 };
  const rpoWorst = rpo.newestAgeMs === null ? null : Math.max(rpo.newestAgeMs, rpo.maxGapMs ?? 0);
  const report: DrillReport = {
    drillId,
    target,
    workflowId: info.workflowId,
    runId: info.runId,
    requestedBy: input.requestedBy ?? 'unknown',
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date().toISOString(),
    outcome: reason === undefined ? 'passed' : 'failed',
    reason,
    backup: pick && {
      backupId: pick.backupId,
      createdAt: pick.createdAt,
      destination: pick.destination,
      among: pick.among,
      ageMs: started - Date.parse(pick.createdAt),
      rdbSize: restored?.rdbSize ?? 0,
      storedSize: restored?.storedSize ?? 0,
    },
    phases: restored?.phases ?? [],
    checks: restored?.checks ?? [],
    rto: { measuredMs: rtoMeasured, objectiveMs: rtoMs, met: rtoMeasured !== null && rtoMeasured <= rtoMs },
    rpo: { ...rpo, objectiveMs: rpoMs, met: rpoWorst !== null && rpoWorst <= rpoMs },
    objectivesMet: false,
  };
  report.objectivesMet = report.rto.met && report.rpo.met;

  // The stored report is the drill's evidence; failing to store it fails the drill.
  let stored = true;
  try {
    await quick.saveDrillReport({ report, receipt: restored?.receipt });
  } catch (err) {
    stored = false;
    report.outcome = 'failed';
    report.reason = `${report.reason ? `${report.reason}; ` : ''}the report could not be stored: ${messageOf(err)}`;
  }
  // After the report is stored: a drill whose report could not be kept is listed as failed.
  upsertSearchAttributes([
    { key: OUTCOME_ATTR, value: report.outcome },
    ...(rtoMeasured !== null ? [{ key: RTO_ATTR, value: rtoMeasured / 1000 }] : []),
    ...(rpoWorst !== null ? [{ key: RPO_ATTR, value: rpoWorst / 1000 }] : []),
  ]);
  if (report.outcome === 'failed' || !report.objectivesMet) {
    const missed = [
      !report.rto.met && report.outcome === 'passed' ? `RTO ${seconds(rtoMeasured)} > ${hours(rtoMs)}` : '',
      !report.rpo.met ? (rpoWorst === null ? 'RPO: no verified backup at all' : `RPO ${hours(rpoWorst)} > ${hours(rpoMs)}`) : '',
    ]
      .filter(Boolean)
      .join(', ');
    await records
      .notify({
        event: report.outcome === 'failed' ? 'drill-failed' : 'objective-missed',
        target,
        at: report.finishedAt,
        title: drillHeadline(report),
        text: [report.backup ? `backup ${report.backup.backupId} from ${report.backup.destination}` : 'no backup drilled', missed]
          .filter(Boolean)
          .join('\n'),
        workflowId: info.workflowId,
        fields: {
          drillId,
          outcome: report.outcome,
          objectivesMet: report.objectivesMet,
          rtoSeconds: rtoMeasured === null ? null : rtoMeasured / 1000,
          rpoSeconds: rpoWorst === null ? null : rpoWorst / 1000,
          reportStored: stored,
        },
      })
      .catch(() => {}); // an unreachable webhook must not hide the drill's own result
  }
  if (report.outcome === 'failed') {
    fail('DRILL_FAILED', drillHeadline(report), undefined, [report]);
  }
  return report;
}
