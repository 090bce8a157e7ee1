/**
 * The record decoder of a hand-off connection: the frame decoder of wire.ts,
 * making ReceivedFd records whose meta is decoded lazily from a view of the
 * read that brought it, and the inbox list they wait in.
 */
import { inspect } from 'node:util';
import { decodeMeta, type Meta } from '../meta.js';
import { FrameDecoder, type Record } from '../wire.js';

/**
 * ReceivedFd: a descriptor that arrived, its meta when it is flat JSON or gob, and
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
export class RecordDecoder extends FrameDecoder {
  protected override makeRecord(fd: number, bytes: Buffer, start: number, end: number): Record {
    return new ReceivedRecord(fd, bytes, start, end);
  }
}

/**
 * newInbox: an empty list made for objects from the start (an array literal
 * starts out holding small integers, and the first record pushed would make
 * V8 call its generic push instead of the inlined one).
 */
const INBOX_SEED: ReceivedFd = Object.freeze({ fd: -1, meta: null, raw: Buffer.alloc(0) });
export function newInbox(): ReceivedFd[] {
  const list: ReceivedFd[] = [INBOX_SEED];
  list.length = 0;
  return list;
}
