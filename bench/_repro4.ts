import { mkdtempSync, rmSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { storeRdb } from '../activities/pipeline';
import { openReplicationStream } from '../activities/capture/replication';
import { LocalStore } from '../activities/storage/local';
const orig = PassThrough.prototype.destroy;
PassThrough.prototype.destroy = function (this: PassThrough, err?: Error) {
  if (!this.writableFinished && !err) console.log('PassThrough destroyed unfinished (hwm', this.writableHighWaterMark, 'writableLength', this.writableLength, 'readableLength', this.readableLength, ')\n', new Error().stack?.split('\n').slice(2, 9).join('\n'));
  return orig.call(this, err);
} as typeof orig;
const port = Number(process.argv[2]); const compression = (process.argv[3] ?? 'zstd') as 'zstd';
const lag = Number(process.argv[5] ?? 0);
if (lag) setInterval(() => { const t = Date.now(); while (Date.now() - t < lag); }, 2 * lag).unref();
let ok = 0;
for (let i = 0; i < Number(process.argv[4] ?? 6); i++) {
  const dir = mkdtempSync('/tmp/repro/store-');
  const t = Date.now();
  try {
    const store = new LocalStore('x', dir);
    await store.write('a/run.json', '{}');
    const { stream } = await openReplicationStream({ host: '127.0.0.1', port });
    const r = await storeRdb(stream, [{ store, key: 'a/b.rdb.zst' }], { compression });
    ok++; console.log('ok', Date.now() - t, 'ms', r.rdb.size, r.stored.size);
  } catch (e) { console.log('FAIL', Date.now() - t, 'ms', (e as Error).message); }
  rmSync(dir, { recursive: true, force: true });
  await new Promise((r) => setTimeout(r, 300));
}
console.log({ ok });
