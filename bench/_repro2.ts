import { mkdtempSync, rmSync } from 'node:fs';
import { storeRdb } from '../activities/pipeline';
import { openReplicationStream } from '../activities/capture/replication';
import { LocalStore } from '../activities/storage/local';
const port = Number(process.argv[2]); const compression = (process.argv[3] ?? 'zstd') as 'zstd';
let ok = 0; const errs: string[] = [];
for (let i = 0; i < Number(process.argv[4] ?? 6); i++) {
  const dir = mkdtempSync('/tmp/repro/store-');
  const t = Date.now();
  try {
    const { stream } = await openReplicationStream({ host: '127.0.0.1', port });
    const r = await storeRdb(stream, [{ store: new LocalStore('x', dir), key: 'a/b.rdb.zst' }], { compression });
    ok++; console.log('ok', Date.now() - t, 'ms', r.rdb.size, r.stored.size);
  } catch (e) { errs.push((e as Error).message); console.log('FAIL', Date.now() - t, 'ms', (e as Error).stack); }
  rmSync(dir, { recursive: true, force: true });
  await new Promise((r) => setTimeout(r, 300));
}
console.log({ ok, errs: errs.length });
