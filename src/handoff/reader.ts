/**
 * Reader: the receiving half of a hand-off connection. It reads with
 * recvmsg (at most 32 times per wake-up), decodes records into an inbox and
 * hands them to receive() / receiveBatch() in call order. It stops reading
 * while highWaterMark records wait, so the kernel holds the rest and the
 * sender waits. The connection owns the descriptor and the poll handle; the
 * reader tells it when it wants to read again (wake).
 *
 * With applicationData on, it reads only what is asked for (a record for a
 * receive() that has none waiting, or the bytes of a readData()), so plain
 * bytes the peer writes between descriptor messages are never taken for
 * records. The kernel ends a read at the first message that carries
 * descriptors, and never glues plain bytes after it: readData() reads no
 * more than the bytes it asks for, so it stops where the next message
 * starts.
 */
import { debuglog } from 'node:util';
import { addon, AGAIN, STALE } from '../native.js';
import { BadFrameError, FdsTruncatedError, TruncatedMessageError, errorCode, invalidArgument } from '../errors.js';
import type { Record } from '../wire.js';
import { closeAll } from './close.js';
import { newInbox, RecordDecoder, type ReceivedFd } from './record.js';

const debug = debuglog('graceful');

/** Most recvmsg calls in one poll callback, so one fast peer cannot hold the event loop. */
const READS_PER_POLL = 32;
/** When reading once per wake-up, read on until EAGAIN every this many wake-ups (see readSome). */
const PROBE_EVERY = 8;
const NO_FDS: readonly number[] = Object.freeze([]);

// One read buffer for every connection: reads are synchronous, and what a
// call into the addon read is copied once before it is decoded.
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const READ_BYTES = new Uint8Array(READ_BUFFER.buffer, READ_BUFFER.byteOffset, READ_BUFFER.length);
// The descriptors of a call's reads, end to end from [1]; room for 8 full messages.
const READ_FDS = new Int32Array(8 * addon.maxFds + 1);
// What each read of recvmsgMany brought: [why it stopped, then bytes and descriptors per read].
const READ_READS = new Int32Array(1 + 2 * READS_PER_POLL);
// Bound to the addon, so that each recvmsg passes numbers only (see
// native/bound.cc); bound again if another copy of this module bound its own.
let readBinding = addon.bindReceive(READ_BUFFER, READ_FDS, READ_READS);

function recvmsg(fd: number, size: number): number {
  const n = addon.recvmsgBound(readBinding, fd, size);
  if (n !== STALE) return n;
  readBinding = addon.bindReceive(READ_BUFFER, READ_FDS, READ_READS);
  return addon.recvmsgBound(readBinding, fd, size);
}

/** recvmsgMany: up to maxReads reads in one call into the addon (see Addon.recvmsgMany). */
function recvmsgMany(fd: number, maxReads: number, maxFds: number): number {
  const n = addon.recvmsgMany(readBinding, fd, READ_BUFFER.length, maxReads, maxFds);
  if (n !== STALE) return n;
  readBinding = addon.bindReceive(READ_BUFFER, READ_FDS, READ_READS);
  return addon.recvmsgMany(readBinding, fd, READ_BUFFER.length, maxReads, maxFds);
}

/** readError: the addon raises MSG_CTRUNC with its code on a plain Error: give it its class. */
function readError(err: unknown): Error {
  return errorCode(err) === 'ERR_GRACEFUL_FDS_TRUNCATED' ? new FdsTruncatedError((err as Error).message, { cause: err }) : err as Error;
}
// The descriptors of the last read, as the decoder takes them (it copies them
// at once): reused, so a read allocates no list of its own.
const READ_FD_LIST: number[] = [];

interface Waiter {
  /** true: receiveBatch() (takes every record); false: receive() (takes one) */
  batch: boolean;
  resolve(v: ReceivedFd[] | ReceivedFd | null): void;
  reject(err: Error): void;
}

/** DataClaim: a readData() waiting for its bytes. */
interface DataClaim {
  want: number;
  got: number;
  chunks: Buffer[];
  resolve(data: Buffer): void;
  reject(err: Error): void;
}

export class Reader {
  private inbox: ReceivedFd[] = newInbox();
  private waiters: Waiter[] = [];
  private claims: DataClaim[] = [];
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
    private readonly wake: () => void, private readonly onDemand = false) {
    this.decoder = new RecordDecoder(maxMetaBytes);
  }

  /** readData: see HandoffConnection.readData. The caller checked n and that reading is on demand. */
  readData(n: number, closedError: () => Error): Promise<Buffer> {
    if (this.error) return Promise.reject(this.error);
    if (this.closed) return Promise.reject(closedError());
    if (!this.decoder.atBoundary) {
      return Promise.reject(new BadFrameError(
        'readData: the stream is in the middle of a descriptor message: application data may only come between messages',
      ));
    }
    if (this.eof) return Promise.reject(dataCutError(0, n));
    if (this.waiters.length > 0) {
      // The stream is read in call order: the data would be taken before the descriptor awaited.
      return Promise.reject(invalidArgument('readData',
        'a receive() still waits for a descriptor that comes first on the stream: await it before readData()'));
    }
    return new Promise<Buffer>((resolve, reject) => {
      this.claims.push({ want: n, got: 0, chunks: [], resolve, reject });
      this.wake();
    });
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
    if (this.eof || this.error || this.inbox.length >= this.highWaterMark) return false;
    return !this.onDemand || this.claims.length > 0 || (this.waiters.length > 0 && this.inbox.length === 0);
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
    if (this.onDemand) {
      while (reads < limit && !this.closed && this.wantsToRead()) {
        if (!this.readOnce()) {
          drained = !this.eof && this.error === null;
          break;
        }
        reads++;
      }
    } else {
      // Reading ahead: several reads per call into the addon, within the mark.
      while (reads < limit && !this.closed && this.wantsToRead()) {
        const made = this.readAhead(limit - reads);
        reads += made;
        if (made <= 0) {
          drained = made === 0;
          break;
        }
        if (this.eof || this.error !== null) break;
        if (READ_READS[0] === 1) {
          drained = true;
          break;
        }
      }
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

  /**
   * readAhead reads up to max times in one call into the addon, stopping
   * once the descriptors that came would fill the inbox to the mark, and
   * decodes each read as readOnce would. It returns the reads that brought
   * bytes, 0 on EAGAIN at the first, -1 at the end of the stream or an
   * error. A decoder error closes the descriptors of the reads after the
   * one that failed; a read that failed after others is raised once they
   * are decoded.
   */
  private readAhead(max: number): number {
    let made: number;
    try {
      // A mark of Infinity (allowed) is no bound: the room for descriptors is one.
      made = recvmsgMany(this.fd, max, Math.min(this.highWaterMark - this.inbox.length, READ_FDS.length));
    } catch (err) {
      this.fail(readError(err));
      return -1;
    }
    if (made === AGAIN) return 0;
    const status = READ_READS[0]!;
    const total = READ_FDS[0]!;
    // One copy of every read of the call, given to the decoder: the records are views of it.
    let used = 0;
    for (let i = 0; i < made; i++) used += READ_READS[1 + 2 * i]!;
    const given = Buffer.allocUnsafe(used);
    if (used > 0) given.set(READ_BYTES.subarray(0, used));
    let at = 0;
    let fdAt = 1;
    for (let i = 0; i < made; i++) {
      const n = READ_READS[1 + 2 * i]!;
      const count = READ_READS[2 + 2 * i]!;
      if (n === 0 && count === 0) {
        this.onEnd(); // the last read by construction
        return -1;
      }
      let fds: readonly number[] = NO_FDS;
      if (count > 0) {
        const got = READ_FD_LIST;
        if (got.length !== count) got.length = count; // setting a length costs a call into V8's runtime
        for (let j = 0; j < count; j++) got[j] = READ_FDS[fdAt + j]!;
        fds = got;
        fdAt += count;
      }
      try {
        this.decoder.pushGiven(given, at, n, fds, n === READ_BUFFER.length - at, this.inbox as Record[]);
      } catch (err) {
        // The decoder holds this read's descriptors (fail() closes them); the later reads' are closed here.
        if (fdAt <= total) addon.closeFds(READ_FDS.subarray(fdAt), total + 1 - fdAt);
        this.fail(err as Error);
        return -1;
      }
      at += n;
    }
    if (status < 0) {
      try {
        addon.recvmsgFailure(status);
      } catch (err) {
        this.fail(readError(err));
      }
      return -1;
    }
    return made;
  }

  /** readOnce calls recvmsg once; true when it brought bytes, false on EAGAIN, end of stream or an error. */
  private readOnce(): boolean {
    // A readData() reads no further than its bytes: the kernel then stops before the next message.
    // On demand, a message the kernel split (over 32 KiB) is read no further than its record: plain bytes may follow it.
    const claim = this.claims[0];
    const want = claim ? claim.want - claim.got : this.onDemand ? this.decoder.recordRest : Infinity;
    const size = Math.min(want, READ_BUFFER.length);
    let n: number;
    try {
      n = recvmsg(this.fd, size);
    } catch (err) {
      this.fail(readError(err));
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
      const got = READ_FD_LIST;
      if (got.length !== count) got.length = count; // setting a length costs a call into V8's runtime
      for (let i = 0; i < count; i++) got[i] = READ_FDS[1 + i]!;
      fds = got;
    }
    if (claim) {
      if (count > 0) {
        // The descriptors came with the first byte of their message: that byte was read as data.
        closeAll(fds);
        this.fail(new BadFrameError(
          'readData asked for more bytes than the peer wrote before its next descriptors: ' +
            'the application data and the descriptor messages do not line up',
        ));
        return false;
      }
      this.takeData(claim, n);
      return true;
    }
    try {
      this.decoder.pushTo(READ_BUFFER, fds, n === size, this.inbox as Record[], n);
    } catch (err) {
      this.fail(err as Error);
      return false;
    }
    return true;
  }

  /** takeData gives the read's n bytes to the first waiting readData(). */
  private takeData(c: DataClaim, n: number): void {
    c.chunks.push(Buffer.from(READ_BUFFER.subarray(0, n)));
    c.got += n;
    if (c.got === c.want) {
      this.claims.shift();
      c.resolve(c.chunks.length === 1 ? c.chunks[0]! : Buffer.concat(c.chunks, c.want));
    }
  }

  private onEnd(): void {
    if (this.claims.length > 0) {
      const c = this.claims[0]!;
      this.fail(dataCutError(c.got, c.want));
      return;
    }
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
    for (const c of this.claims.splice(0)) c.reject(err);
  }

  /** close closes every descriptor the reader holds (the inbox, a partial message); waiters reject with err. */
  close(err: Error): void {
    this.closed = true;
    closeAll(this.inbox.map((r) => r.fd));
    this.inbox = newInbox();
    closeAll(this.decoder.takeFds());
    for (const w of this.waiters.splice(0)) w.reject(err);
    for (const c of this.claims.splice(0)) c.reject(err);
  }
}

function dataCutError(got: number, want: number): Error {
  return new TruncatedMessageError(
    `the peer closed the connection after ${got} of the ${want} bytes of application data readData() asked for`,
  );
}
