// Backup ids name folders and object keys, so they are a closed format that cannot carry a path:
// <target>-<UTC time>-<8 hex>, e.g. cache-20261122T020000Z-1f2e3d4c.
import { RunbookError } from './errors';

const ID = /^(?<target>[a-z0-9][a-z0-9_-]{0,62})-(?<stamp>\d{8}T\d{6}Z)-(?<nonce>[0-9a-f]{8})$/;

export interface ParsedBackupId {
  target: string;
  time: Date;
}

const stampOf = (time: Date): string =>
  time
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');

export function makeBackupId(target: string, time: Date, nonceHex: string): string {
  return `${target}-${stampOf(time)}-${nonceHex
    .replace(/[^0-9a-f]/gi, '')
    .toLowerCase()
    .slice(0, 8)
    .padEnd(8, '0')}`;
}

export function parseBackupId(id: string): ParsedBackupId {
  const m = ID.exec(id);
  if (!m?.groups) {
    throw new RunbookError(
      'BAD_INPUT',
      `"${id.slice(0, 120)}" is not a backup id`,
      'backup ids look like <target>-20261122T020000Z-1f2e3d4c; list them with `runbook backups list <target>`',
    );
  }
  const s = m.groups.stamp;
  const time = new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`);
  // Date() rolls over rather than refusing some impossible times (Feb 31 is Mar 3, 24:00 is the next
  // day), so the time must also read back as the same stamp.
  if (Number.isNaN(time.getTime()) || stampOf(time) !== s) throw new RunbookError('BAD_INPUT', `"${id}" has an impossible time`);
  return { target: m.groups.target, time };
}

export function isBackupId(id: string): boolean {
  try {
    parseBackupId(id);
    return true;
  } catch {
    return false;
  }
}
