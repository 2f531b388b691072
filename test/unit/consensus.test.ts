// The agreement behind an exclusive create on S3 (domain/storage/consensus.ts), over an in-memory set of
// create-once blocks whose every operation takes a random time: however the racers interleave, they
// all come out with the same value, and it is one of theirs.
import { describe, expect, it } from 'vitest';
import { agree, type BlockStore } from '../../domain/storage/consensus';

function slowBlocks(): BlockStore & { size(): number } {
  const blocks = new Map<string, string>();
  const jitter = () => new Promise((r) => setTimeout(r, Math.random() * 4));
  return {
    async list() {
      await jitter();
      return [...blocks.keys()];
    },
    async read(name) {
      await jitter();
      return blocks.get(name) ?? null;
    },
    async write(name, body) {
      await jitter();
      if (blocks.has(name)) throw new Error(`block ${name} written twice`);
      blocks.set(name, body);
    },
    size: () => blocks.size,
  };
}

describe('agree', () => {
  it('racing writers always agree on one of their own values', async () => {
    for (let trial = 0; trial < 200; trial++) {
      const blocks = slowBlocks();
      let stored: string | null = null;
      const racers = Array.from({ length: 2 + (trial % 7) }, (_, i) => `value-${trial}-${i}`);
      const results = await Promise.all(
        racers.map(async (v, i) => {
          await new Promise((r) => setTimeout(r, Math.random() * 5 * (i % 3)));
          const chosen = await agree(blocks, v, async () => stored, 'test');
          stored ??= chosen; // as the S3 store creates the key with it
          return chosen;
        }),
      );
      expect(new Set(results).size).toBe(1);
      expect(racers).toContain(results[0]);
    }
  }, 60_000);

  it('a writer that comes after an agreement nobody stored (its writer died) adopts it', async () => {
    const blocks = slowBlocks();
    const first = await agree(blocks, 'first', async () => null, 'test');
    const late = await agree(blocks, 'late', async () => null, 'test');
    expect([first, late]).toEqual(['first', 'first']);
  });

  it('returns what is already stored without writing a block', async () => {
    const blocks = slowBlocks();
    expect(await agree(blocks, 'mine', async () => 'theirs', 'test')).toBe('theirs');
    expect(blocks.size()).toBe(0);
  });
});
