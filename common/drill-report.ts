// A drill report as Markdown (stored beside the backups) and as the CLI's text.
import type { DrillReport } from './drill-types';

export const seconds = (ms: number | null | undefined): string => (ms == null ? 'n/a' : `${(ms / 1000).toFixed(1)} s`);
export const hours = (ms: number | null | undefined): string =>
  ms == null ? 'n/a' : ms < 3_600_000 ? `${(ms / 60_000).toFixed(1)} min` : `${(ms / 3_600_000).toFixed(1)} h`;

export function drillHeadline(r: DrillReport): string {
  const verdict = r.outcome === 'passed' ? (r.objectivesMet ? 'PASSED' : 'PASSED, objectives missed') : 'FAILED';
  return `drill ${r.drillId} of ${r.target}: ${verdict}${r.reason ? ` (${r.reason})` : ''}`;
}

function objectiveLines(r: DrillReport): string[] {
  return [
    `RTO ${seconds(r.rto.measuredMs)} against ${hours(r.rto.objectiveMs)}: ${r.rto.met ? 'met' : 'MISSED'}`,
    `RPO: newest backup ${hours(r.rpo.newestAgeMs)} old, largest gap ${hours(r.rpo.maxGapMs)} over ${hours(r.rpo.windowMs)}, against ${hours(r.rpo.objectiveMs)}: ${r.rpo.met ? 'met' : 'MISSED'}`,
  ];
}

export function renderDrillText(r: DrillReport): string {
  const lines = [
    drillHeadline(r),
    ...(r.backup
      ? [
          `  backup ${r.backup.backupId} (${hours(r.backup.ageMs)} old) from ${r.backup.destination}` +
            ((r.backup.among ?? 1) > 1 ? `, picked at random among the newest ${r.backup.among}` : ''),
        ]
      : ['  no backup was drilled']),
    ...objectiveLines(r).map((l) => `  ${l}`),
    `  phases: ${r.phases.map((p) => `${p.name} ${seconds(p.durationMs)}`).join(', ') || 'none'}`,
    ...r.checks.map((c) => `  ${c.ok ? 'ok    ' : 'FAILED'} ${c.name}: ${c.detail}`),
  ];
  return lines.join('\n') + '\n';
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderDrillMarkdown(r: DrillReport): string {
  return [
    `# Restore drill ${r.drillId}: ${r.target}`,
    '',
    `**${r.outcome === 'passed' ? (r.objectivesMet ? 'Passed' : 'Passed; objectives missed') : 'Failed'}**${r.reason ? `: ${r.reason}` : ''}`,
    '',
    `- Started ${r.startedAt}, finished ${r.finishedAt}, requested by ${r.requestedBy}`,
    `- Workflow ${r.workflowId} (run ${r.runId})`,
    r.backup
      ? `- Backup ${r.backup.backupId}, taken ${r.backup.createdAt} (${hours(r.backup.ageMs)} before the drill), fetched from ${r.backup.destination}`
      : '- No backup was drilled',
    ...objectiveLines(r).map((l) => `- ${l}`),
    '',
    '| phase | duration |',
    '| --- | --- |',
    ...r.phases.map((p) => `| ${cell(p.name)} | ${seconds(p.durationMs)} |`),
    '',
    '| check | result | detail |',
    '| --- | --- | --- |',
    ...r.checks.map((c) => `| ${cell(c.name)} | ${c.ok ? 'ok' : '**failed**'} | ${cell(c.detail)} |`),
    '',
  ].join('\n');
}
