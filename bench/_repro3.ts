import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fanOut } from '../activities/pipeline';
for (const delay of [0, 1, 5]) {
  const sink = new PassThrough({ highWaterMark: 1 << 20 });
  const slowReader = new Writable({ highWaterMark: 1 << 16, write: (_c, _e, cb) => (delay ? setTimeout(cb, delay) : setImmediate(cb)) });
  const branch = pipeline(sink, slowReader);
  const chunks = Array.from({ length: 256 }, () => Buffer.alloc(64 * 1024));
  const fan = fanOut([sink]);
  fan.on('finish', () => console.log(' fan finish: sink.writableFinished', sink.writableFinished, 'writableLength', sink.writableLength, 'readableLength', sink.readableLength));
  fan.on('close', () => console.log(' fan close: sink.destroyed', sink.destroyed, 'writableFinished', sink.writableFinished));
  const main = pipeline(Readable.from(chunks), fan);
  const [m, b] = await Promise.allSettled([main, branch]);
  console.log(delay, 'main:', m.status, 'branch:', b.status, b.status === 'rejected' ? (b.reason as Error).message : '');
}
