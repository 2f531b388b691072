import { describe, expect, it } from 'vitest';
import { maxRdbVersionFor, rdbVersionFromHeader } from '../../common/rdb';
import { RunbookError } from '../../common/errors';

const bytes = (s: string) => Buffer.from(s, 'latin1');

describe('maxRdbVersionFor', () => {
  it.each([
    ['7.0.15', 10],
    ['7.2.4', 11],
    ['7.4.0', 12],
    ['8.0.1', 12],
    ['6.2.14', 9],
    ['5.0.7', 9],
    ['4.0.14', 8],
  ])('knows that Redis %s loads RDB versions up to %i', (version, max) => {
    expect(maxRdbVersionFor(version)).toBe(max);
  });
});

describe('rdbVersionFromHeader', () => {
  it('reads the four-digit version after the REDIS magic', () => {
    expect(rdbVersionFromHeader(bytes('REDIS0011\xfa\x09redis-ver'))).toBe(11);
    expect(rdbVersionFromHeader(bytes('REDIS0009'))).toBe(9);
    expect(rdbVersionFromHeader(new Uint8Array(bytes('REDIS0012')))).toBe(12);
  });

  it.each([
    ['a header that is too short', 'REDIS001', /only 8 bytes/],
    ['a file without the magic', 'PK\x03\x04REDIS0011', /no "REDIS" magic/],
    ['a version that is not digits', 'REDIS00x1', /not four digits/],
    ['version zero', 'REDIS0000', /version 0/],
  ])('refuses %s as RDB_INVALID', (_what, header, message) => {
    let err: unknown;
    try {
      rdbVersionFromHeader(bytes(header));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RunbookError);
    expect((err as RunbookError).code).toBe('RDB_INVALID');
    expect((err as RunbookError).message).toMatch(message);
  });

  it('shows unprintable bytes of a bad header escaped', () => {
    expect(() => rdbVersionFromHeader(bytes('\x1f\x8b\x08\x00\x00\x00\x00\x00\x00'))).toThrow(/starts with "\\x1f\\x8b/);
  });
});
