import type { BackupReport } from './types';
import { mib } from './units';

/** The short text report stored beside the backup and printed by the CLI. */
export function renderBackupText(r: BackupReport): string {
  const m = r.manifest;
  const keys =
    Object.entries(m.keyspace)
      .map(([db, k]) => `${db}=${k.keys}`)
      .join(' ') || 'empty';
  const lines = [
    `backup ${r.backupId} of ${r.target}: ${r.ok ? 'OK' : 'FAILED'}`,
    `  redis ${m.redis.version} (${m.redis.role}), RDB v${m.rdb.version}, ${m.rdb.keys} keys checked by redis-check-rdb (${keys})`,
    `  raw ${mib(m.rdb.size)} -> stored ${mib(m.artifact.size)} (${m.artifact.compression}), capture ${m.capture.method} ${(m.capture.durationMs / 1000).toFixed(1)} s`,
    ...m.verification.copies.map((c) => `  ${c.ok ? 'verified' : 'FAILED  '} ${c.destination}: ${c.detail}`),
    `  retention: kept ${r.retention.kept.length}, deleted ${r.retention.deleted.length}${r.retention.abandoned.length ? `, cleared ${r.retention.abandoned.length} abandoned` : ''}`,
    ...m.redis.warnings.map((w) => `  warning: ${w}`),
    ...r.retention.suspicious.map((s) => `  warning: ${s} has a damaged or foreign manifest; left alone, look at it`),
    `  steps: ${r.steps.map((s) => `${s.name} ${(s.durationMs / 1000).toFixed(1)}s`).join(', ')}`,
  ];
  return lines.join('\n') + '\n';
}
