import { describe, expect, it } from 'vitest';
import { keyspaceChecks, prefixCheck, rpoFigures } from '../../common/drill-checks';

const H = 3_600_000;
const now = new Date('2026-11-22T12:00:00Z');
const ago = (h: number) => new Date(now.getTime() - h * H);

describe('rpoFigures', () => {
  it('is empty without backups', () => {
    expect(rpoFigures([], now, 24 * H)).toEqual({ newestAgeMs: null, maxGapMs: null, windowMs: 24 * H, backupsInWindow: 0 });
  });

  it('measures the newest age and the largest gap, the gap up to now included', () => {
    const r = rpoFigures([ago(1), ago(2), ago(8), ago(9)], now, 24 * H);
    expect(r.newestAgeMs).toBe(1 * H);
    expect(r.maxGapMs).toBe(6 * H);
    expect(r.backupsInWindow).toBe(4);
  });

  it('counts the silence since the newest backup as a gap', () => {
    expect(rpoFigures([ago(30), ago(31)], now, 24 * H)).toMatchObject({ newestAgeMs: 30 * H, maxGapMs: 24 * H, backupsInWindow: 0 });
  });

  it('opens the window at the last backup before it, clipped to the window', () => {
    const r = rpoFigures([ago(2), ago(40)], now, 24 * H);
    expect(r.maxGapMs).toBe(22 * H);
    expect(r.backupsInWindow).toBe(1);
  });

  it('ignores order and future times', () => {
    const r = rpoFigures([ago(3), new Date(now.getTime() + H), ago(1)], now, 24 * H);
    expect(r).toMatchObject({ newestAgeMs: H, maxGapMs: 2 * H, backupsInWindow: 2 });
  });
});

describe('keyspaceChecks', () => {
  const manifest = { rdb: { keys: 100, expires: 10 }, keyspace: { db0: { keys: 80, expires: 10 }, db1: { keys: 20, expires: 0 } } };
  it('passes when the sandbox holds what the manifest says', () => {
    const checks = keyspaceChecks(manifest as never, { db0: { keys: 80, expires: 10 }, db1: { keys: 20, expires: 0 } });
    expect(checks.every((c) => c.ok)).toBe(true);
  });

  it('allows keys with a TTL to have expired, and no more', () => {
    expect(keyspaceChecks(manifest as never, { db0: { keys: 70, expires: 0 }, db1: { keys: 20, expires: 0 } }).every((c) => c.ok)).toBe(
      true,
    );
    const checks = keyspaceChecks(manifest as never, { db0: { keys: 69, expires: 0 }, db1: { keys: 20, expires: 0 } });
    expect(checks.find((c) => c.name === 'key count')!.ok).toBe(false);
    expect(checks.find((c) => c.name === 'keys per db')).toMatchObject({ ok: false });
  });

  it('finds keys in the wrong database', () => {
    const checks = keyspaceChecks(manifest as never, { db0: { keys: 100, expires: 10 } });
    expect(checks.find((c) => c.name === 'key count')!.ok).toBe(true);
    expect(checks.find((c) => c.name === 'keys per db')!.detail).toContain('db1 (0 loaded, manifest 20)');
  });

  it('widens the per-db tolerance by what the INFO figures missed the exact total by', () => {
    const drifted = { rdb: { keys: 105, expires: 0 }, keyspace: { db0: { keys: 100, expires: 0 } } };
    const checks = keyspaceChecks(drifted as never, { db0: { keys: 105, expires: 0 } });
    expect(checks.every((c) => c.ok)).toBe(true);
    expect(checks[1]!.detail).toContain('tolerance 5');
  });
});

describe('prefixCheck', () => {
  const manifest = {
    prefixes: {
      sampleSize: 10_000,
      top: [
        { prefix: 'task:', sampled: 6_000, estimated: 0 },
        { prefix: 'project:', sampled: 4_000, estimated: 0 },
      ],
    },
  };
  it('passes when the shares agree within sampling error', () => {
    expect(prefixCheck(manifest, { sampleSize: 10_000, counts: { 'task:': 6_100, 'project:': 3_900 } }).ok).toBe(true);
  });
  it('fails when a prefix is missing or its share moved', () => {
    const c = prefixCheck(manifest, { sampleSize: 10_000, counts: { 'task:': 10_000 } });
    expect(c.ok).toBe(false);
    expect(c.detail).toContain('project: 40.0% in the manifest, 0.0% loaded');
  });
  it('says so when there is nothing to compare', () => {
    expect(prefixCheck({ prefixes: { sampleSize: 0, top: [] } }, { sampleSize: 5, counts: {} })).toMatchObject({ ok: true });
    expect(prefixCheck(manifest, { sampleSize: 0, counts: {} }).ok).toBe(false);
  });
});

describe('databasesFor', () => {
  it('gives a scratch server room for every database the backup holds keys in', async () => {
    const { databasesFor } = await import('../../domain/restore/scratch');
    expect(databasesFor({})).toBe(16);
    expect(databasesFor({ db0: {}, db15: {} })).toBe(16);
    expect(databasesFor({ db0: {}, db20: {} })).toBe(21);
  });
});
