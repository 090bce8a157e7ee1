/**
 * HandoffConnection: one AF_UNIX stream connection owned by the addon, on
 * which descriptors travel in both directions with the framing of wire.ts.
 * Reads and writes never block; readiness comes from a libuv poll handle.
 */
import { addon, AGAIN, TOO_MANY_REFS, POLL_READABLE, POLL_WRITABLE, type PeerCredentials, type Poller } from '../native.js';
import { ClosedError, TimeoutError, GracefulError, errorCode } from '../errors.js';
import { decodeMeta, encodeMeta, type Meta } from '../meta.js';
import { encodeMessages, FrameDecoder, DEFAULT_MAX_FDS_PER_MESSAGE, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_META_BYTES } from '../wire.js';
import { checkSocketPathLength } from '../socketpath.js';
import { debuglog } from 'node:util';

const debug = debuglog('graceful');

/** ReceivedFd: a descriptor that arrived, its meta when it is flat JSON, and the raw meta bytes. */
export interface ReceivedFd {
  fd: number;
  meta: Meta | null;
  raw: Buffer;
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
}

interface PendingWrite {
  data: Buffer;
  offset: number;
  fds: number[] | null;
  done?: { resolve(): void; reject(err: Error): void };
}

// One read buffer for every connection: reads are synchronous and the
// decoder copies what it keeps.
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const READ_FDS = new Int32Array(addon.maxFds + 1);

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

export class HandoffConnection {
  /** The connection's descriptor; owned by this object until close(). */
  readonly fd: number;
  private readonly poller: Poller;
  private readonly decoder: FrameDecoder;
  private readonly maxMessageBytes: number;
  private readonly maxFdsPerMessage: number;
  private inbox: ReceivedFd[] = [];
  private waiters: { resolve(v: ReceivedFd | null): void; reject(err: Error): void }[] = [];
  private outbox: PendingWrite[] = [];
  private readError: Error | null = null;
  private writeError: Error | null = null;
  private eof = false;
  private closed = false;
  private events = 0;
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
    this.decoder = new FrameDecoder(options.maxMetaBytes ?? DEFAULT_MAX_META_BYTES);
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
   * the descriptors and must keep them open until then.
   */
  send(items: readonly OutgoingFd[]): Promise<void> {
    if (this.closed) return Promise.reject(closedError('send'));
    if (this.writeError) return Promise.reject(this.writeError);
    let messages;
    try {
      messages = encodeMessages(
        items.map(({ fd, meta }) => ({ fd, meta: encodeMeta(meta, 'send') })),
        this.maxMessageBytes,
        this.maxFdsPerMessage,
      );
    } catch (err) {
      return Promise.reject(err);
    }
    if (messages.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      messages.forEach((m, i) => {
        const write: PendingWrite = { data: m.data, offset: 0, fds: m.fds };
        if (i === messages.length - 1) write.done = { resolve, reject };
        this.outbox.push(write);
      });
      this.flushOutbox();
    });
  }

  /** receive resolves with the next descriptor, or null once the peer closed between messages. */
  receive(): Promise<ReceivedFd | null> {
    const next = this.inbox.shift();
    if (next) return Promise.resolve(next);
    if (this.readError) return Promise.reject(this.readError);
    if (this.eof) return Promise.resolve(null);
    if (this.closed) return Promise.reject(closedError('receive'));
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.updatePoll();
    });
  }

  /** ref / unref: whether an open connection keeps the event loop alive (it does by default). */
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
   * not yet handed out by receive(). Pending sends and receives reject.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.backoff) clearTimeout(this.backoff);
    this.poller.close();
    closeAll(this.inbox.map((r) => r.fd));
    this.inbox = [];
    closeAll(this.decoder.takeFds());
    addon.close(this.fd);
    const err = closedError('the operation');
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.failWrites(err);
  }

  private onPoll(status: number, events: number): void {
    if (this.closed) return;
    if (status < 0) {
      const err = new GracefulError('ERR_GRACEFUL_CLOSED', `poll failed on the hand-off connection (status ${status})`);
      this.failRead(err);
      this.failWrites(err);
      return;
    }
    if (events & POLL_WRITABLE) this.flushOutbox();
    if (events & POLL_READABLE) this.readAll();
    this.updatePoll();
  }

  private readAll(): void {
    while (!this.closed && !this.eof && !this.readError) {
      let n: number;
      try {
        n = addon.recvmsg(this.fd, READ_BUFFER, 0, READ_BUFFER.length, READ_FDS);
      } catch (err) {
        this.failRead(err as Error);
        return;
      }
      if (n === AGAIN) return;
      const count = READ_FDS[0]!;
      const fds = count === 0 ? [] : Array.from(READ_FDS.subarray(1, 1 + count));
      if (n === 0 && count === 0) {
        this.onEnd();
        return;
      }
      try {
        for (const { fd, raw } of this.decoder.push(READ_BUFFER.subarray(0, n), fds, n === READ_BUFFER.length)) {
          this.inbox.push({ fd, raw, meta: decodeMeta(raw) });
        }
      } catch (err) {
        this.failRead(err as Error);
        return;
      }
      this.deliver();
    }
  }

  private onEnd(): void {
    try {
      this.decoder.end();
    } catch (err) {
      this.failRead(err as Error);
      return;
    }
    this.eof = true;
    this.deliver();
  }

  private deliver(): void {
    while (this.waiters.length > 0) {
      const next = this.inbox.shift();
      if (next) this.waiters.shift()!.resolve(next);
      else if (this.readError) this.waiters.shift()!.reject(this.readError);
      else if (this.eof) this.waiters.shift()!.resolve(null);
      else break;
    }
  }

  private failRead(err: Error): void {
    if (this.readError) return;
    debug('hand-off connection fd %d: read failed: %s', this.fd, err.message);
    this.readError = err;
    closeAll(this.decoder.takeFds());
    this.deliver();
  }

  private failWrites(err: Error): void {
    this.writeError ??= err;
    for (const w of this.outbox.splice(0)) w.done?.reject(err);
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
        // The descriptors in flight exceed our open-file limit until the peer
        // reads some; the socket is writable meanwhile, so wait on a timer.
        this.backoff = setTimeout(() => {
          this.backoff = null;
          this.flushOutbox();
          this.updatePoll();
        }, 2);
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
    const reading = !this.eof && !this.readError;
    const writing = this.outbox.length > 0 && !this.backoff && !this.writeError;
    const events = (reading ? POLL_READABLE : 0) | (writing ? POLL_WRITABLE : 0);
    if (events === this.events) return;
    this.events = events;
    this.poller.start(events);
  }
}

function closedError(what: string): Error {
  return new ClosedError(`${what} on a hand-off connection that is closed: open a new one`);
}

/** closeAll closes descriptors, ignoring ones already closed. */
export function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      addon.close(fd);
    } catch (err) {
      debug('close(%d) failed: %s', fd, errorCode(err));
    }
  }
}
