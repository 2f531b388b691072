// A dataset with every core type, TTLs, a large value and two databases.
import type { Redis } from 'ioredis';

export async function fillDataset(client: Redis, opts: { keys?: number } = {}): Promise<void> {
  const p = client.pipeline();
  p.select(0);
  for (let i = 0; i < (opts.keys ?? 500); i++) p.set(`user:${i}`, `name-${i}-${'x'.repeat(i % 50)}`);
  for (let i = 0; i < 50; i++) p.hset(`session:${i}`, { id: String(i), agent: 'curl', seen: String(1_700_000_000 + i) });
  p.rpush('queue:jobs', ...Array.from({ length: 300 }, (_, i) => `job-${i}`));
  p.sadd('set:tags', 'a', 'b', 'c', '42', '7');
  p.zadd('rank:scores', 1, 'alice', 2.5, 'bob', -3, 'carol');
  for (let i = 0; i < 20; i++) p.xadd('stream:events', '*', 'type', 'click', 'n', String(i));
  p.set('cache:ttl', 'expires later', 'EX', 3600);
  p.set('cache:pttl', 'expires much later', 'PX', 86_400_000);
  p.set('blob:large', Buffer.alloc(5 * 1024 * 1024, 7));
  p.select(1);
  p.set('other:db', 'in db 1');
  p.select(0);
  await p.exec();
}

/** DEBUG DIGEST of every non-empty database: equal digests mean equal contents, TTLs included. */
export async function digestAll(client: Redis): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const dbs = (await client.info('keyspace')).match(/^db\d+/gm) ?? [];
  for (const db of dbs) {
    await client.select(Number(db.slice(2)));
    out[db] = String(await client.call('DEBUG', 'DIGEST'));
  }
  await client.select(0);
  return out;
}
