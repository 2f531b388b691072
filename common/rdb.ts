// Facts about RDB files that workflows and activities both need. Pure: no Node modules, so it is safe
// inside the workflow sandbox; a Buffer is a Uint8Array, so either may be passed.
import { RunbookError } from './errors';

/** "REDIS" followed by four ASCII digits: the first nine bytes of every RDB file. */
export const RDB_HEADER_LENGTH = 9;
const MAGIC = [0x52, 0x45, 0x44, 0x49, 0x53]; // R E D I S

/** The RDB format version in a file's first bytes: "REDIS0011..." → 11. Throws RDB_INVALID otherwise. */
export function rdbVersionFromHeader(buf: Uint8Array): number {
  const bad = (why: string): RunbookError =>
    new RunbookError(
      'RDB_INVALID',
      `not an RDB file: ${why} (starts with "${preview(buf)}")`,
      'an RDB starts with "REDIS" and a four-digit version, e.g. REDIS0011; check that the file is an uncompressed, complete RDB',
    );
  if (buf.length < RDB_HEADER_LENGTH) throw bad(`only ${buf.length} bytes, a header needs ${RDB_HEADER_LENGTH}`);
  for (let i = 0; i < MAGIC.length; i++) if (buf[i] !== MAGIC[i]) throw bad('no "REDIS" magic');
  let version = 0;
  for (let i = MAGIC.length; i < RDB_HEADER_LENGTH; i++) {
    const c = buf[i];
    if (c < 0x30 || c > 0x39) throw bad('the version is not four digits');
    version = version * 10 + (c - 0x30);
  }
  if (version < 1) throw bad('version 0 does not exist');
  return version;
}

function preview(buf: Uint8Array): string {
  let s = '';
  for (let i = 0; i < Math.min(buf.length, RDB_HEADER_LENGTH); i++) {
    const c = buf[i];
    s += c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return s;
}

/** The newest RDB format a Redis version loads: 9 up to 6.2, 10 for 7.0, 11 for 7.2, 12 for 7.4 and later. */
export function maxRdbVersionFor(redisVersion: string): number {
  const [major = 0, minor = 0] = redisVersion.split('.').map(Number);
  if (major >= 8 || (major === 7 && minor >= 4)) return 12;
  if (major === 7 && minor >= 2) return 11;
  if (major === 7) return 10;
  if (major >= 5) return 9;
  if (major === 4) return 8;
  return 7;
}
