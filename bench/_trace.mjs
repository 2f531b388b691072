import { PassThrough } from 'node:stream';
const orig = PassThrough.prototype.destroy;
PassThrough.prototype.destroy = function (err) {
  if (!this.writableFinished && !err) process.stderr.write(`[trace ${process.pid}] PassThrough(hwm ${this.writableHighWaterMark}) destroyed unfinished: writableLength ${this.writableLength} readableLength ${this.readableLength} writableEnded ${this.writableEnded}\n${new Error().stack.split('\n').slice(2, 12).join('\n')}\n`);
  return orig.call(this, err);
};
