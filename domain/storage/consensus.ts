// Agreement on one value among racing writers, over an object store that only promises read-after-write
// consistency of objects and listings. A conditional PUT (If-None-Match: *) is not enough everywhere:
// some S3 servers check the condition before they write, so two racing creators can both succeed and
// the later silently replaces the earlier. This is Disk Paxos (Gafni and Lamport) on a single disk:
// each writer keeps its own blocks, under names only it uses, and reads everyone's; no key is ever
// written by two writers, so nothing relies on an atomic compare-and-set.
import { randomBytes } from 'node:crypto';
import { RunbookError } from '../../common/errors';

export interface BlockStore {
  /** Names of every block written so far. */
  list(): Promise<string[]>;
  read(name: string): Promise<string | null>;
  /** Creates a block under a name no other writer uses (written once, never replaced). */
  write(name: string, body: string): Promise<void>;
}

/** A round and the writer's id: unique, totally ordered. */
type Ballot = [round: number, writer: string];

/**
 * A writer's block, its ballots in its name (`<writer>-<n>-<mbal round>-<bal round>.json`, 0: none) so
 * that one listing tells who outbids whom; its body is the value it proposed at `bal`. In Disk Paxos
 * `bal` is always a ballot of the block's own writer.
 */
interface BlockName {
  name: string;
  writer: string;
  mbal: Ballot;
  bal: Ballot | null;
}

/** How long an outbid writer waits for the agreement to be stored before it tries again. */
const PATIENCE_MS = 1500;

const compare = (a: Ballot, b: Ballot) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
const BLOCK_NAME = /^([0-9a-f]{16})-(\d{6})-(\d{1,9})-(\d{1,9})\.json$/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The value the racers agree on: `proposal`, or another writer's. Returns at once what `decided` gives
 * (the outcome of an earlier agreement, once someone has stored it).
 */
export async function agree(
  blocks: BlockStore,
  proposal: string,
  decided: () => Promise<string | null>,
  what: string,
  opts: { maxRounds?: number } = {},
): Promise<string> {
  const me = randomBytes(8).toString('hex');
  let written = 0;
  let bal: Ballot | null = null;
  let value = '';
  let round = 1;

  const put = (mbal: Ballot) =>
    blocks.write(`${me}-${String(++written).padStart(6, '0')}-${mbal[0]}-${bal?.[0] ?? 0}.json`, bal ? value : '');
  /** Every writer's newest block, from one listing. */
  const newest = async (): Promise<BlockName[]> => {
    const byWriter = new Map<string, BlockName>();
    for (const name of await blocks.list()) {
      const m = BLOCK_NAME.exec(name);
      if (!m || (byWriter.get(m[1]!)?.name ?? '') > name) continue;
      const writer = m[1]!;
      byWriter.set(writer, { name, writer, mbal: [Number(m[3]), writer], bal: m[4] === '0' ? null : [Number(m[4]), writer] });
    }
    return [...byWriter.values()];
  };
  const outbid = (all: BlockName[], b: Ballot) => all.some((x) => compare(x.mbal, b) > 0);

  for (let attempt = 0; attempt < (opts.maxRounds ?? 60); attempt++) {
    const done = await decided();
    if (done !== null) return done;
    const b: Ballot = [round, me];
    // Phase 1: claim the ballot, and learn the value of the highest ballot anyone proposed.
    await put(b);
    let all = await newest();
    if (!outbid(all, b)) {
      const best = all.filter((x) => x.bal !== null).sort((x, y) => compare(y.bal!, x.bal!))[0];
      const v = best ? (best.writer === me ? value : await blocks.read(best.name)) : proposal;
      if (v !== null) {
        // Phase 2: propose it; chosen unless someone started a higher ballot meanwhile.
        bal = b;
        value = v;
        await put(b);
        all = await newest();
        if (!outbid(all, b)) return v;
      }
    }
    round = Math.max(round, ...all.map((x) => x.mbal[0])) + 1;
    // Outbid: the writer with the higher ballot is most likely about to finish. Waiting for it rather
    // than outbidding it in turn keeps racing writers from stopping one another by turns; it is outbid
    // only if nothing is stored within the patience (it crashed, or was outbid itself).
    const until = Date.now() + PATIENCE_MS;
    for (let wait = 20; Date.now() < until; wait = Math.min(120, wait * 1.5)) {
      await sleep(wait / 2 + (Math.random() * wait) / 2);
      const stored = await decided();
      if (stored !== null) return stored;
    }
  }
  throw new RunbookError(
    'STORAGE_FAILED',
    `${what}: no agreement among the writers racing for it after ${opts.maxRounds ?? 60} rounds`,
    'retried; many workers writing the same trail at once slow it down',
  );
}
