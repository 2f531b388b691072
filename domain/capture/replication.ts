// Capture an RDB the way `redis-cli --rdb` does (redis-cli.c sendSync/getRDB): pose as a replica,
// ask for a full sync and keep only the RDB payload. No fork is started on our side and nothing is
// written on the server's disk when it syncs disklessly.
//
// Wire protocol, in order:
//   [AUTH [user] pass]        → +OK
//   REPLCONF capa eof         → +OK     (we understand the diskless "$EOF:<mark>" framing)
//   REPLCONF rdb-only 1       → +OK | -ERR (Redis < 6.2 does not know it; not fatal)
//   SYNC (inline)             → "\n"* then "$<len>\r\n" + len bytes, or "$EOF:<40 bytes>\r\n" + bytes + the same 40 bytes
// Without rdb-only the server goes on with the replication stream after the RDB, so the socket is
// closed the moment the RDB ends. With the EOF framing a server only streams commands after the
// replica's first REPLCONF ACK, which we never send, so the mark is always the last thing we read;
// like Redis itself, the mark is looked for at the end of what has been read so far.
//
// Cost: every chunk handed on costs a trip through the pipeline's stages and a write (and wake-up) of
// each program fed (zstd, redis-check-rdb), and Redis sends 16 KiB at a time. Plain TCP reads
// therefore land, without a copy, one after the other in 1 MiB slabs, and what lies contiguous in a
// slab is handed on as one chunk of up to 512 KiB (or after 5 ms): about 10x fewer chunks than reads.
import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { RunbookError } from '../../common/errors';

export interface ReplicationCaptureOptions {
  host: string;
  port: number;
  username?: string;
  password?: string;
  tls?: boolean;
  /** TCP (and TLS) connect, DNS included. Default 10 s. */
  connectTimeoutMs?: number;
  /** Longest silence from the server during the handshake or the transfer; 0 turns it off. Default 60 s. */
  idleTimeoutMs?: number;
  /** Refuse RDBs larger than this. Default 1 TiB. */
  maxBytes?: number;
  signal?: AbortSignal;
}

export interface ReplicationCapture {
  /** Exactly the RDB bytes (starting "REDIS00xx"); ends on success, errors with a RunbookError otherwise. */
  stream: Readable;
  /** 'length': the server said the size up front (disk-based sync); 'eof-mark': diskless, size unknown until the end. */
  mode: 'length' | 'eof-mark';
  /** The size the server announced, in 'length' mode. */
  declaredSize?: number;
  /** Whether the server accepted REPLCONF rdb-only (Redis ≥ 6.2). */
  rdbOnly: boolean;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_BYTES = 2 ** 40;
const EOF_MARK_SIZE = 40; // RDB_EOF_MARK_SIZE in Redis
const MAX_LINE = 64 * 1024; // a handshake reply longer than this is not Redis talking
// Large enough that socket reads rarely fill it, so the socket is not paused and resumed on every
// chunk; small enough that memory stays flat whatever the RDB size.
const STREAM_HIGH_WATER_MARK = 4 * 1024 * 1024;
const SLAB_SIZE = 1024 * 1024;
const MIN_READ = 64 * 1024; // a slab with less room left is replaced
const CHUNK_SIZE = 512 * 1024; // hand on at this size...
const CHUNK_DELAY_MS = 5; // ...or this long after the first byte waiting
const EMPTY = Buffer.alloc(0);

const ACL_HINT =
  'the user needs ACL rights on SYNC and REPLCONF, e.g. `ACL SETUSER <user> +sync +replconf`; ' +
  'managed services often forbid SYNC altogether — use the bgsave-copy capture method there';

type Phase = 'connecting' | 'handshake' | 'transfer' | 'done' | 'failed';
type Step = 'auth' | 'capa' | 'rdb-only' | 'sync';

/** Connect, handshake, and resolve once the server has announced the transfer. */
export async function openReplicationStream(opts: ReplicationCaptureOptions): Promise<ReplicationCapture> {
  return new Promise((resolve, reject) => {
    new ReplicationSession(opts, resolve, reject).start();
  });
}

class ReplicationSession {
  private readonly where: string;
  private readonly idleMs: number;
  private readonly maxBytes: number;
  private socket?: net.Socket;
  private phase: Phase = 'connecting';
  private step: Step = 'auth';
  private connectTimer?: NodeJS.Timeout;
  private settled = false;
  private pending: Buffer = EMPTY; // handshake bytes not yet parsed
  private rdbOnly = false;
  private stream?: Readable;
  private paused = false;
  private reading = false; // the consumer has asked for data at least once
  private deferredError?: Error; // a failure before that, delivered on the first read
  // transfer state
  private mode: 'length' | 'eof-mark' = 'length';
  private declared = 0;
  private remaining = 0;
  private received = 0; // payload bytes read so far (in eof-mark mode, including the held-back tail)
  private mark: Buffer = EMPTY;
  private tail: Buffer = EMPTY; // eof-mark mode: the last ≤ 40 bytes, held back until we know they are not the mark
  // Plain TCP reads land here, each after the one before; a slab is never written twice.
  private slab: Buffer = EMPTY;
  private slabUsed = 0;
  private out?: Buffer; // payload not yet handed on
  private outTimer?: NodeJS.Timeout;

  constructor(
    private readonly opts: ReplicationCaptureOptions,
    private readonly resolve: (c: ReplicationCapture) => void,
    private readonly reject: (e: unknown) => void,
  ) {
    this.where = `${opts.host}:${opts.port}`;
    this.idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  }

  start(): void {
    const { opts } = this;
    if (!opts.host || !Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
      this.settle(new RunbookError('BAD_INPUT', `invalid Redis address "${this.where}"`));
      return;
    }
    if (opts.signal?.aborted) {
      this.settle(abortReason(opts.signal));
      return;
    }
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });

    const connectMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.connectTimer = setTimeout(
      () =>
        this.fail(
          new RunbookError(
            'TARGET_UNREACHABLE',
            `could not connect to Redis at ${this.where} within ${connectMs} ms`,
            'check the host, the port, firewalls and security groups',
          ),
        ),
      connectMs,
    );
    let socket: net.Socket;
    if (opts.tls) {
      socket = tls.connect({ host: opts.host, port: opts.port, servername: net.isIP(opts.host) ? undefined : opts.host });
      socket.once('secureConnect', this.onConnected);
      socket.on('data', this.onData);
    } else {
      socket = net.connect({
        host: opts.host,
        port: opts.port,
        onread: { buffer: this.nextReadBuffer, callback: this.onSlabRead },
      });
      socket.once('connect', this.onConnected);
    }
    this.socket = socket;
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.on('timeout', this.onIdle);
  }

  // ---- socket events ----

  private readonly onConnected = (): void => {
    if (this.phase !== 'connecting') return;
    clearTimeout(this.connectTimer);
    this.phase = 'handshake';
    const s = this.socket!;
    s.setNoDelay(true);
    s.setKeepAlive(true, 30_000);
    if (this.idleMs > 0) s.setTimeout(this.idleMs);
    const { username, password } = this.opts;
    if (password !== undefined && password !== '') {
      this.step = 'auth';
      s.write(respCommand(username ? ['AUTH', username, password] : ['AUTH', password]));
    } else {
      this.sendCapa();
    }
  };

  private readonly onData = (chunk: Buffer): void => {
    if (this.phase === 'transfer') this.onPayload(chunk);
    else if (this.phase === 'handshake') this.onHandshakeData(chunk);
  };

  /** Where the next plain TCP read lands: the rest of the slab. */
  private readonly nextReadBuffer = (): Buffer => {
    if (this.slab.length - this.slabUsed < MIN_READ) {
      if (this.phase === 'transfer' && !this.handOn()) this.pauseSocket();
      this.slab = Buffer.allocUnsafe(SLAB_SIZE);
      this.slabUsed = 0;
    }
    return this.slab.subarray(this.slabUsed);
  };

  private readonly onSlabRead = (n: number, buf: Uint8Array): boolean => {
    // `buf` is the slab from slabUsed on: a view of what was read stays valid, nothing overwrites it.
    const chunk = this.slab.subarray(this.slabUsed, this.slabUsed + n);
    if (buf.byteOffset !== chunk.byteOffset || buf.buffer !== chunk.buffer) {
      this.fail(captureFailed(`internal error: a read from ${this.where} landed outside its buffer`));
      return false;
    }
    this.slabUsed += n;
    this.onData(chunk);
    return true;
  };

  private readonly onError = (err: Error): void => {
    if (this.phase === 'connecting') {
      this.fail(
        new RunbookError(
          'TARGET_UNREACHABLE',
          `could not connect to Redis at ${this.where}: ${err.message}`,
          this.opts.tls
            ? 'check the host, the port, and that the server speaks TLS with a certificate this machine trusts'
            : 'check the host, the port, firewalls, and whether the server needs TLS',
        ),
      );
    } else {
      this.fail(captureFailed(`connection to ${this.where} failed ${this.progress()}: ${err.message}`));
    }
  };

  private readonly onClose = (): void => {
    switch (this.phase) {
      case 'connecting':
        this.fail(new RunbookError('TARGET_UNREACHABLE', `connection to ${this.where} closed before it was established`));
        break;
      case 'handshake':
        this.fail(
          captureFailed(
            `${this.where} closed the connection during the replication handshake (waiting for the reply to ${stepName(this.step)})`,
            'look at the server log; a server at maxclients, in protected mode, or with a replica output buffer limit can drop the link',
          ),
        );
        break;
      case 'transfer':
        this.fail(
          captureFailed(
            `${this.where} closed the connection ${this.progress()}`,
            'the server log says why (e.g. client-output-buffer-limit replica, repl-timeout, or a restart); retrying usually helps',
          ),
        );
        break;
      default:
    }
  };

  private readonly onIdle = (): void => {
    this.fail(
      captureFailed(
        `stalled: nothing from ${this.where} for ${this.idleMs} ms ${this.phase === 'transfer' ? this.progress() : `waiting for the reply to ${stepName(this.step)}`}`,
        'the server may be busy (a long fork or BGSAVE), or the network path is broken; raise idleTimeoutMs if it is just slow',
      ),
    );
  };

  private readonly onAbort = (): void => {
    this.fail(abortReason(this.opts.signal!));
  };

  // ---- handshake ----

  private onHandshakeData(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.phase === 'handshake') {
      let buf = this.pending;
      if (this.step === 'sync') {
        // Before the payload header the server sends a "\n" every second as a keep-alive.
        let i = 0;
        while (i < buf.length && buf[i] === 0x0a) i++;
        if (i > 0) buf = this.pending = buf.subarray(i);
      }
      const nl = buf.indexOf(0x0a);
      if (nl < 0) {
        if (buf.length > MAX_LINE) this.fail(unexpectedReply(this.where, this.step, buf.subarray(0, 80)));
        return;
      }
      const end = nl > 0 && buf[nl - 1] === 0x0d ? nl - 1 : nl;
      const line = buf.subarray(0, end);
      this.pending = buf.subarray(nl + 1);
      this.onReplyLine(line);
    }
  }

  private onReplyLine(line: Buffer): void {
    const first = line[0];
    const text = (): string => line.toString('utf8');
    switch (this.step) {
      case 'auth':
        if (isOk(line)) this.sendCapa();
        else if (first === 0x2d) this.fail(this.authError(text().slice(1)));
        else this.fail(unexpectedReply(this.where, this.step, line));
        return;
      case 'capa':
        if (isOk(line)) {
          this.step = 'rdb-only';
          this.socket!.write(respCommand(['REPLCONF', 'rdb-only', '1']));
        } else if (first === 0x2d) this.fail(this.serverError(text().slice(1), 'REPLCONF capa eof'));
        else this.fail(unexpectedReply(this.where, this.step, line));
        return;
      case 'rdb-only':
        // An error here is fine: before 6.2 the server sends the RDB and then the replication stream.
        if (isOk(line)) this.rdbOnly = true;
        else if (first !== 0x2d) {
          this.fail(unexpectedReply(this.where, this.step, line));
          return;
        }
        this.step = 'sync';
        this.socket!.write('SYNC\r\n');
        return;
      case 'sync':
        this.onSyncHeader(line);
        return;
    }
  }

  private sendCapa(): void {
    this.step = 'capa';
    this.socket!.write(respCommand(['REPLCONF', 'capa', 'eof']));
  }

  private onSyncHeader(line: Buffer): void {
    if (line[0] === 0x2d) {
      this.fail(this.serverError(line.toString('utf8', 1), 'SYNC'));
      return;
    }
    if (line[0] !== 0x24) {
      this.fail(unexpectedReply(this.where, 'sync', line));
      return;
    }
    if (line.length === 5 + EOF_MARK_SIZE && line.toString('latin1', 1, 5) === 'EOF:') {
      this.mode = 'eof-mark';
      this.mark = Buffer.from(line.subarray(5)); // a copy: the line is a view of a socket chunk
    } else {
      const digits = line.toString('latin1', 1);
      if (!/^\d{1,20}$/.test(digits)) {
        this.fail(unexpectedReply(this.where, 'sync', line));
        return;
      }
      const size = Number(digits);
      if (!Number.isSafeInteger(size) || size > this.maxBytes) {
        this.fail(
          captureFailed(
            `${this.where} announced an RDB of ${digits} bytes, more than the ${this.maxBytes}-byte limit`,
            'raise maxBytes if the dataset really is that large',
          ),
        );
        return;
      }
      this.mode = 'length';
      this.declared = this.remaining = size;
    }
    this.startTransfer();
  }

  // ---- transfer ----

  private startTransfer(): void {
    this.phase = 'transfer';
    // Nothing is read or pushed until the consumer first reads: the caller only gets the stream a
    // microtask from now, and an error emitted before it can listen would be an uncaught exception.
    this.pauseSocket();
    this.stream = new Readable({
      highWaterMark: STREAM_HIGH_WATER_MARK,
      read: () => this.onRead(),
      destroy: (err, cb) => {
        // The consumer gave up (or fail() is tearing down): drop the link, the server cleans up.
        if (this.phase === 'transfer') {
          this.phase = 'failed';
          this.cleanup();
        }
        cb(err);
      },
    });
    this.settled = true;
    this.resolve({
      stream: this.stream,
      mode: this.mode,
      declaredSize: this.mode === 'length' ? this.declared : undefined,
      rdbOnly: this.rdbOnly,
    });
    if (this.mode === 'length' && this.remaining === 0) this.finish();
  }

  private onRead(): void {
    if (!this.reading) {
      this.reading = true;
      if (this.deferredError) {
        this.stream!.destroy(this.deferredError);
        return;
      }
      // Payload bytes that came in the same read as the header.
      const rest = this.pending;
      this.pending = EMPTY;
      if (rest.length > 0 && !this.onPayload(rest)) return;
    }
    this.resumeSocket();
  }

  /** Push one socket chunk; false when the socket should stay paused (backpressure, or the end). */
  private onPayload(chunk: Buffer): boolean {
    let more = true;
    if (this.mode === 'length') {
      const n = Math.min(chunk.length, this.remaining);
      this.remaining -= n;
      this.received += n;
      // Anything past the declared length is the replication stream of a server without rdb-only.
      if (n > 0) more = this.emit(n === chunk.length ? chunk : chunk.subarray(0, n));
      if (this.remaining === 0) {
        this.finish();
        return false;
      }
    } else {
      this.received += chunk.length;
      if (chunk.length >= EOF_MARK_SIZE) {
        const cut = chunk.length - EOF_MARK_SIZE;
        if (this.tail.length > 0) more = this.emit(this.tail);
        if (cut > 0) more = this.emit(chunk.subarray(0, cut)) && more;
        this.tail = chunk.subarray(cut);
      } else {
        // A small read: at most 79 bytes to copy.
        const joined = Buffer.concat([this.tail, chunk]);
        const cut = Math.max(0, joined.length - EOF_MARK_SIZE);
        if (cut > 0) more = this.emit(joined.subarray(0, cut));
        this.tail = joined.subarray(cut);
      }
      if (this.tail.length === EOF_MARK_SIZE && this.tail.equals(this.mark)) {
        this.received -= EOF_MARK_SIZE;
        this.finish();
        return false;
      }
      if (this.received - this.tail.length > this.maxBytes) {
        this.fail(
          captureFailed(
            `the RDB from ${this.where} passed the ${this.maxBytes}-byte limit without ending`,
            'raise maxBytes if the dataset really is that large',
          ),
        );
        return false;
      }
    }
    if (!more) this.pauseSocket();
    return more;
  }

  /**
   * Queue payload bytes to hand on: bytes right after the queued ones in the same slab extend them
   * (no copy); anything else hands the queue on first. False when the consumer has enough.
   */
  private emit(piece: Buffer): boolean {
    const out = this.out;
    let more = true;
    if (out && piece.buffer === this.slab.buffer && out.buffer === piece.buffer && out.byteOffset + out.length === piece.byteOffset) {
      this.out = Buffer.from(out.buffer, out.byteOffset, out.length + piece.length);
    } else {
      if (out) more = this.handOn();
      this.out = piece;
    }
    if (this.out!.length >= CHUNK_SIZE) return this.handOn() && more;
    this.outTimer ??= setTimeout(() => {
      this.outTimer = undefined;
      if (this.phase === 'transfer' && !this.handOn()) this.pauseSocket();
    }, CHUNK_DELAY_MS);
    return more;
  }

  /** Hand the queued payload on; false when the consumer has enough. */
  private handOn(): boolean {
    clearTimeout(this.outTimer);
    this.outTimer = undefined;
    const out = this.out;
    this.out = undefined;
    return out ? this.stream!.push(out) : true;
  }

  private pauseSocket(): void {
    if (this.paused) return;
    this.paused = true;
    // A slow consumer is not a stalled server: no idle timer while we are the ones not reading.
    this.socket!.setTimeout(0);
    this.socket!.pause();
  }

  private resumeSocket(): void {
    if (!this.paused || this.phase !== 'transfer') return;
    this.paused = false;
    if (this.idleMs > 0) this.socket!.setTimeout(this.idleMs);
    this.socket!.resume();
  }

  private finish(): void {
    this.handOn();
    this.phase = 'done';
    this.cleanup();
    this.stream!.push(null);
  }

  // ---- failure ----

  private fail(err: unknown): void {
    if (this.phase === 'done' || this.phase === 'failed') return;
    this.phase = 'failed';
    this.cleanup();
    if (!this.settled) this.settle(err);
    else if (this.reading) this.stream!.destroy(err as Error);
    else this.deferredError = err as Error;
  }

  private settle(err: unknown): void {
    this.settled = true;
    this.reject(err);
  }

  private cleanup(): void {
    clearTimeout(this.connectTimer);
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    this.pending = EMPTY;
    this.tail = EMPTY;
    clearTimeout(this.outTimer);
    this.out = undefined;
    if (this.socket && !this.socket.destroyed) {
      this.socket.setTimeout(0);
      this.socket.destroy();
    }
  }

  private progress(): string {
    if (this.phase !== 'transfer') return 'during the replication handshake';
    return this.mode === 'length'
      ? `after ${this.received} of ${this.declared} bytes`
      : `after ${this.received - this.tail.length} bytes, before the end-of-RDB mark`;
  }

  private authError(message: string): RunbookError {
    const msg = redact(message, this.opts.password);
    return new RunbookError(
      'TARGET_AUTH_FAILED',
      `authentication to ${this.where}${this.opts.username ? ` as "${this.opts.username}"` : ''} failed: ${msg}`,
      'check the username and password (or the secret they come from)',
    );
  }

  /** An error reply to REPLCONF or SYNC. */
  private serverError(message: string, command: string): RunbookError {
    const msg = redact(message, this.opts.password);
    if (/^(NOAUTH|WRONGPASS)\b/.test(msg)) {
      return new RunbookError(
        'TARGET_AUTH_FAILED',
        `${this.where} refused ${command}: ${msg}`,
        'the server requires a password: set one for this target',
      );
    }
    if (/^LOADING\b/.test(msg)) {
      return new RunbookError('TARGET_LOADING', `${this.where} is loading its dataset: ${msg}`, 'retry once loading has finished');
    }
    if (/^NOPERM\b/.test(msg)) {
      return new RunbookError('CAPTURE_FAILED', `${this.where} refused ${command}: ${msg}`, ACL_HINT);
    }
    return new RunbookError(
      'CAPTURE_FAILED',
      `${this.where} refused ${command}: ${msg}`,
      command === 'SYNC'
        ? 'some servers (managed services, proxies, or a replica not linked to its master) refuse SYNC; the bgsave-copy method may work'
        : undefined,
    );
  }
}

function respCommand(args: string[]): Buffer {
  const parts: string[] = [`*${args.length}\r\n`];
  for (const a of args) parts.push(`$${Buffer.byteLength(a, 'utf8')}\r\n`, a, '\r\n');
  return Buffer.from(parts.join(''), 'utf8');
}

function isOk(line: Buffer): boolean {
  return line.length === 3 && line[0] === 0x2b && line[1] === 0x4f && line[2] === 0x4b; // +OK
}

function stepName(step: Step): string {
  return step === 'auth' ? 'AUTH' : step === 'capa' ? 'REPLCONF capa eof' : step === 'rdb-only' ? 'REPLCONF rdb-only 1' : 'SYNC';
}

function unexpectedReply(where: string, step: Step, line: Buffer): RunbookError {
  const shown = JSON.stringify(line.subarray(0, 80).toString('latin1'));
  return captureFailed(
    `unexpected reply from ${where} to ${stepName(step)}: ${shown}${line.length > 80 ? '…' : ''}`,
    'this does not look like a Redis server (or a proxy in between does not pass replication through)',
  );
}

function captureFailed(message: string, hint?: string): RunbookError {
  return new RunbookError('CAPTURE_FAILED', message, hint);
}

function redact(message: string, secret: string | undefined): string {
  return secret ? message.split(secret).join('***') : message;
}

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error(typeof r === 'string' ? r : 'replication capture aborted');
  e.name = 'AbortError';
  return e;
}
