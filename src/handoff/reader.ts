/**
 * Reader: the receiving half of a hand-off connection. It reads with
 * recvmsg (at most 32 times per wake-up), decodes records into an inbox and
 * hands them to receive() / receiveBatch() in call order. It stops reading
 * while highWaterMark records wait, so the kernel holds the rest and the
 * sender waits. The connection owns the descriptor and the poll handle; the
 * reader tells it when it wants to read again (wake).
 */
import { debuglog } from 'node:util';
import { addon, AGAIN } from '../native.js';
import { FdsTruncatedError, errorCode } from '../errors.js';
import type { Record } from '../wire.js';
import { closeAll } from './close.js';
import { newInbox, RecordDecoder, type ReceivedFd } from './record.js';

const debug = debuglog('graceful');

/** Most recvmsg calls in one poll callback, so one fast peer cannot hold the event loop. */
const READS_PER_POLL = 32;
/** When reading once per wake-up, read on until EAGAIN every this many wake-ups (see readSome). */
const PROBE_EVERY = 8;
const NO_FDS: readonly number[] = Object.freeze([]);

// One read buffer for every connection: reads are synchronous and the
// decoder copies each read once.
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const READ_FDS = new Int32Array(addon.maxFds + 1);

interface Waiter {
  /** true: receiveBatch() (takes every record); false: receive() (takes one) */
  batch: boolean;
  resolve(v: ReceivedFd[] | ReceivedFd | null): void;
  reject(err: Error): void;
}

export class Reader {
  private inbox: ReceivedFd[] = newInbox();
  private waiters: Waiter[] = [];
  private readonly decoder: RecordDecoder;
  /** The error that ended reading, if any: every later receive rejects with it. */
  error: Error | null = null;
  /** The peer ended the stream between messages. */
  eof = false;
  private closed = false;
  /** readSome reads until EAGAIN (true) or once (false) per wake-up */
  private probe = true;
  private unprobed = 0;

  /**
   * The reader reads fd (owned by the connection). wake is called when it
   * wants to read and may not be polling: a waiter came, or receive() took
   * the inbox below the mark.
   */
  constructor(private readonly fd: number, private readonly highWaterMark: number, maxMetaBytes: number,
    private readonly wake: () => void) {
    this.decoder = new RecordDecoder(maxMetaBytes);
  }

  receive(closedError: () => Error): Promise<ReceivedFd | null> {
    if (this.inbox.length > 0) {
      const next = this.inbox.shift()!;
      this.wake();
      return Promise.resolve(next);
    }
    if (this.error) return Promise.reject(this.error);
    if (this.eof) return Promise.resolve(null);
    if (this.closed) return Promise.reject(closedError());
    return new Promise<ReceivedFd | null>((resolve, reject) => {
      this.waiters.push({ batch: false, resolve: resolve as Waiter['resolve'], reject });
      this.wake();
    });
  }

  receiveBatch(closedError: () => Error): Promise<ReceivedFd[] | null> {
    if (this.inbox.length > 0) {
      const batch = this.inbox;
      this.inbox = newInbox();
      this.wake();
      return Promise.resolve(batch);
    }
    if (this.error) return Promise.reject(this.error);
    if (this.eof) return Promise.resolve(null);
    if (this.closed) return Promise.reject(closedError());
    return new Promise<ReceivedFd[] | null>((resolve, reject) => {
      this.waiters.push({ batch: true, resolve: resolve as Waiter['resolve'], reject });
      this.wake();
    });
  }

  /** wantsToRead: reading is on while the stream is open and fewer than highWaterMark records wait. */
  wantsToRead(): boolean {
    return !this.eof && !this.error && this.inbox.length < this.highWaterMark;
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
  readSome(): void {
    const probing = this.probe || ++this.unprobed >= PROBE_EVERY;
    const limit = probing ? READS_PER_POLL : 1;
    let reads = 0;
    let drained = false;
    while (reads < limit && !this.closed && this.wantsToRead()) {
      if (!this.readOnce()) {
        drained = !this.eof && this.error === null;
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

  /** learn reads once after a poll error; true when that told something (bytes, the end, an error). */
  learn(): boolean {
    return this.readOnce() || this.eof || this.error !== null;
  }

  /** readOnce calls recvmsg once; true when it brought bytes, false on EAGAIN, end of stream or an error. */
  private readOnce(): boolean {
    let n: number;
    try {
      n = addon.recvmsg(this.fd, READ_BUFFER, 0, READ_BUFFER.length, READ_FDS);
    } catch (err) {
      // The addon raises MSG_CTRUNC with its code on a plain Error: give it its class.
      this.fail(errorCode(err) === 'ERR_GRACEFUL_FDS_TRUNCATED' ? new FdsTruncatedError((err as Error).message, { cause: err }) : err as Error);
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
      this.fail(err as Error);
      return false;
    }
    return true;
  }

  private onEnd(): void {
    try {
      this.decoder.end();
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.eof = true;
  }

  /** deliver hands what came to the waiters, in call order. */
  deliver(): void {
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
      } else if (this.error) this.waiters.shift()!.reject(this.error);
      else if (this.eof) this.waiters.shift()!.resolve(null);
      else break;
    }
  }

  /** fail ends reading with err; the descriptors of a partial message are closed. */
  fail(err: Error): void {
    if (this.error) return;
    debug('hand-off connection fd %d: read failed: %s', this.fd, err.message);
    this.error = err;
    closeAll(this.decoder.takeFds());
  }

  /** close closes every descriptor the reader holds (the inbox, a partial message); waiters reject with err. */
  close(err: Error): void {
    this.closed = true;
    closeAll(this.inbox.map((r) => r.fd));
    this.inbox = newInbox();
    closeAll(this.decoder.takeFds());
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}
