// An application writer as a real process, for tests of what a restore does to writes: EVAL stamps each
// write with the server's clock (on the target's own log) and the writer keeps the stamps of the writes
// the server acknowledged (on a local log). Its pid is written to <dir>/<name>.pid for the writer
// controller's commands, which note their pause and resume times in <dir>/<name>.events.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

const WRITER = `
const { Redis } = require('ioredis');
const fs = require('node:fs');
const [port, logFile] = process.argv.slice(1);
const r = new Redis({ host: '127.0.0.1', port: Number(port), maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 100 });
r.on('error', () => {});
const script = "local t = redis.call('TIME'); local ms = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000)); redis.call('RPUSH', 'log', ms); redis.call('INCR', 'counter'); return ms";
(async () => {
  for (;;) {
    try {
      fs.appendFileSync(logFile, (await r.eval(script, 0)) + '\\n');
    } catch {}
    await new Promise((res) => setTimeout(res, 10));
  }
})();
`;

export interface Writer {
  child: ChildProcess;
  pid: number;
  /** Server times of the writes the target acknowledged. */
  acked(): number[];
  /** [pause, resume] windows, as noted by the controller's commands; resume is Infinity while paused. */
  windows(): [number, number][];
  /** The process state from /proc: "T" while stopped. */
  state(): string;
}

export function startWriter(dir: string, name: string, port: number): Writer {
  const logFile = path.join(dir, `${name}.writes`);
  writeFileSync(logFile, '');
  const child = spawn(process.execPath, ['-e', WRITER, String(port), logFile], { cwd: ROOT, stdio: 'ignore' });
  writeFileSync(path.join(dir, `${name}.pid`), String(child.pid));
  const events = path.join(dir, `${name}.events`);
  return {
    child,
    pid: child.pid!,
    acked: () => readFileSync(logFile, 'utf8').split('\n').filter(Boolean).map(Number),
    windows() {
      const lines = existsSync(events) ? readFileSync(events, 'utf8').split('\n').filter(Boolean) : [];
      const out: [number, number][] = [];
      for (const line of lines) {
        const [kind, at] = line.split(' ') as [string, string];
        if (kind === 'pause') out.push([Number(at), Infinity]);
        else if (out.length && out[out.length - 1]![1] === Infinity) out[out.length - 1]![1] = Number(at);
      }
      return out;
    },
    state: () =>
      readFileSync(`/proc/${child.pid}/stat`, 'utf8')
        .replace(/^.*\) /s, '')
        .split(' ')[0]!,
  };
}
