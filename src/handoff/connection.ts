/**
 * HandoffConnection: one AF_UNIX stream connection owned by the addon, on
 * which descriptors travel in both directions with the framing of wire.ts.
 * Reads and writes never block; readiness comes from a libuv poll handle.
 * The connection owns the descriptor and the poll handle and composes the
 * two halves: reader.ts (recvmsg, records, the inbox) and writer.ts (the
 * encoder, sendmsg, the outbox); record.ts decodes the records.
 */
import { addon, AGAIN, POLL_READABLE, POLL_WRITABLE, type PeerCredentials, type Poller } from '../native.js';
import { ClosedError, TimeoutError, invalidArgument } from '../errors.js';
import { withMetaFormat, type MetaFormat } from '../gob.js';
import { DEFAULT_MAX_FDS_PER_MESSAGE, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_META_BYTES } from '../wire.js';
import { checkSocketPathLength } from '../socketpath.js';
import { Reader } from './reader.js';
import { Writer, type OutgoingFd } from './writer.js';
import type { ReceivedFd } from './record.js';

export type { ReceivedFd } from './record.js';
export type { OutgoingFd } from './writer.js';
export { closeAll, closeFds } from './close.js';

export interface ConnectionOptions {
  /** Largest data of one message this side sends (default 4096). */
  maxMessageBytes?: number;
  /** Most descriptors in one message this side sends (default 253). */
  maxFdsPerMessage?: number;
  /** Largest meta this side accepts (default 64 KiB). */
  maxMetaBytes?: number;
  /** How send() writes a flat meta object: 'json' (default) or 'gob', for a Go peer using gobwas/graceful's Meta. */
  metaFormat?: MetaFormat;
  /**
   * How many received records may wait for receive() before the connection
   * stops reading (default 256). The kernel then holds the rest, and the
   * sender waits; reading resumes once receive() or receiveBatch() take the
   * count below the mark. Beyond what the caller took, a connection holds at
   * most this many descriptors plus those of one message. Anything but a
   * number of at least 1 means the default.
   */
  highWaterMark?: number;
  /**
   * The peer writes application data of its own on this connection, before
   * or between descriptor messages (gobwas/graceful's README sends data
   * first): read only what receive() and readData() ask for, so those bytes
   * are never read as records. Off by default: the connection reads ahead.
   */
  applicationData?: boolean;
}

/** The most bytes one readData() may ask for. */
export const MAX_DATA_BYTES = 1 << 30;

/** Default of ConnectionOptions.highWaterMark. */
export const DEFAULT_HIGH_WATER_MARK = 256;

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
  private readonly reader: Reader;
  private readonly writer: Writer;
  private readonly metaFormat: MetaFormat | undefined;
  private readonly applicationData: boolean;
  private closed = false;
  private events = 0;
  private credentials: PeerCredentials | null = null;

  /** connect opens a connection to the hand-off socket at path. */
  static async connect(path: string, options: ConnectionOptions & { timeout?: number } = {}): Promise<HandoffConnection> {
    const fd = await connectPath(path, 'connect', options.timeout);
    return new HandoffConnection(fd, options);
  }

  /** The constructor takes ownership of fd, a connected AF_UNIX stream socket. */
  constructor(fd: number, options: ConnectionOptions = {}) {
    this.fd = fd;
    const mark = options.highWaterMark;
    const highWaterMark = typeof mark === 'number' && mark >= 1 ? Math.floor(mark) : DEFAULT_HIGH_WATER_MARK;
    this.metaFormat = options.metaFormat;
    const update = () => this.updatePoll();
    this.applicationData = options.applicationData === true;
    this.reader = new Reader(fd, highWaterMark, options.maxMetaBytes ?? DEFAULT_MAX_META_BYTES, update, this.applicationData);
    this.writer = new Writer(fd, options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      Math.min(options.maxFdsPerMessage ?? DEFAULT_MAX_FDS_PER_MESSAGE, addon.maxFds), update);
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
   * `options.metaFormat` overrides the connection's for this send.
   */
  send(items: readonly OutgoingFd[], options: { metaFormat?: MetaFormat } = {}): Promise<void> {
    if (this.closed) return Promise.reject(closedError('send'));
    try {
      items = withMetaFormat(items, options.metaFormat ?? this.metaFormat, 'send');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.writer.send(items);
  }

  /**
   * writeData writes application bytes, with no descriptor, after whatever
   * was sent before, as a Go peer's `conn.Write(data)` does. It resolves once
   * the kernel has them all; the bytes are copied at the call.
   */
  writeData(data: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(closedError('writeData'));
    if (!(data instanceof Uint8Array)) return Promise.reject(invalidArgument('writeData', 'data must be a Buffer or Uint8Array'));
    return this.writer.writeData(data);
  }

  /**
   * readData resolves with exactly the next n bytes of application data: the
   * bytes the peer wrote with no descriptor before its next descriptor
   * message (records already received wait for receive() as before). Needs
   * `applicationData: true`. A stream that ends first rejects with
   * ERR_GRACEFUL_TRUNCATED_MESSAGE; more bytes asked for than the peer wrote
   * before its descriptors reject with ERR_GRACEFUL_BAD_FRAME and close the
   * descriptors that came with them.
   */
  readData(n: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(closedError('readData'));
    if (!Number.isSafeInteger(n) || n < 1 || n > MAX_DATA_BYTES) {
      return Promise.reject(invalidArgument('readData', `n must be a whole number of bytes from 1 to ${MAX_DATA_BYTES}, got ${String(n)}`));
    }
    if (!this.applicationData) {
      return Promise.reject(invalidArgument('readData',
        'open the connection with { applicationData: true }, so that it reads no further than what is asked'));
    }
    return this.reader.readData(n, () => closedError('readData'));
  }

  /** receive resolves with the next descriptor, or null once the peer closed between messages. */
  receive(): Promise<ReceivedFd | null> {
    return this.reader.receive(() => closedError('receive'));
  }

  /**
   * receiveBatch resolves with every descriptor received so far and not yet
   * taken (at least one, waiting for it if need be), in order, or null once
   * the peer closed between messages; the caller owns every fd in the array.
   * It saves the promise per descriptor of receive() when many arrive; both
   * may be mixed, and each takes from the same queue in call order.
   */
  receiveBatch(): Promise<ReceivedFd[] | null> {
    return this.reader.receiveBatch(() => closedError('receiveBatch'));
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
    this.poller.close();
    const err = closedError('the operation');
    this.reader.close(err);
    addon.close(this.fd);
    this.writer.close(err);
  }

  private onPoll(status: number, events: number): void {
    if (this.closed) return;
    if (status < 0) {
      this.onPollError(status);
      return;
    }
    if (events & POLL_WRITABLE) this.writer.flush();
    if (events & POLL_READABLE) this.reader.readSome();
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
    const reading = this.reader.wantsToRead();
    if (reading) learned = this.reader.learn();
    const writing = this.writer.wantsToWrite();
    if (writing) learned = this.writer.learn() || learned;
    if (!learned) {
      const err = new ClosedError(`poll failed on the hand-off connection (status ${status}): the peer is gone; open a new connection`);
      if (reading || !writing) this.reader.fail(err);
      this.writer.fail(err);
    }
    this.reader.deliver();
    this.updatePoll();
  }

  private updatePoll(): void {
    if (this.closed) return;
    const events = (this.reader.wantsToRead() ? POLL_READABLE : 0) | (this.writer.wantsToWrite() ? POLL_WRITABLE : 0);
    if (events === this.events) return;
    this.events = events;
    this.poller.start(events);
  }
}

function closedError(what: string): Error {
  return new ClosedError(`${what} on a hand-off connection that is closed: open a new one`);
}
