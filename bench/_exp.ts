import { createCipheriv } from 'node:crypto';
import { Redis } from 'ioredis';
const port = Number(process.argv[2]); const pFresh = Number(process.argv[3]); const n = Number(process.argv[4] ?? 500);
const r = new Redis({ port, host: '127.0.0.1' });
await r.flushall();
const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0));
const alpha = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/';
const table = Buffer.alloc(256); for (let i = 0; i < 256; i++) table[i] = alpha.charCodeAt(i % 64);
const SIZE = 51200, SEG = 1024, NSEG = SIZE / SEG;
const zero = Buffer.alloc(SIZE);
const t0 = Date.now();
for (let b = 0; b < n; b += 100) {
  const p = r.pipeline();
  for (let i = b; i < Math.min(n, b + 100); i++) {
    const v = cipher.update(zero);
    const rnd = cipher.update(Buffer.alloc(NSEG * 2));
    for (let s = 0; s < NSEG; s++) {
      const o = s * SEG;
      if (s < 12 || rnd[2 * s]! / 256 < pFresh) { for (let j = o; j < o + SEG; j++) v[j] = table[v[j]!]!; }
      else { v.copy(v, o, o - 12 * SEG, o - 11 * SEG); }
    }
    p.set(`blob:${i}`, v);
  }
  await p.exec();
}
console.log('fill ms', Date.now() - t0);
r.disconnect();
