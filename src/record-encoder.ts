/**
 * The send side of the hand-off framing (wire.ts): records laid end to end
 * in one reusable buffer, as encodeMessages packs them, with the JSON of a
 * flat meta written in place, and kept for a meta sent again unchanged.
 */
import { invalidArgument } from './errors.js';
import { encodeMeta, writeMetaJson, type Meta, type MetaSnapshot } from './meta.js';
import { HEADER_BYTES, metaTooLarge } from './wire.js';

const EMPTY = new Uint8Array(0);
const ENCODER_BYTES = 64 * 1024;

/**
 * RecordEncoder encodes outgoing descriptors and their meta into records laid
 * end to end in one reusable buffer, as encodeMessages would pack them, so a
 * sender can hand each message to sendmsg straight from that buffer and copy
 * only what has to wait. A flat meta object is written as JSON in place.
 * Message `m` of the last encode() spans records [starts(m), ends(m)).
 */
export class RecordEncoder {
  /** the records, end to end, from offset 0 */
  bytes: Buffer = Buffer.allocUnsafe(ENCODER_BYTES);
  /** the descriptor of every record */
  fds: Int32Array = new Int32Array(256);
  /** how many records the last encode() wrote */
  count = 0;
  private ends: Int32Array = new Int32Array(256);
  /** the last meta met that was not the cached one: a meta met twice in a row gets cached */
  private seen: object | null = null;
  /** the cached meta, and what writeMetaJson read from it when it wrote cachedJson */
  private cached: object | null = null;
  private snapshot: MetaSnapshot = { proto: null, keys: [], values: [] };
  private cachedJson: Uint8Array = EMPTY;

  /**
   * encode writes the records of items; throws InvalidArgumentError for a
   * bad fd or meta, MetaTooLargeError for a record longer than maxBytes.
   */
  encode(items: readonly { fd: number; meta?: Meta | Uint8Array | null }[], maxBytes: number, api: string): void {
    const n = items.length;
    this.count = 0;
    if (this.fds.length < n) {
      this.fds = new Int32Array(n);
      this.ends = new Int32Array(n);
    }
    let o = 0;
    for (let i = 0; i < n; i++) {
      const { fd, meta } = items[i]!;
      if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
        throw invalidArgument(api, `fd must be a non-negative integer, got ${String(fd)}`);
      }
      const start = o;
      o += HEADER_BYTES;
      if (meta !== undefined && meta !== null) {
        let end = -1;
        if (!(meta instanceof Uint8Array) && typeof meta === 'object') {
          if (meta === this.cached && this.unchanged(meta)) {
            const json = this.cachedJson;
            this.reserve(start, o + json.length);
            this.bytes.set(json, o);
            end = o + json.length;
          } else {
            if (meta === this.seen) {
              // Met twice in a row: write it recording what was read, and cache it.
              const snapshot: MetaSnapshot = { proto: null, keys: [], values: [] };
              end = writeMetaJson(meta, this.bytes, o, snapshot);
              if (end >= 0) {
                this.cached = meta;
                this.snapshot = snapshot;
                this.cachedJson = new Uint8Array(this.bytes.subarray(o, end)); // a copy: Buffer#slice would be a view
              }
            } else {
              end = writeMetaJson(meta, this.bytes, o);
            }
            this.seen = meta;
          }
        }
        if (end < 0) {
          const raw = encodeMeta(meta, api);
          this.reserve(start, o + raw.length);
          this.bytes.set(raw, o);
          end = o + raw.length;
        }
        o = end;
      }
      const length = o - start - HEADER_BYTES;
      if (HEADER_BYTES + length > maxBytes) throw metaTooLarge(fd, length, maxBytes);
      const b = this.bytes;
      b[start] = length & 0xff;
      b[start + 1] = (length >>> 8) & 0xff;
      b[start + 2] = (length >>> 16) & 0xff;
      b[start + 3] = length >>> 24;
      this.fds[i] = fd;
      this.ends[i] = o;
      this.count = i + 1;
      this.reserve(o, o + HEADER_BYTES + 256);
    }
  }

  /**
   * unchanged: meta, the cached object, still has the prototype, own
   * enumerable keys (in order) and values (===) it had when its JSON was
   * written, so that JSON is still what writeMetaJson would write. It reads
   * each value once, as writeMetaJson does.
   */
  private unchanged(meta: object): boolean {
    const { proto, keys, values } = this.snapshot;
    if (Object.getPrototypeOf(meta) !== proto) return false;
    let i = 0;
    for (const key in meta) {
      if (!Object.hasOwn(meta, key)) continue;
      if (i >= keys.length || key !== keys[i] || (meta as { [key: string]: unknown })[key] !== values[i]) return false;
      i++;
    }
    return i === keys.length;
  }

  /** start of record r */
  start(r: number): number {
    return r === 0 ? 0 : this.ends[r - 1]!;
  }

  /** end of record r - 1, that is, of the records before r */
  end(r: number): number {
    return this.ends[r - 1]!;
  }

  /** messageEnd: the record after the last of the message that starts at record r. */
  messageEnd(r: number, maxBytes: number, maxFds: number): number {
    const first = this.start(r);
    let end = r;
    while (end < this.count && end - r < maxFds && this.ends[end]! - first <= maxBytes) end++;
    return end;
  }

  /** release drops a buffer grown past the usual size, once nothing refers to it. */
  release(): void {
    if (this.bytes.length > 4 * ENCODER_BYTES) this.bytes = Buffer.allocUnsafe(ENCODER_BYTES);
    if (this.fds.length > 4096) {
      this.fds = new Int32Array(256);
      this.ends = new Int32Array(256);
    }
  }

  /** reserve grows the buffer, keeping bytes [0, used), so that it holds at least size bytes. */
  private reserve(used: number, size: number): void {
    if (size <= this.bytes.length) return;
    const grown = Buffer.allocUnsafe(Math.max(size, 2 * this.bytes.length));
    this.bytes.copy(grown, 0, 0, used);
    this.bytes = grown;
  }
}
