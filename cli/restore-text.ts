import type { RestoreReport } from '../common/restore-types';
import { mib } from '../common/units';
import { escapeControls as escapeText } from '../common/escape';

export function renderRestoreText(r: RestoreReport): string {
  const p = r.plan;
  const lines = [
    `restore plan for ${p.target} (${p.strategy})`,
    `  replaces: ${p.current.keys} keys, ${mib(p.current.usedMemory)} used, ${p.current.role}, Redis ${p.current.version}, appendonly ${p.current.aofEnabled ? 'yes' : 'no'}`,
    `  with:     ${p.backup.backupId} (${Math.round(p.backup.ageSeconds / 60)} min old, ${p.backup.keys} keys, RDB v${p.backup.rdbVersion}, verified copy in ${p.backup.source})`,
    `  RDB:      SHA-256 ${p.backup.rdbSha256}; ${p.backup.trust === 'unsigned' ? 'UNSIGNED manifest, accepted by --allow-unsigned' : 'manifest signed by the worker'}`,
    `  writers paused: ${[...(p.pauseWrites ? ['CLIENT PAUSE WRITE'] : []), ...p.writers].join(', ') || 'none'}`,
    `  approvals: ${p.approvalsRequired} of ${p.approvers.join(', ') || '(no approvers configured)'}${p.allowSelfApproval ? '' : ', not the requester'}`,
  ];
  if (r.requestedBy) lines.push(`  requested by: ${escapeText(r.requestedBy)}`);
  if (r.outcome) lines.push(`outcome: ${r.outcome}: ${escapeText(r.targetState)}`);
  for (const d of r.decisions ?? [])
    lines.push(
      `  ${d.decision}d by ${escapeText(d.approver)} (key ${d.fingerprint}) at ${d.at}${d.comment ? `: ${escapeText(d.comment)}` : ''}`,
    );
  for (const s of r.steps ?? []) lines.push(`  ${s.name.padEnd(22)} ${(s.durationMs / 1000).toFixed(1)} s`);
  if (r.writePauseMs !== undefined) lines.push(`  write pause: ${(r.writePauseMs / 1000).toFixed(1)} s`);
  for (const c of r.verification ?? []) lines.push(`  ${c.ok ? 'ok    ' : 'FAILED'} ${c.name}: ${c.detail}`);
  for (const c of r.compensations ?? []) lines.push(`  compensation ${c.ok ? 'ok' : 'FAILED'}: ${c.name} (${c.detail})`);
  for (const w of r.warnings ?? []) lines.push(`  warning: ${w}`);
  return lines.join('\n') + '\n';
}
