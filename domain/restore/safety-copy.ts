// The restore's safety copy: the target's data exactly as it is once its writers are paused, on the
// worker's disk before anything is replaced, so that a rollback never waits for storage and writers
// are not held while a whole dataset is serialised.
//
// The worker follows the target as a replica would: PSYNC ? -1 fixes a snapshot (+FULLRESYNC <replid>
// <offset>) while writers still run, the RDB streams to a file, and every write after the snapshot
// point arrives in the replication stream and is appended to a tail file. Once writers are paused,
// "sealing" waits until the tail reaches the target's master_repl_offset: base + tail is then exactly
// the paused data. Both files are fsynced and their SHA-256 recorded (record.json) before the restore
// replaces anything; a rollback and the stored safety backup use them only if they still hash so.
// The RDB of base + tail is made, when the tail holds writes, by replaying the tail onto a scratch
// server loaded from the base and saving it.
//
// Files live in the worker's lasting folder, under safety/<restore run id>/: a worker killed mid-way
// leaves them to the next worker on the host (state-dir.ts), and only the run whose id names the
// folder uses them.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { RunbookError } from '../../common/errors';
import type { SafetyCopySummary } from '../../common/restore-types';
import type { KeyspaceDb } from '../../common/types';
import { openBgsaveSnapshot } from '../capture/bgsave';
import { openReplicationStream } from '../capture/replication';
import { describeEndpoint, parseInfo, parseKeyspace, type Endpoint } from '../redis-target';
import { findLasting, lastingPath } from '../state-dir';
import { restoreWorkDir } from './local-rdb';
import { databasesFor, startScratch, stopOrphans } from './scratch';

export type { SafetyCopySummary };

const EOF_MARK = 40;
/** A tail larger than this (a target written hard while the copy waits) is given up: sealing captures anew. */
const MAX_TAIL_BYTES = 1 << 30;
const BASE = 'base.rdb';
const TAIL = 'tail.resp';
const RECORD = 'record.json';

export interface SafetyRecord {
  formatVersion: 1;
  target: string;
  /** The restore run that made it: the only one that may use it. */
  runId: string;
  host: string;
  method: 'replication' | 'bgsave-copy';
  /** When the snapshot was fixed (+FULLRESYNC, or BGSAVE asked for). */
  startedAt: string;
  /** When the tail was closed with writers paused: the data is as of then. */
  sealedAt: string;
  base: { file: string; size: number; sha256: string };
  /** The replication stream after the snapshot, up to the paused target's offset. */
  tail?: { file: string; size: number; sha256: string; writes: number; fromOffset: number; toOffset: number };
  /** INFO keyspace with writers paused. */
  keyspace: Record<string, KeyspaceDb>;
}

export const summaryOf = (r: SafetyRecord, capturedWhilePaused: boolean): SafetyCopySummary => ({
  host: r.host,
  method: r.method,
  startedAt: r.startedAt,
  sealedAt: r.sealedAt,
  baseBytes: r.base.size,
  tailBytes: r.tail?.size ?? 0,
  tailWrites: r.tail?.writes ?? 0,
  keyspace: r.keyspace,
  capturedWhilePaused,
});

function checkRunId(runId: string): string {
  if (!/^[0-9a-zA-Z-]{8,64}$/.test(runId)) throw new RunbookError('BAD_INPUT', `"${runId.slice(0, 80)}" is not a run id`);
  return runId;
}

const rel = (runId: string, file = RECORD) => path.join('safety', checkRunId(runId), file);

/** This process's folder for a run's safety copy (made if need be). */
export const newSafetyDir = (runId: string): string => path.dirname(lastingPath(rel(runId)));

/**
 * The folder holding a run's sealed copy on this host, if any. Dead workers' folders are adopted first,
 * so that no scratch server started later moves the files from under their reader.
 */
export function findSafetyDir(runId: string): string | undefined {
  stopOrphans();
  const found = findLasting(rel(runId));
  return found ? path.dirname(found) : undefined;
}

export async function readRecord(dir: string): Promise<SafetyRecord | undefined> {
  const text = await readFile(path.join(dir, RECORD), 'utf8').catch(() => undefined);
  return text ? (JSON.parse(text) as SafetyRecord) : undefined;
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // some filesystems refuse fsync on a directory
  } finally {
    await fh.close();
  }
}

/** Whole and durable: written beside, fsynced, renamed, the folder fsynced. */
export async function writeRecord(dir: string, record: SafetyRecord): Promise<void> {
  const tmp = path.join(dir, `${RECORD}.partial`);
  await writeFile(tmp, JSON.stringify(record, null, 2), { mode: 0o600 });
  await fsyncFile(tmp);
  await rename(tmp, path.join(dir, RECORD));
  await fsyncDir(dir);
}

/** Removes a run's safety copy from every worker folder on this host. */
export async function removeSafetyCopy(runId: string): Promise<void> {
  for (let i = 0; i < 16; i++) {
    const found = findLasting(rel(runId));
    if (!found) break;
    await rm(path.dirname(found), { recursive: true, force: true });
  }
  // A copy never sealed has no record: this process's unfinished files.
  await rm(path.dirname(lastingPath(rel(runId))), { recursive: true, force: true });
}

export async function sha256Of(file: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20, signal }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

/** Refuses a file that no longer hashes as recorded (changed or truncated since it was made). */
async function proven(dir: string, f: { file: string; size: number; sha256: string }, what: string, signal?: AbortSignal) {
  const file = path.join(dir, path.basename(f.file));
  const got = await sha256Of(file, signal).catch(() => undefined);
  if (!got || got.size !== f.size || got.sha256 !== f.sha256) {
    throw new RunbookError(
      'VERIFY_FAILED',
      `the safety copy's ${what} at ${file} ${got ? `no longer matches its SHA-256 (${f.sha256.slice(0, 12)}…)` : 'is missing'}`,
      'it was changed after it was made: it is not used',
    );
  }
  return file;
}

// ---- a RESP writer and a parser of the replication stream ----

const resp = (args: (string | Buffer)[]): Buffer =>
  Buffer.concat([
    Buffer.from(`*${args.length}\r\n`),
    ...args.flatMap((a) => {
      const b = Buffer.isBuffer(a) ? a : Buffer.from(a);
      return [Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')];
    }),
  ]);

/** The commands of a replication stream (RESP arrays; a bare newline is a keepalive). */
export function* commandsOf(buf: Buffer): Generator<Buffer[]> {
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] === 0x0a || buf[pos] === 0x0d) {
      pos++;
      continue;
    }
    if (buf[pos] !== 0x2a) throw new RunbookError('RDB_INVALID', `the replication stream is not RESP at byte ${pos}`);
    let e = buf.indexOf('\r\n', pos);
    if (e < 0) throw new RunbookError('RDB_INVALID', 'the replication stream ends inside a command');
    const n = Number(buf.toString('latin1', pos + 1, e));
    pos = e + 2;
    const args: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      e = buf.indexOf('\r\n', pos);
      if (e < 0 || buf[pos] !== 0x24) throw new RunbookError('RDB_INVALID', 'the replication stream ends inside a command');
      const len = Number(buf.toString('latin1', pos + 1, e));
      args.push(buf.subarray(e + 2, e + 2 + len));
      pos = e + 2 + len + 2;
    }
    if (pos > buf.length) throw new RunbookError('RDB_INVALID', 'the replication stream ends inside a command');
    yield args;
  }
}

/** Commands of the stream that change no data. */
const NOT_WRITES = new Set(['PING', 'REPLCONF', 'SELECT', 'MULTI', 'EXEC']);
const nameOf = (args: Buffer[]) => args[0]?.toString('latin1').toUpperCase() ?? '';

/** The target will not have the worker follow it (PSYNC or REPLCONF refused): not an error of the restore's. */
export class FollowRefused extends RunbookError {
  constructor(message: string) {
    super('CAPTURE_FAILED', message, 'the user needs ACL rights on PSYNC and REPLCONF (`+psync +replconf`) for the pause to be short');
  }
}

// ---- following the target ----

export interface FollowOptions {
  endpoint: Endpoint;
  targetName: string;
  dir: string;
  /** Longest silence during the handshake and the RDB. */
  idleTimeoutMs: number;
  connectTimeoutMs?: number;
  signal?: AbortSignal;
  onBytes?: (n: number) => void;
}

/** A replica session of the worker's: the snapshot's RDB in a file, and the writes after it in another. */
export class SafetySession {
  replid = '';
  fromOffset = 0;
  startedAt = new Date().toISOString();
  base = { size: 0, sha256: '' };
  private tailBytes = 0;
  private tailHash = createHash('sha256');
  private tailFile?: WriteStream;
  private socket?: net.Socket;
  private error?: Error;
  private ack?: NodeJS.Timeout;
  private closed = false;

  private constructor(private readonly opts: FollowOptions) {}

  /** Resolves once the snapshot's RDB is on disk (fsynced) and the writes after it are being followed. */
  static async open(opts: FollowOptions): Promise<SafetySession> {
    const s = new SafetySession(opts);
    await s.start();
    return s;
  }

  /** The replication offset the copy has reached. */
  offset(): number {
    return this.fromOffset + this.tailBytes;
  }

  get failure(): Error | undefined {
    return this.error;
  }

  private where() {
    return `target ${this.opts.targetName} (${describeEndpoint(this.opts.endpoint)})`;
  }

  private fail(err: Error): void {
    this.error ??= err;
    this.stop();
  }

  private stop(): void {
    this.closed = true;
    clearInterval(this.ack);
    this.socket?.destroy();
  }

  private start(): Promise<void> {
    const { endpoint: e, dir } = this.opts;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        this.opts.signal?.removeEventListener('abort', onAbort);
        if (err) {
          this.fail(err);
          reject(err);
        } else resolve();
      };
      const onAbort = () => settle(this.opts.signal!.reason as Error);
      if (this.opts.signal?.aborted) return onAbort();
      this.opts.signal?.addEventListener('abort', onAbort, { once: true });

      const socket = e.tls
        ? tls.connect({ host: e.host, port: e.port, servername: net.isIP(e.host) ? undefined : e.host })
        : net.connect({ host: e.host, port: e.port });
      this.socket = socket;
      // Before the snapshot is on disk a failure fails the opening; after it, the session.
      const failure = (err: Error) => (settled ? this.fail(err) : settle(err));
      socket.setTimeout(this.opts.connectTimeoutMs ?? 10_000);
      socket.on('timeout', () =>
        failure(new RunbookError('CAPTURE_FAILED', `${this.where()} sent nothing for ${Math.round(socket.timeout! / 1000)} s`)),
      );
      socket.on('error', (err) => failure(new RunbookError('CAPTURE_FAILED', `following ${this.where()} failed: ${err.message}`)));
      socket.on('close', () => {
        if (!this.closed) failure(new RunbookError('CAPTURE_FAILED', `${this.where()} closed the replication link`));
        clearInterval(this.ack);
      });
      socket.once(e.tls ? 'secureConnect' : 'connect', () => {
        socket.setTimeout(this.opts.idleTimeoutMs);
        const steps: { name: string; bytes: Buffer }[] = [];
        if (e.password) steps.push({ name: 'AUTH', bytes: resp(e.username ? ['AUTH', e.username, e.password] : ['AUTH', e.password]) });
        steps.push(
          { name: 'REPLCONF', bytes: resp(['REPLCONF', 'capa', 'eof', 'capa', 'psync2']) },
          { name: 'PSYNC', bytes: resp(['PSYNC', '?', '-1']) },
        );
        this.handshake = steps;
        socket.write(steps[0]!.bytes);
      });
      socket.on('data', (chunk: Buffer) => {
        try {
          this.onData(chunk, settle);
        } catch (err) {
          failure(err as Error);
        }
      });
      this.baseFile = createWriteStream(path.join(dir, `${BASE}.partial`), { mode: 0o600 });
      this.baseFile.on('error', (err) => failure(new RunbookError('CAPTURE_FAILED', `writing the safety copy failed: ${err.message}`)));
    });
  }

  private phase: 'handshake' | 'header' | 'rdb' | 'finishing' | 'tail' = 'handshake';
  private handshake: { name: string; bytes: Buffer }[] = [];
  private pending = Buffer.alloc(0);
  private baseFile?: WriteStream;
  private baseHash = createHash('sha256');
  private remaining = 0;
  private mark?: Buffer;
  private held = Buffer.alloc(0);

  private onData(chunk: Buffer, settle: (err?: Error) => void): void {
    if (this.phase === 'tail') return this.onTail(chunk);
    if (this.phase === 'rdb') return this.onRdb(chunk, settle);
    if (this.phase === 'finishing') {
      this.pending = Buffer.concat([this.pending, chunk]);
      return;
    }
    this.pending = Buffer.concat([this.pending, chunk]);
    for (;;) {
      // Bare newlines are the master's keepalives while it prepares the snapshot.
      let i = 0;
      while (i < this.pending.length && this.pending[i] === 0x0a) i++;
      this.pending = this.pending.subarray(i);
      const end = this.pending.indexOf('\r\n');
      if (end < 0) {
        if (this.pending.length > 64 * 1024) throw new RunbookError('CAPTURE_FAILED', `${this.where()} does not speak RESP`);
        return;
      }
      const line = this.pending.toString('latin1', 0, end);
      this.pending = this.pending.subarray(end + 2);
      if (line.startsWith('-')) {
        if (this.handshake[0]?.name === 'AUTH' || /^-(WRONGPASS|NOAUTH)/.test(line)) {
          throw new RunbookError('TARGET_AUTH_FAILED', `${this.where()} refused the credentials: ${line.slice(1, 200)}`);
        }
        // Not allowed to follow (ACL without +psync, a proxy, a managed service): the copy is taken whole later.
        throw new FollowRefused(`${this.where()} refused to be followed as a replica: ${line.slice(1, 200)}`);
      }
      if (this.phase === 'handshake') {
        if (line.startsWith('+FULLRESYNC')) {
          const [, replid = '', offset = '0'] = line.split(' ');
          this.replid = replid;
          this.fromOffset = Number(offset);
          this.startedAt = new Date().toISOString();
          this.phase = 'header';
          continue;
        }
        this.handshake.shift();
        const next = this.handshake[0];
        if (next) this.socket!.write(next.bytes);
        continue;
      }
      // header: $<len> (disk-based sync) or $EOF:<40-byte mark> (diskless)
      if (!line.startsWith('$')) throw new RunbookError('CAPTURE_FAILED', `${this.where()} sent "${line.slice(0, 40)}" instead of an RDB`);
      if (line.startsWith('$EOF:')) this.mark = Buffer.from(line.slice(5), 'latin1');
      else this.remaining = Number(line.slice(1));
      this.phase = 'rdb';
      const rest = this.pending;
      this.pending = Buffer.alloc(0);
      if (rest.length) this.onRdb(rest, settle);
      return;
    }
  }

  private writeBase(b: Buffer): void {
    if (!b.length) return;
    this.baseHash.update(b);
    this.base.size += b.length;
    this.opts.onBytes?.(b.length);
    if (!this.baseFile!.write(b)) {
      this.socket!.pause();
      this.baseFile!.once('drain', () => this.socket!.resume());
    }
  }

  private onRdb(chunk: Buffer, settle: (err?: Error) => void): void {
    let after: Buffer | undefined;
    if (this.mark) {
      const all = Buffer.concat([this.held, chunk]);
      // The mark is the last thing the master sends before it waits for our first ACK.
      if (all.length >= EOF_MARK && all.subarray(all.length - EOF_MARK).equals(this.mark)) {
        this.writeBase(all.subarray(0, all.length - EOF_MARK));
        after = Buffer.alloc(0);
      } else {
        const keep = Math.min(EOF_MARK, all.length);
        this.writeBase(all.subarray(0, all.length - keep));
        this.held = Buffer.from(all.subarray(all.length - keep));
      }
    } else {
      const take = Math.min(this.remaining, chunk.length);
      this.writeBase(chunk.subarray(0, take));
      this.remaining -= take;
      if (this.remaining === 0) after = chunk.subarray(take);
    }
    if (!after) return;
    this.phase = 'finishing';
    this.pending = Buffer.from(after);
    this.socket!.setTimeout(0);
    void this.finishBase().then(
      () => {
        this.phase = 'tail';
        // A write of the base's that waited for 'drain' paused the socket: an ending file emits none.
        this.socket?.resume();
        const early = this.pending;
        this.pending = Buffer.alloc(0);
        if (early.length) this.onTail(early);
        // The first ACK starts the command stream (diskless); later ones keep the link alive.
        this.sendAck();
        this.ack = setInterval(() => this.sendAck(), 1000);
        settle();
      },
      (err: Error) => settle(new RunbookError('CAPTURE_FAILED', `writing the safety copy failed: ${err.message}`)),
    );
  }

  private sendAck(): void {
    if (!this.closed) this.socket?.write(resp(['REPLCONF', 'ACK', String(this.offset())]));
  }

  private async finishBase(): Promise<void> {
    const file = this.baseFile!;
    await new Promise<void>((resolve, reject) => {
      file.once('error', reject);
      file.end(resolve);
    });
    const partial = path.join(this.opts.dir, `${BASE}.partial`);
    await fsyncFile(partial);
    await rename(partial, path.join(this.opts.dir, BASE));
    this.base.sha256 = this.baseHash.digest('hex');
    this.tailFile = createWriteStream(path.join(this.opts.dir, TAIL), { mode: 0o600 });
    this.tailFile.on('error', (err) => this.fail(new RunbookError('CAPTURE_FAILED', `writing the safety copy failed: ${err.message}`)));
  }

  private onTail(chunk: Buffer): void {
    this.tailHash.update(chunk);
    this.tailBytes += chunk.length;
    if (this.tailBytes > MAX_TAIL_BYTES) {
      return this.fail(
        new RunbookError('CAPTURE_FAILED', `more than ${MAX_TAIL_BYTES} bytes written to ${this.where()} since the snapshot`),
      );
    }
    if (!this.tailFile!.write(chunk)) {
      this.socket!.pause();
      this.tailFile!.once('drain', () => this.socket!.resume());
    }
  }

  /**
   * Writers are paused: waits until the copy holds everything up to the target's replication offset
   * now, then stops following and makes the tail durable. Returns the record, written.
   */
  async seal(client: Redis, timeoutMs: number, signal?: AbortSignal): Promise<SafetyRecord> {
    const info = parseInfo(await client.info('everything'));
    const target = Number(info.master_repl_offset ?? NaN);
    if (this.replid && info.master_replid && info.master_replid !== this.replid) {
      this.fail(new RunbookError('CAPTURE_FAILED', `${this.where()} changed its replication id since the snapshot (restarted?)`));
    }
    const deadline = Date.now() + timeoutMs;
    let acked = 0;
    while (!this.error && !(this.offset() >= target)) {
      if (Date.now() > deadline)
        this.fail(new RunbookError('CAPTURE_FAILED', `the copy did not reach ${this.where()}'s offset ${target} in time`));
      if (signal?.aborted) this.fail(signal.reason as Error);
      // A master that marked the replica online after its first ACK streams only from the next one:
      // writers wait, so it is not left to the once-a-second ACK.
      if (Date.now() - acked > 20) {
        this.sendAck();
        acked = Date.now();
      }
      await sleep(5);
    }
    if (this.error) throw this.error;
    const keyspace = parseKeyspace(info);
    this.stop();
    const tail = this.tailFile!;
    await new Promise<void>((resolve, reject) => {
      tail.once('error', reject);
      tail.end(resolve);
    });
    const tailPath = path.join(this.opts.dir, TAIL);
    await fsyncFile(tailPath);
    const sha256 = this.tailHash.digest('hex');
    let writes = 0;
    for (const c of commandsOf(await readFile(tailPath))) if (!NOT_WRITES.has(nameOf(c))) writes++;
    const record: SafetyRecord = {
      formatVersion: 1,
      target: this.opts.targetName,
      runId: path.basename(this.opts.dir),
      host: os.hostname(),
      method: 'replication',
      startedAt: this.startedAt,
      sealedAt: new Date().toISOString(),
      base: { file: BASE, ...this.base },
      tail: { file: TAIL, size: this.tailBytes, sha256, writes, fromOffset: this.fromOffset, toOffset: this.offset() },
      keyspace,
    };
    await writeRecord(this.opts.dir, record);
    return record;
  }

  /** Stops following and removes what was written. */
  async discard(): Promise<void> {
    this.error ??= new RunbookError('CAPTURE_FAILED', 'the safety copy was discarded');
    this.stop();
    this.baseFile?.destroy();
    this.tailFile?.destroy();
    await rm(this.opts.dir, { recursive: true, force: true });
  }
}

/**
 * The whole copy taken now, with writers paused (no followed copy to seal: a bgsave-copy target, or
 * the worker that followed it is gone): exact, at the cost of a serialisation inside the pause.
 */
export async function captureNow(
  opts: FollowOptions & { method: SafetyRecord['method']; client: Redis; dataDir?: string },
): Promise<SafetyRecord> {
  const startedAt = new Date().toISOString();
  const keyspace = parseKeyspace(parseInfo(await opts.client.info('keyspace')));
  const e = opts.endpoint;
  // The same captures as a backup's; nothing to follow afterwards, writers being paused.
  const { stream } =
    opts.method === 'replication'
      ? await openReplicationStream({
          host: e.host,
          port: e.port,
          username: e.username,
          password: e.password,
          tls: e.tls,
          idleTimeoutMs: opts.idleTimeoutMs,
          signal: opts.signal,
        })
      : await openBgsaveSnapshot(opts.client, { dataDir: opts.dataDir, signal: opts.signal });
  const partial = path.join(opts.dir, `${BASE}.partial`);
  const base = await copyHashed(stream, partial, opts.onBytes);
  await rename(partial, path.join(opts.dir, BASE));
  const record: SafetyRecord = {
    formatVersion: 1,
    target: opts.targetName,
    runId: path.basename(opts.dir),
    host: os.hostname(),
    method: opts.method,
    startedAt,
    sealedAt: new Date().toISOString(),
    base: { file: BASE, ...base },
    keyspace,
  };
  await writeRecord(opts.dir, record);
  return record;
}

async function copyHashed(source: Readable, file: string, onBytes?: (n: number) => void): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  const out = createWriteStream(file, { mode: 0o600 });
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
      onBytes?.(chunk.length);
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((resolve, reject) => {
      out.once('error', reject);
      out.end(resolve);
    });
  } catch (err) {
    out.destroy();
    throw err;
  }
  await fsyncFile(file);
  return { size, sha256: hash.digest('hex') };
}

/**
 * The RDB of the safety copy, proven: every file re-hashed against the record first. The base itself
 * when the tail holds no write; otherwise made for this caller alone (a scratch server loads the base,
 * the tail is replayed onto it, it saves) in this worker's private folder, and removed by `release`.
 */
export async function safetyRdb(
  dir: string,
  record: SafetyRecord,
  opts: { signal?: AbortSignal; onProgress?: (what: string) => void } = {},
): Promise<{ file: string; size: number; sha256: string; release: () => Promise<void> }> {
  const base = await proven(dir, record.base, 'snapshot', opts.signal);
  if (!record.tail || record.tail.writes === 0) return { ...record.base, file: base, release: async () => {} };
  const tail = await readFile(await proven(dir, record.tail, 'tail', opts.signal));
  const commands = [...commandsOf(tail)].filter((c) => !['PING', 'REPLCONF'].includes(nameOf(c)));
  const highest = Math.max(0, ...commands.filter((c) => nameOf(c) === 'SELECT').map((c) => Number(c[1]?.toString('latin1')) || 0));
  const scratch = await startScratch(base, undefined, undefined, Math.max(databasesFor(record.keyspace), highest + 1));
  const made = path.join(restoreWorkDir(), `safety-${record.runId}-${randomBytes(6).toString('hex')}.rdb`);
  try {
    opts.onProgress?.('replaying the writes after the snapshot');
    for (let i = 0; i < commands.length; i += 1000) {
      const batch = scratch.client.pipeline();
      for (const [name, ...args] of commands.slice(i, i + 1000)) batch.callBuffer(name!.toString('latin1'), ...args);
      for (const [err] of (await batch.exec()) ?? []) {
        if (err) throw new RunbookError('RDB_INVALID', `replaying the safety copy's tail failed: ${err.message}`);
      }
      opts.onProgress?.(`replayed ${Math.min(i + 1000, commands.length)} of ${commands.length} commands`);
    }
    opts.onProgress?.('saving');
    await scratch.client.call('SAVE');
    await rename(path.join(scratch.dir, 'dump.rdb'), made);
    const got = await sha256Of(made, opts.signal);
    return { file: made, ...got, release: () => rm(made, { force: true }) };
  } catch (err) {
    await rm(made, { force: true });
    throw err;
  } finally {
    await scratch.stop();
  }
}
