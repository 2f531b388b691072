import { describe, expect, it } from 'vitest';
import { isBackupId, makeBackupId, parseBackupId } from '../../common/backup-id';
import { RunbookError } from '../../common/errors';

function badInput(id: string): RunbookError {
  try {
    parseBackupId(id);
  } catch (err) {
    expect(err).toBeInstanceOf(RunbookError);
    expect((err as RunbookError).code).toBe('BAD_INPUT');
    return err as RunbookError;
  }
  throw new Error(`parseBackupId accepted ${JSON.stringify(id)}`);
}

describe('makeBackupId and parseBackupId', () => {
  it('make an id of the target, the UTC second and 8 hex digits, and read it back', () => {
    const time = new Date('2026-11-22T02:00:00.789Z');
    const id = makeBackupId('main', time, '1f2e3d4c');
    expect(id).toBe('main-20261122T020000Z-1f2e3d4c');
    expect(parseBackupId(id)).toEqual({ target: 'main', time: new Date('2026-11-22T02:00:00Z') });
    expect(isBackupId(id)).toBe(true);
  });

  it.each(['cache', 'cache-eu-west-1', 'a', 'sessions_v2', 'x-20261122t020000z-1f2e3d4c', 'a'.repeat(63)])(
    'round-trips the target name %s',
    (target) => {
      const time = new Date('2027-02-28T23:59:59Z');
      const id = makeBackupId(target, time, 'deadbeef');
      expect(parseBackupId(id)).toEqual({ target, time });
    },
  );

  it('round-trips times across the years, to the second', () => {
    for (const iso of ['2000-01-01T00:00:00Z', '2028-02-29T12:34:56Z', '2099-12-31T23:59:59Z']) {
      expect(parseBackupId(makeBackupId('main', new Date(iso), '00000000')).time.toISOString()).toBe(new Date(iso).toISOString());
    }
  });

  it('makes the nonce 8 lowercase hex digits out of whatever it is given', () => {
    const time = new Date('2026-11-22T02:00:00Z');
    expect(makeBackupId('main', time, '1F2E3D4C-AAAA-BBBB')).toBe('main-20261122T020000Z-1f2e3d4c');
    expect(makeBackupId('main', time, 'ab')).toBe('main-20261122T020000Z-ab000000');
    expect(makeBackupId('main', time, '../zz/..')).toBe('main-20261122T020000Z-00000000');
    // A workflow run id, as the backup workflow passes it.
    expect(makeBackupId('main', time, '0191f4c2-7b1e-7d3a-9c55-0a1b2c3d4e5f'.replace(/-/g, ''))).toBe('main-20261122T020000Z-0191f4c2');
  });
});

describe('parseBackupId refuses anything that is not exactly a backup id, as BAD_INPUT', () => {
  it.each([
    ['a relative path out of the folder', '../etc/passwd'],
    ['an absolute path', '/abs/path'],
    ['an id followed by a path', 'main-20261122T020000Z-1f2e3d4c/../x'],
    ['an id preceded by a path', '../main-20261122T020000Z-1f2e3d4c'],
    ['an id with a backslash path', 'main-20261122T020000Z-1f2e3d4c\\..\\x'],
    ['an id with uppercase hex', 'main-20261122T020000Z-1F2E3D4C'],
    ['an id with an uppercase target', 'Main-20261122T020000Z-1f2e3d4c'],
    ['an id with a URL-encoded "/.." (an S3 key trick)', 'main-20261122T020000Z-1f2e3d4c%2F..'],
    ['an id with a URL-encoded "../" in front', '..%2Fmain-20261122T020000Z-1f2e3d4c'],
    ['an id with a trailing newline', 'main-20261122T020000Z-1f2e3d4c\n'],
    ['an id with a trailing NUL', 'main-20261122T020000Z-1f2e3d4c\0'],
    ['an id with surrounding spaces', ' main-20261122T020000Z-1f2e3d4c '],
    ['an id with a 9-digit nonce', 'main-20261122T020000Z-1f2e3d4c0'],
    ['an id with a 7-digit nonce', 'main-20261122T020000Z-1f2e3d4'],
    ['an id without its Z', 'main-20261122T020000-1f2e3d4c'],
    ['an id without a target', '-20261122T020000Z-1f2e3d4c'],
    ['an id whose target is too long', `${'a'.repeat(64)}-20261122T020000Z-1f2e3d4c`],
    ['the empty string', ''],
    ['"."', '.'],
    ['".."', '..'],
  ])('%s', (_what, id) => {
    badInput(id);
    expect(isBackupId(id)).toBe(false);
  });

  it.each([
    ['month 13', 'main-20261322T020000Z-1f2e3d4c'],
    ['minute 60', 'main-20261122T026000Z-1f2e3d4c'],
    ['February 31 (Date would roll it over to March 3)', 'main-20260231T020000Z-1f2e3d4c'],
    ['April 31', 'main-20260431T020000Z-1f2e3d4c'],
    ['February 29 of a common year', 'main-20270229T020000Z-1f2e3d4c'],
    ['hour 24 (Date would read it as the next midnight)', 'main-20261122T240000Z-1f2e3d4c'],
    ['day 00', 'main-20261100T020000Z-1f2e3d4c'],
  ])('refuses an id with an impossible time: %s', (_what, id) => {
    expect(badInput(id).message).toMatch(/impossible time/);
    expect(isBackupId(id)).toBe(false);
  });

  it('accepts February 29 of a leap year', () => {
    expect(parseBackupId('main-20280229T020000Z-1f2e3d4c').time.toISOString()).toBe('2028-02-29T02:00:00.000Z');
  });

  it('quotes at most the first 120 characters of a very long input', () => {
    const long = `main-${'x'.repeat(100_000)}`;
    const err = badInput(long);
    expect(err.message).toContain(long.slice(0, 120));
    expect(err.message).not.toContain(long.slice(0, 121));
    expect(err.message.length).toBeLessThan(200);
    expect(err.hint).toMatch(/runbook backups list/);
  });
});
