/**
 * Writer: the sending half of a hand-off connection. send() encodes records
 * with the framing of wire.ts and writes them with sendmsg, straight from
 * the encoder while nothing waits; what the kernel does not take waits in an
 * outbox, copied, until the socket polls writable. ETOOMANYREFS (too many
 * descriptors in flight for our open-file limit) backs off on a timer. The
 * connection owns the descriptor and the poll handle; the writer tells it
 * when it wants to write (changed).
 */
import { debuglog } from 'node:util';
import { addon, TOO_MANY_REFS, AGAIN, STALE } from '../native.js';
import { RecordEncoder } from '../record-encoder.js';
import type { Meta } from '../meta.js';

const debug = debuglog('graceful');

/** Outgoing: a descriptor to send and its meta. */
export interface OutgoingFd {
  fd: number;
  meta?: Meta | Uint8Array | null;
}

interface PendingWrite {
  data: Buffer;
  offset: number;
  fds: Int32Array | null;
  done?: { resolve(): void; reject(err: Error): void };
}

// One encoder for every connection: send() encodes, writes what the kernel
// takes straight from it and copies only the rest. A send() from a getter of
// a meta (send within send) gets an encoder of its own.
const ENCODER = new RecordEncoder();
let encoderBusy = false;
const SEND_FDS = new Int32Array(addon.maxFds);
// The shared encoder's buffers as last bound for sendmsgBound (see native/bound.cc).
let boundBytes: Uint8Array | null = null;
let boundFds: Int32Array | null = null;
let binding = 0;

function bindEncoder(enc: RecordEncoder): void {
  binding = addon.bindSend(enc.bytes, enc.fds);
  boundBytes = enc.bytes;
  boundFds = enc.fds;
}

/**
 * sendFrom sends bytes [start, start + length) of enc with its descriptors
 * [r, r + nfds). The shared encoder's buffers are bound to the addon once (and
 * again when encode() grew them, or another copy of this module bound its
 * own), so each message passes numbers only.
 */
function sendFrom(fd: number, enc: RecordEncoder, start: number, length: number, r: number, nfds: number): number {
  if (enc === ENCODER) {
    if (enc.bytes !== boundBytes || enc.fds !== boundFds) bindEncoder(enc);
    const n = addon.sendmsgBound(binding, fd, start, length, r, nfds);
    if (n !== STALE) return n;
    bindEncoder(enc); // another copy of this module bound its own encoder since
    return addon.sendmsgBound(binding, fd, start, length, r, nfds);
  }
  let fds = enc.fds;
  if (r > 0) {
    fds = SEND_FDS;
    for (let i = 0; i < nfds; i++) fds[i] = enc.fds[r + i]!;
  }
  return addon.sendmsg(fd, enc.bytes, start, length, fds, nfds);
}

export class Writer {
  private outbox: PendingWrite[] = [];
  /** The error that ended writing, if any: every later send rejects with it. */
  error: Error | null = null;
  private backoff: NodeJS.Timeout | null = null;
  private closed = false;

  /** The writer writes to fd (owned by the connection); changed is called when wantsToWrite() may have changed. */
  constructor(private readonly fd: number, private readonly maxMessageBytes: number, private readonly maxFdsPerMessage: number,
    private readonly changed: () => void) {}

  /** wantsToWrite: something waits for the socket to poll writable. */
  wantsToWrite(): boolean {
    return this.outbox.length > 0 && !this.backoff && !this.error;
  }

  /** send: see HandoffConnection.send. The caller checked that the connection is open. */
  send(items: readonly OutgoingFd[]): Promise<void> {
    if (this.error) return Promise.reject(this.error);
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
          const n = sendFrom(this.fd, enc, start, length, r, next - r);
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
        this.fail(err as Error);
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
      if (direct) this.changed();
      else this.flush();
    });
  }

  /**
   * writeData queues plain bytes, with no descriptor, after everything sent
   * before; it resolves once the kernel has them all. The bytes are copied.
   */
  writeData(bytes: Uint8Array): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    if (bytes.byteLength === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.outbox.push({ data: Buffer.from(bytes), offset: 0, fds: null, done: { resolve, reject } });
      if (!this.backoff) this.flush();
    });
  }

  /** learn flushes once after a poll error; true when that told something (an error, or progress). */
  learn(): boolean {
    const before = this.outbox.length;
    const offset = this.outbox[0]!.offset;
    this.flush();
    return this.error !== null || this.outbox.length < before || this.outbox[0]!.offset !== offset;
  }

  /** fail ends writing with err: every pending send rejects. */
  fail(err: Error): void {
    this.error ??= err;
    for (const w of this.outbox.splice(0)) w.done?.reject(err);
  }

  /** close: pending sends reject with err. */
  close(err: Error): void {
    this.closed = true;
    if (this.backoff) clearTimeout(this.backoff);
    this.backoff = null;
    this.fail(err);
  }

  /**
   * startBackoff: the descriptors in flight exceed our open-file limit until
   * the peer reads some; the socket is writable meanwhile, so wait on a timer.
   */
  private startBackoff(): void {
    this.backoff = setTimeout(() => {
      this.backoff = null;
      this.flush();
    }, 2);
  }

  /** flush writes what waits until the kernel says "not now". */
  flush(): void {
    while (this.outbox.length > 0 && !this.closed && !this.backoff) {
      const w = this.outbox[0]!;
      const fds = w.fds;
      let n: number;
      try {
        n = addon.sendmsg(this.fd, w.data, w.offset, w.data.length - w.offset, fds, fds ? fds.length : 0);
      } catch (err) {
        debug('hand-off connection fd %d: sendmsg failed: %s', this.fd, (err as Error).message);
        this.fail(err as Error);
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
    this.changed();
  }
}
