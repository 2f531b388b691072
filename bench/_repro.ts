import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { storeRdb } from '../activities/pipeline';
import { LocalStore } from '../activities/storage/local';
const file = process.argv[2]!; const compression = (process.argv[3] ?? 'zstd') as 'zstd';
let ok = 0; const errs: string[] = [];
for (let i = 0; i < 6; i++) {
  const dir = mkdtempSync('/tmp/repro/store-');
  const t = Date.now();
  try {
    const r = await storeRdb(createReadStream(file, { highWaterMark: 1 << 16 }), [{ store: new LocalStore('x', dir), key: 'a/b.rdb.zst' }], { compression });
    ok++; console.log('ok', Date.now() - t, 'ms', r.rdb.size, r.stored.size);
  } catch (e) { errs.push((e as Error).message); console.log('FAIL', Date.now() - t, 'ms', (e as Error).message); }
  rmSync(dir, { recursive: true, force: true });
}
console.log({ ok, errs: errs.length });
