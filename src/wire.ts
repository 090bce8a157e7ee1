/**
 * The hand-off frame codec, compatible with gobwas/graceful: one sendmsg
 * carries N descriptors in one SCM_RIGHTS control message and, as data, N
 * records in the same order, each `uint32 little-endian length L` then L bytes
 * of meta.
 *
 * On a stream socket the kernel attaches a message's descriptors to its first
 * byte, so the decoder reads records from the byte stream and pairs the i-th
 * record with the i-th descriptor received. That keeps it exact across partial
 * writes and coalesced reads, and lets it check three invariants:
 * - a record never lacks a descriptor;
 * - a read that brought descriptors and ended on a record boundary leaves no
 *   descriptor unclaimed: the kernel ends such a read with the message that
 *   carried them, and a message of up to 32 KiB travels in one piece (one
 *   skb), so its end is the read's end. Only a read that filled the caller's
 *   buffer is exempt: it may stop short of the message's end;
 * - when a read brings new descriptors, none from an earlier read is left
 *   (a message cut by a full buffer or by a large sender's partial write is
 *   checked here, and so is a meta that runs past the end of its message);
 * - a message of up to ONE_PIECE_BYTES ends where the kernel's piece that
 *   carried its descriptors ends: once a read that did not fill the buffer
 *   has taken that piece whole, a record still unfinished runs past the end
 *   of its message, even if later bytes would complete it (the next read
 *   fails; a stream that ends there instead is a truncated message);
 * - the stream ends between messages, with no descriptor left.
 */
import { BadFrameError, FdCountMismatchError, MetaTooLargeError, TruncatedMessageError } from './errors.js';

export const HEADER_BYTES = 4;
const EMPTY = Buffer.alloc(0);
/** Default limits of one message: gobwas/graceful's 4096-byte buffer, and the kernel's SCM_MAX_FD. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4096;
export const DEFAULT_MAX_FDS_PER_MESSAGE = 253;
/** The largest meta a receiver accepts by default. */
export const DEFAULT_MAX_META_BYTES = 64 * 1024;
/**
 * ONE_PIECE_BYTES: a message up to this size travels in one piece (one skb,
 * the descriptors attached): the kernel cuts a UNIX stream write into pieces of
 * min(SO_SNDBUF / 2 - 64, about 36 KiB) bytes, over 4 KiB unless the sender's
 * SO_SNDBUF is under 8.3 KB (the default is 208 KiB); a partial write stops at
 * a piece's end too.
 */
export const ONE_PIECE_BYTES = 4096;

/** Outgoing: a descriptor and its encoded meta. */
export interface OutgoingRecord {
  fd: number;
  meta: Buffer;
}

/** Message: the unit of one sendmsg. */
export interface Message {
  data: Buffer;
  fds: number[];
}

/** Record: a descriptor and its raw meta, as received. */
export interface Record {
  fd: number;
  raw: Buffer;
}

/**
 * encodeMessages packs records into as few messages as fit the limits, in
 * order. Throws MetaTooLargeError when one record alone exceeds maxBytes.
 */
export function encodeMessages(records: readonly OutgoingRecord[], maxBytes = DEFAULT_MAX_MESSAGE_BYTES,
  maxFds = DEFAULT_MAX_FDS_PER_MESSAGE): Message[] {
  const messages: Message[] = [];
  let start = 0;
  while (start < records.length) {
    let bytes = 0;
    let end = start;
    while (end < records.length && end - start < maxFds) {
      const size = HEADER_BYTES + records[end]!.meta.length;
      if (size > maxBytes) throw metaTooLarge(records[end]!.fd, records[end]!.meta.length, maxBytes);
      if (bytes + size > maxBytes) break;
      bytes += size;
      end++;
    }
    const data = Buffer.allocUnsafe(bytes);
    const fds: number[] = [];
    let offset = 0;
    for (let i = start; i < end; i++) {
      const { fd, meta } = records[i]!;
      data.writeUInt32LE(meta.length, offset);
      meta.copy(data, offset + HEADER_BYTES);
      offset += HEADER_BYTES + meta.length;
      fds.push(fd);
    }
    messages.push({ data, fds });
    start = end;
  }
  return messages;
}

/** metaTooLarge: the error of a record longer than one message of maxBytes. */
export function metaTooLarge(fd: number, length: number, maxBytes: number): Error {
  return new MetaTooLargeError(
    `the meta of descriptor ${fd} is ${length} bytes; ` +
      `one message holds at most ${maxBytes - HEADER_BYTES}: shorten the meta or raise maxMessageBytes on both sides`,
  );
}

/**
 * FrameDecoder reads records from the bytes and descriptors of successive
 * reads. It owns every descriptor pushed into it until it returns it in a
 * record; after an error, `takeFds()` hands back the ones it still holds so
 * the caller can close them.
 */
/** runsPast: the error of a record whose meta is longer than its message. */
function runsPast(): Error {
  return new BadFrameError('a record runs past the end of its message: its meta is longer than the message');
}

export class FrameDecoder {
  private pending: Buffer = EMPTY;
  private fds: number[] = [];
  /** how many of `fds` arrived before the current read */
  private older = 0;
  /** bytes of the newest message with descriptors read so far (from its first record) */
  private messageBytes = 0;
  /** the newest message ended inside a record: any later byte is a frame error */
  private cut = false;
  private failed = false;

  constructor(private readonly maxMetaBytes = DEFAULT_MAX_META_BYTES) {}

  /**
   * push takes one read's bytes and descriptors and returns the records they
   * complete. It copies the bytes once, so the caller may reuse its buffer:
   * each record's `raw` is a view of that copy. `filled` says the read filled
   * the caller's buffer (so it may have stopped inside a message). On a
   * violation it throws a coded error; no record of this read is returned
   * then, and every descriptor stays for takeFds().
   */
  push(bytes: Uint8Array, fds: readonly number[], filled = false): Record[] {
    const records: Record[] = [];
    this.pushTo(bytes, fds, filled, records);
    return records;
  }

  /**
   * pushTo does what push does with the `length` bytes from `offset`,
   * appending the records to out (left as it was on an error).
   */
  pushTo(bytes: Uint8Array, fds: readonly number[], filled: boolean, out: Record[], length = bytes.byteLength, offset = 0): void {
    if (!this.begin(fds)) return;
    // Copy the read once (after what an earlier read left pending): every
    // record's raw meta and the new remainder are views of that copy, as the
    // caller may reuse its buffer.
    const pending = this.pending;
    const buf = Buffer.allocUnsafe(pending.length + length);
    if (pending.length > 0) buf.set(pending, 0);
    if (length === bytes.byteLength) buf.set(bytes, pending.length);
    else buf.set(new Uint8Array(bytes.buffer, bytes.byteOffset + offset, length), pending.length);
    this.parseAll(buf, 0, buf.length, fds.length > 0, filled, out);
  }

  /**
   * pushGiven does what pushTo does with bytes [offset, offset + length) of
   * buf, without copying them when no part of a record waits from an earlier
   * read: the caller gives that part of buf away (records and the remainder
   * are views of it), and must never write to it again.
   */
  pushGiven(buf: Buffer, offset: number, length: number, fds: readonly number[], filled: boolean, out: Record[]): void {
    if (!this.begin(fds)) return;
    const pending = this.pending;
    if (pending.length === 0) {
      this.parseAll(buf, offset, offset + length, fds.length > 0, filled, out);
      return;
    }
    const joined = Buffer.allocUnsafe(pending.length + length);
    joined.set(pending, 0);
    joined.set(new Uint8Array(buf.buffer, buf.byteOffset + offset, length), pending.length);
    this.parseAll(joined, 0, joined.length, fds.length > 0, filled, out);
  }

  /** begin takes a read's descriptors; it throws when the decoder failed, or the last message was cut. */
  private begin(fds: readonly number[]): true {
    if (this.failed) throw new BadFrameError('the decoder already failed: start a new connection');
    this.older = this.fds.length;
    for (let i = 0; i < fds.length; i++) this.fds.push(fds[i]!);
    if (this.cut) {
      this.failed = true;
      throw runsPast();
    }
    return true;
  }

  /** parseAll parses buf [start, end) (what was pending, then the read); on an error, out is left as it was. */
  private parseAll(buf: Buffer, start: number, end: number, newFds: boolean, filled: boolean, out: Record[]): void {
    const before = out.length;
    try {
      this.parse(buf, start, end, out, newFds, filled);
    } catch (err) {
      // parse() consumes nothing before its last check: every fd is still held.
      out.length = before;
      this.failed = true;
      throw err;
    }
  }

  /**
   * makeRecord builds the record of fd whose meta is buf[start, end); a
   * subclass may return its own kind of record (with `raw` as a getter, say).
   */
  protected makeRecord(fd: number, buf: Buffer, start: number, end: number): Record {
    return { fd, raw: buf.subarray(start, end) };
  }

  /** parse reads the records of buf [start, end): what an earlier read left pending, then this read. */
  private parse(buf: Buffer, start: number, end: number, records: Record[], newFds: boolean, filled: boolean): void {
    let offset = start;
    let taken = 0;
    // Where the message that brought this read's descriptors starts: at its first record.
    let messageStart = this.older === 0 ? start : -1;
    while (end - offset >= HEADER_BYTES) {
      const length = (buf[offset]! | (buf[offset + 1]! << 8) | (buf[offset + 2]! << 16)) + buf[offset + 3]! * 0x1000000;
      if (taken >= this.fds.length) {
        throw new FdCountMismatchError(
          `a message carries more meta records than descriptors (record ${taken + 1} has no descriptor): ` +
            'the peer does not speak this framing',
        );
      }
      if (length > this.maxMetaBytes) {
        throw new BadFrameError(
          `a record announces ${length} bytes of meta; the limit is ${this.maxMetaBytes}: ` +
            'the peer does not speak this framing, or raise maxMetaBytes',
        );
      }
      if (end - offset - HEADER_BYTES < length) break;
      records.push(this.makeRecord(this.fds[taken]!, buf, offset + HEADER_BYTES, offset + HEADER_BYTES + length));
      taken++;
      offset += HEADER_BYTES + length;
      if (taken === this.older) messageStart = offset;
    }
    const rest = end - offset;
    if (newFds && !filled && rest === 0 && taken < this.fds.length) {
      throw new FdCountMismatchError(
        `a message carries ${this.fds.length - taken} more descriptor(s) than meta records: the peer does not speak this framing`,
      );
    }
    if (newFds && taken < this.older) {
      // this.pending is still what the previous reads left: a partial record
      // there means its meta ran on into this message.
      if (this.pending.length === 0) {
        throw new FdCountMismatchError(
          `a message carries ${this.older - taken} more descriptor(s) than meta records: the peer does not speak this framing`,
        );
      }
      throw runsPast();
    }
    const messageBytes = newFds ? end - messageStart : this.messageBytes + end - start - this.pending.length;
    // This read took the rest of the piece that carried the descriptors, and
    // that piece was the whole message: its last record is cut. Whatever comes
    // next fails (end() says the peer stopped mid-message).
    this.cut = !filled && rest > 0 && taken < this.fds.length && messageBytes < ONE_PIECE_BYTES;
    this.messageBytes = messageBytes;
    if (taken === this.fds.length) this.fds = [];
    else if (taken > 0) this.fds.splice(0, taken);
    this.pending = rest === 0 ? EMPTY : buf.subarray(offset, end);
  }

  /** atBoundary: no part of a message waits (no partial record, no descriptor without its record). */
  get atBoundary(): boolean {
    return this.pending.length === 0 && this.fds.length === 0;
  }

  /**
   * recordRest: how many bytes finish the record under way (its header
   * first; a header when descriptors wait for their records), or Infinity
   * between messages: a reader that must not read past
   * a message (plain bytes may follow it) reads no more than this.
   */
  get recordRest(): number {
    const p = this.pending;
    if (p.length === 0) return this.fds.length > 0 ? HEADER_BYTES : Infinity; // the message's next record
    if (p.length < HEADER_BYTES) return HEADER_BYTES - p.length;
    const length = (p[0]! | (p[1]! << 8) | (p[2]! << 16)) + p[3]! * 0x1000000;
    return Math.max(1, HEADER_BYTES + length - p.length);
  }

  /** end checks the stream ended between messages; throws TruncatedMessageError otherwise. */
  end(): void {
    if (this.pending.length === 0 && this.fds.length > 0) {
      throw new FdCountMismatchError(
        `the last message carried ${this.fds.length} more descriptor(s) than meta records: the peer does not speak this framing`,
      );
    }
    if (this.pending.length > 0) {
      throw new TruncatedMessageError(
        `the peer closed the connection in the middle of a message (${this.pending.length} byte(s) and ` +
          `${this.fds.length} descriptor(s) left over): it probably crashed while sending`,
      );
    }
  }

  /** takeFds returns, and forgets, every descriptor the decoder still holds. */
  takeFds(): number[] {
    const fds = this.fds;
    this.fds = [];
    this.pending = EMPTY;
    return fds;
  }
}
