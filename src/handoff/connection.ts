/**
 * HandoffConnection: one AF_UNIX stream connection owned by the addon, on
 * which descriptors travel in both directions with the framing of wire.ts.
 * Reads and writes never block; readiness comes from a libuv poll handle.
 */
import { addon, AGAIN, TOO_MANY_REFS, POLL_READABLE, POLL_WRITABLE, type PeerCredentials, type Poller } from '../native.js';
import { ClosedError, FdsTruncatedError, TimeoutError, errorCode } from '../errors.js';
import { decodeMeta, type Meta } from '../meta.js';
import {
  FrameDecoder, RecordEncoder, DEFAULT_MAX_FDS_PER_MESSAGE, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_META_BYTES, type Record,
} from '../wire.js';
import { checkSocketPathLength } from '../socketpath.js';
import { debuglog, inspect } from 'node:util';

const debug = debuglog('graceful');

/**
 * ReceivedFd: a descriptor that arrived, its meta when it is flat JSON, and
 * the raw meta bytes. The connection's records decode `meta` from `raw` on
 * first access and keep the result; `raw` is a view of the bytes of the read
 * that brought it.
 */
export interface ReceivedFd {
  fd: number;
  meta: Meta | null;
  raw: Buffer;
}

/**
 * The ReceivedFd the connection hands out. `raw` and `meta` are accessors on
 * the prototype (enumerable, so for...in, deep equality, JSON and inspect
 * show fd, meta and raw): `raw` becomes a view of the read's copy on first
 * access, `meta` is parsed from it on first access; both are then kept, and
 * assigning either replaces what is kept.
 */
class ReceivedRecord implements ReceivedFd {
  #bytes: Buffer;
  #start: number;
  #end: number;
  #raw: Buffer | undefined = undefined;
  #meta: Meta | null | undefined = undefined;

  constructor(public fd: number, bytes: Buffer, start: number, end: number) {
    this.#bytes = bytes;
    this.#start = start;
    this.#end = end;
  }

  get raw(): Buffer {
    return (this.#raw ??= this.#bytes.subarray(this.#start, this.#end));
  }

  set raw(value: Buffer) {
    this.#raw = value;
  }

  get meta(): Meta | null {
    let meta = this.#meta;
    if (meta === undefined) meta = this.#meta = decodeMeta(this.raw);
    return meta;
  }

  set meta(value: Meta | null) {
    this.#meta = value;
  }

  toJSON(): { fd: number; meta: Meta | null; raw: Buffer } {
    return { fd: this.fd, meta: this.meta, raw: this.raw };
  }

  [inspect.custom](_depth: number, options: object): string {
    return inspect({ fd: this.fd, meta: this.meta, raw: this.raw }, options);
  }
}
Object.defineProperty(ReceivedRecord.prototype, 'raw', { enumerable: true });
Object.defineProperty(ReceivedRecord.prototype, 'meta', { enumerable: true });

/** RecordDecoder: the frame decoder, making ReceivedRecords. */
class RecordDecoder extends FrameDecoder {
  protected override makeRecord(fd: number, bytes: Buffer, start: number, end: number): Record {
    return new ReceivedRecord(fd, bytes, start, end);
  }
}

/** Outgoing: a descriptor to send and its meta. */
export interface OutgoingFd {
  fd: number;
  meta?: Meta | Uint8Array | null;
}

export interface ConnectionOptions {
  /** Largest data of one message this side sends (default 4096). */
  maxMessageBytes?: number;
  /** Most descriptors in one message this side sends (default 253). */
  maxFdsPerMessage?: number;
  /** Largest meta this side accepts (default 64 KiB). */
  maxMetaBytes?: number;
  /**
   * How many received records may wait for receive() before the connection
   * stops reading (default 256). The kernel then holds the rest, and the
   * sender waits; reading resumes once receive() or receiveBatch() take the
   * count below the mark. Beyond what the caller took, a connection holds at
   * most this many descriptors plus those of one message. Anything but a
   * number of at least 1 means the default.
   */
  highWaterMark?: number;
}

/** Default of ConnectionOptions.highWaterMark. */
export const DEFAULT_HIGH_WATER_MARK = 256;
/** Most recvmsg calls in one poll callback, so one fast peer cannot hold the event loop. */
const READS_PER_POLL = 32;
/** When reading once per wake-up, read on until EAGAIN every this many wake-ups (see readSome). */
const PROBE_EVERY = 8;
const NO_FDS: readonly number[] = Object.freeze([]);

interface Waiter {
  /** true: receiveBatch() (takes every record); false: receive() (takes one) */
  batch: boolean;
  resolve(v: ReceivedFd[] | ReceivedFd | null): void;
  reject(err: Error): void;
}

interface PendingWrite {
  data: Buffer;
  offset: number;
  fds: Int32Array | null;
  done?: { resolve(): void; reject(err: Error): void };
}

// One read buffer for every connection: reads are synchronous and the
// decoder copies each read once.
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const READ_FDS = new Int32Array(addon.maxFds + 1);

// One encoder for every connection: send() encodes, writes what the kernel
// takes straight from it and copies only the rest. A send() from a getter of
// a meta (send within send) gets an encoder of its own.
const ENCODER = new RecordEncoder();
let encoderBusy = false;
const SEND_FDS = new Int32Array(addon.maxFds);

/** connectPath connects to a UNIX socket, retrying while its backlog is full. */
export async function connectPath(path: string, api: string, timeoutMs = 10_000): Promise<number> {
  checkSocketPathLength(path, api);
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    const fd = addon.connect(path);
    if (fd !== AGAIN) return fd;
    if (Date.now() >= deadline) {
      throw new TimeoutError(`${api}: ${path} did not accept the connection within ${timeoutMs} ms (its backlog is full)`);
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * HandoffConnection: send() writes descriptors with their meta; received ones
 * wait in an inbox until receive() (one at a time) or receiveBatch() (all that
 * arrived, one promise for many) takes them. Each wake-up reads at most 32
 * times, and reading stops while highWaterMark records wait, so a peer that
 * sends faster than the program takes them is held back by the kernel instead
 * of filling this process with descriptors. close() releases everything.
 */
export class HandoffConnection {
  /** The connection's descriptor; owned by this object until close(). */
  readonly fd: number;
  private readonly poller: Poller;
  private readonly decoder: RecordDecoder;
  private readonly maxMessageBytes: number;
  private readonly maxFdsPerMessage: number;
  private readonly highWaterMark: number;
  private inbox: ReceivedFd[] = newInbox();
  private waiters: Waiter[] = [];
  private outbox: PendingWrite[] = [];
  private readError: Error | null = null;
  private writeError: Error | null = null;
  private eof = false;
  private closed = false;
  private events = 0;
  /** readSome reads until EAGAIN (true) or once (false) per wake-up */
  private probe = true;
  private unprobed = 0;
  private backoff: NodeJS.Timeout | null = null;
  private credentials: PeerCredentials | null = null;

  /** connect opens a connection to the hand-off socket at path. */
  static async connect(path: string, options: ConnectionOptions & { timeout?: number } = {}): Promise<HandoffConnection> {
    const fd = await connectPath(path, 'connect', options.timeout);
    return new HandoffConnection(fd, options);
  }

  /** The constructor takes ownership of fd, a connected AF_UNIX stream socket. */
  constructor(fd: number, options: ConnectionOptions = {}) {
    this.fd = fd;
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxFdsPerMessage = Math.min(options.maxFdsPerMessage ?? DEFAULT_MAX_FDS_PER_MESSAGE, addon.maxFds);
    const mark = options.highWaterMark;
    this.highWaterMark = typeof mark === 'number' && mark >= 1 ? Math.floor(mark) : DEFAULT_HIGH_WATER_MARK;
    this.decoder = new RecordDecoder(options.maxMetaBytes ?? DEFAULT_MAX_META_BYTES);
    this.poller = new addon.Poller(fd, (status, events) => this.onPoll(status, events));
    this.updatePoll();
  }

  /** peer returns SO_PEERCRED: the pid, uid and gid of the process at the other end. */
  peer(): PeerCredentials {
    this.credentials ??= addon.peercred(this.fd);
    return this.credentials;
  }

  /** isClosed tells whether close() ran. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * send writes descriptors with their meta in as few messages as fit. It
   * resolves once the kernel has every byte; the caller keeps ownership of
   * the descriptors and must keep them open until then. When nothing waits
   * to be written, it writes at once, and a send the kernel takes whole
   * resolves without waiting for the socket to poll writable.
   */
  send(items: readonly OutgoingFd[]): Promise<void> {
    if (this.closed) return Promise.reject(closedError('send'));
    if (this.writeError) return Promise.reject(this.writeError);
    const shared = !encoderBusy;
    const enc = shared ? ENCODER : new RecordEncoder();
    encoderBusy = true;
    try {
      return this.sendEncoded(items, enc);
    } finally {
      if (shared) {
        encoderBusy = false;
        enc.release();
      }
    }
  }

  private sendEncoded(items: readonly OutgoingFd[], enc: RecordEncoder): Promise<void> {
    const maxBytes = this.maxMessageBytes;
    const maxFds = this.maxFdsPerMessage;
    try {
      enc.encode(items, maxBytes, 'send');
    } catch (err) {
      return Promise.reject(err);
    }
    const count = enc.count;
    if (count === 0) return Promise.resolve();
    let r = 0; // the first record of the next message
    let sent = 0; // bytes of that message the kernel already has
    const direct = this.outbox.length === 0 && !this.backoff;
    if (direct) {
      // Fast path: straight from the encoder to the kernel, no queue.
      try {
        while (r < count) {
          const next = enc.messageEnd(r, maxBytes, maxFds);
          const start = enc.start(r);
          const length = enc.end(next) - start;
          let fds = enc.fds;
          if (r > 0) {
            fds = SEND_FDS;
            for (let i = r; i < next; i++) fds[i - r] = enc.fds[i]!;
          }
          const n = addon.sendmsg(this.fd, enc.bytes, start, length, fds, next - r);
          if (n < 0) {
            if (n === TOO_MANY_REFS) this.startBackoff();
            break;
          }
          if (n < length) {
            sent = n; // the descriptors went with the first byte
            break;
          }
          r = next;
        }
      } catch (err) {
        debug('hand-off connection fd %d: sendmsg failed: %s', this.fd, (err as Error).message);
        this.failWrites(err as Error);
        return Promise.reject(err);
      }
      if (r === count) return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      // What the kernel did not take waits in the outbox, copied out of the encoder.
      let write: PendingWrite | null = null;
      while (r < count) {
        const next = enc.messageEnd(r, maxBytes, maxFds);
        const start = enc.start(r) + sent;
        const data = Buffer.allocUnsafe(enc.end(next) - start);
        enc.bytes.copy(data, 0, start, enc.end(next));
        write = { data, offset: 0, fds: sent > 0 ? null : enc.fds.slice(r, next) };
        this.outbox.push(write);
        sent = 0;
        r = next;
      }
      write!.done = { resolve, reject };
      // After the fast path the kernel just said "not now": wait for writable.
      if (direct) this.updatePoll();
      else this.flushOutbox();
    });
  }

  /** receive resolves with the next descriptor, or null once the peer closed between messages. */
  receive(): Promise<ReceivedFd | null> {
    if (this.inbox.length > 0) {
      const next = this.inbox.shift()!;
      if ((this.events & POLL_READABLE) === 0) this.updatePoll();
      return Promise.resolve(next);
    }
    if (this.readError) return Promise.reject(this.readError);
    if (this.eof) return Promise.resolve(null);
    if (this.closed) return Promise.reject(closedError('receive'));
    return new Promise<ReceivedFd | null>((resolve, reject) => {
      this.waiters.push({ batch: false, resolve: resolve as Waiter['resolve'], reject });
      this.updatePoll();
    });
  }

  /**
   * receiveBatch resolves with every descriptor received so far and not yet
   * taken (at least one, waiting for it if need be), in order, or null once
   * the peer closed between messages; the caller owns every fd in the array.
   * It saves the promise per descriptor of receive() when many arrive; both
   * may be mixed, and each takes from the same queue in call order.
   */
  receiveBatch(): Promise<ReceivedFd[] | null> {
    if (this.inbox.length > 0) {
      const batch = this.inbox;
      this.inbox = newInbox();
      if ((this.events & POLL_READABLE) === 0) this.updatePoll();
      return Promise.resolve(batch);
    }
    if (this.readError) return Promise.reject(this.readError);
    if (this.eof) return Promise.resolve(null);
    if (this.closed) return Promise.reject(closedError('receiveBatch'));
    return new Promise<ReceivedFd[] | null>((resolve, reject) => {
      this.waiters.push({ batch: true, resolve: resolve as Waiter['resolve'], reject });
      this.updatePoll();
    });
  }

  /**
   * ref / unref: whether an open connection keeps the event loop alive (it
   * does by default) while it reads or writes. It does not while reading is
   * paused with highWaterMark records waiting and nothing to write, nor
   * after the peer's end: a receive() then needs no event to resolve.
   */
  ref(): this {
    this.poller.ref();
    return this;
  }

  unref(): this {
    this.poller.unref();
    return this;
  }

  /**
   * close releases the connection: the socket, and every received descriptor
   * not yet handed out by receive() or receiveBatch(). Pending sends and
   * receives reject.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.backoff) clearTimeout(this.backoff);
    this.poller.close();
    closeAll(this.inbox.map((r) => r.fd));
    this.inbox = newInbox();
    closeAll(this.decoder.takeFds());
    addon.close(this.fd);
    const err = closedError('the operation');
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.failWrites(err);
  }

  private onPoll(status: number, events: number): void {
    if (this.closed) return;
    if (status < 0) {
      this.onPollError(status);
      return;
    }
    if (events & POLL_WRITABLE) this.flushOutbox();
    if (events & POLL_READABLE) this.readSome();
    this.updatePoll();
  }

  /**
   * onPollError: libuv reports POLLERR as a bare status (-9, EBADF, when the
   * peer reset the connection) and stops the handle. One recvmsg and one
   * round of sendmsg surface the kernel's own error (ECONNRESET, EPIPE) on
   * the side concerned; only when they learn nothing do both sides fail with
   * the status.
   */
  private onPollError(status: number): void {
    this.events = -1; // the handle is stopped: updatePoll() starts it afresh
    let learned = false;
    // While reading is paused (highWaterMark), the read side finds out when it resumes.
    const reading = this.wantsToRead();
    if (reading) learned = this.readOnce() || this.eof || this.readError !== null;
    const writing = this.outbox.length > 0 && !this.backoff && !this.writeError;
    if (writing) {
      const before = this.outbox.length;
      const offset = this.outbox[0]!.offset;
      this.flushOutbox();
      learned ||= this.writeError !== null || this.outbox.length < before || this.outbox[0]!.offset !== offset;
    }
    if (!learned) {
      const err = new ClosedError(`poll failed on the hand-off connection (status ${status}): the peer is gone; open a new connection`);
      if (reading || !writing) this.failRead(err);
      this.failWrites(err);
    }
    this.deliver();
    this.updatePoll();
  }

  /** wantsToRead: reading is on while the stream is open and fewer than highWaterMark records wait. */
  private wantsToRead(): boolean {
    return !this.eof && !this.readError && this.inbox.length < this.highWaterMark;
  }

  /**
   * readSome reads up to READS_PER_POLL times, stopping at the high-water
   * mark, then hands out what came. Reading until the kernel says EAGAIN
   * costs one more recvmsg per wake-up, wasted when the peer sends one
   * message at a time (a request and its reply): once such a probe finds
   * nothing after a single message, readSome reads once per wake-up (the poll
   * is level-triggered: it reports at once whatever else is there) and
   * probes again every PROBE_EVERY wake-ups, in case a stream started.
   */
  private readSome(): void {
    const probing = this.probe || ++this.unprobed >= PROBE_EVERY;
    const limit = probing ? READS_PER_POLL : 1;
    let reads = 0;
    let drained = false;
    while (reads < limit && !this.closed && this.wantsToRead()) {
      if (!this.readOnce()) {
        drained = !this.eof && this.readError === null;
        break;
      }
      reads++;
    }
    if (probing) {
      this.probe = !(drained && reads <= 1);
      this.unprobed = 0;
    }
    this.deliver();
  }

  /** readOnce calls recvmsg once; true when it brought bytes, false on EAGAIN, end of stream or an error. */
  private readOnce(): boolean {
    let n: number;
    try {
      n = addon.recvmsg(this.fd, READ_BUFFER, 0, READ_BUFFER.length, READ_FDS);
    } catch (err) {
      // The addon raises MSG_CTRUNC with its code on a plain Error: give it its class.
      this.failRead(errorCode(err) === 'ERR_GRACEFUL_FDS_TRUNCATED' ? new FdsTruncatedError((err as Error).message, { cause: err }) : err as Error);
      return false;
    }
    if (n === AGAIN) return false;
    const count = READ_FDS[0]!;
    if (n === 0 && count === 0) {
      this.onEnd();
      return false;
    }
    let fds: readonly number[] = NO_FDS;
    if (count > 0) {
      const got = new Array<number>(count);
      for (let i = 0; i < count; i++) got[i] = READ_FDS[1 + i]!;
      fds = got;
    }
    try {
      this.decoder.pushTo(READ_BUFFER, fds, n === READ_BUFFER.length, this.inbox as Record[], n);
    } catch (err) {
      this.failRead(err as Error);
      return false;
    }
    return true;
  }

  private onEnd(): void {
    try {
      this.decoder.end();
    } catch (err) {
      this.failRead(err as Error);
      return;
    }
    this.eof = true;
  }

  private deliver(): void {
    while (this.waiters.length > 0) {
      if (this.inbox.length > 0) {
        const w = this.waiters.shift()!;
        if (w.batch) {
          const batch = this.inbox;
          this.inbox = newInbox();
          w.resolve(batch);
        } else {
          w.resolve(this.inbox.shift()!);
        }
      } else if (this.readError) this.waiters.shift()!.reject(this.readError);
      else if (this.eof) this.waiters.shift()!.resolve(null);
      else break;
    }
  }

  private failRead(err: Error): void {
    if (this.readError) return;
    debug('hand-off connection fd %d: read failed: %s', this.fd, err.message);
    this.readError = err;
    closeAll(this.decoder.takeFds());
  }

  private failWrites(err: Error): void {
    this.writeError ??= err;
    for (const w of this.outbox.splice(0)) w.done?.reject(err);
  }

  /**
   * startBackoff: the descriptors in flight exceed our open-file limit until
   * the peer reads some; the socket is writable meanwhile, so wait on a timer.
   */
  private startBackoff(): void {
    this.backoff = setTimeout(() => {
      this.backoff = null;
      this.flushOutbox();
    }, 2);
  }

  private flushOutbox(): void {
    while (this.outbox.length > 0 && !this.closed && !this.backoff) {
      const w = this.outbox[0]!;
      const fds = w.fds;
      let n: number;
      try {
        n = addon.sendmsg(this.fd, w.data, w.offset, w.data.length - w.offset, fds, fds ? fds.length : 0);
      } catch (err) {
        debug('hand-off connection fd %d: sendmsg failed: %s', this.fd, (err as Error).message);
        this.failWrites(err as Error);
        break;
      }
      if (n === AGAIN) break;
      if (n === TOO_MANY_REFS) {
        this.startBackoff();
        break;
      }
      w.fds = null; // the descriptors went with the first byte
      w.offset += n;
      if (w.offset === w.data.length) {
        this.outbox.shift();
        w.done?.resolve();
      }
    }
    this.updatePoll();
  }

  private updatePoll(): void {
    if (this.closed) return;
    const reading = this.wantsToRead();
    const writing = this.outbox.length > 0 && !this.backoff && !this.writeError;
    const events = (reading ? POLL_READABLE : 0) | (writing ? POLL_WRITABLE : 0);
    if (events === this.events) return;
    this.events = events;
    this.poller.start(events);
  }
}

/**
 * newInbox: an empty list made for objects from the start (an array literal
 * starts out holding small integers, and the first record pushed would make
 * V8 call its generic push instead of the inlined one).
 */
const INBOX_SEED: ReceivedFd = Object.freeze({ fd: -1, meta: null, raw: Buffer.alloc(0) });
function newInbox(): ReceivedFd[] {
  const list: ReceivedFd[] = [INBOX_SEED];
  list.length = 0;
  return list;
}

function closedError(what: string): Error {
  return new ClosedError(`${what} on a hand-off connection that is closed: open a new one`);
}

/**
 * closeAll closes every descriptor of fds, going on past a failure. EBADF
 * means one was closed already: a double close, which may have closed a
 * number reused meanwhile; it is a bug, so it becomes a process warning
 * (code GRACEFUL_EBADF), never silence.
 */
export function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      addon.close(fd);
    } catch (err) {
      if (errorCode(err) === 'EBADF') {
        process.emitWarning(`close(${fd}) failed with EBADF: the descriptor was closed already (closed twice, or never ours)`, { code: 'GRACEFUL_EBADF' });
      } else {
        debug('close(%d) failed: %s', fd, errorCode(err));
      }
    }
  }
}
