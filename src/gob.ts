/**
 * Gob meta: the meta of gobwas/graceful's Go programs, a `map[string]interface{}`
 * named `Meta` that each sender writes with a fresh `encoding/gob` encoder.
 * Such a stream is one type-definition message (the map type) and one value
 * message (the map). This module reads and writes exactly that much of gob:
 * a map whose keys are strings and whose values are strings, integers,
 * floats, booleans or nil, held directly or in interface values whose
 * concrete type is one of gob's predefined ones (registered as "string",
 * "int", "int64", "uint8", "float64", "bool", ...). Anything else is refused.
 *
 * The decoder reads hostile bytes: it never recurses, it allocates at most
 * in proportion to its input, and the only error it throws is BadMetaError.
 */
import { BadMetaError, invalidArgument } from './errors.js';
import type { Meta, MetaValue } from './meta-value.js';

/** The meta formats a sender can write: this package's JSON, or gob for a Go peer. */
export type MetaFormat = 'json' | 'gob';

// gob's predefined type ids (encoding/gob type.go).
const BOOL = 1;
const INT = 2;
const UINT = 3;
const FLOAT = 4;
const STRING = 6;
const INTERFACE = 8;
/** The first id an encoder gives a type of its own. */
const FIRST_USER_ID = 64;
/** The id our encoder gives Meta, the first one a fresh Go encoder gives. */
const META_ID = 65;
/** Most type definitions one meta may carry before its value. */
const MAX_TYPES = 4;
/** Longest interface type name read (Go's names of basic types are short). */
const MAX_TYPE_NAME = 256;

const BASIC_NAMES: ReadonlyMap<number, string> = new Map([
  [BOOL, 'bool'], [INT, 'int'], [UINT, 'uint'], [FLOAT, 'float'], [5, '[]byte'], [STRING, 'string'], [7, 'complex'], [INTERFACE, 'interface'],
]);

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

class Reader {
  pos = 0;
  constructor(readonly bytes: Uint8Array, public end: number) {}

  /** fail: the bytes are not a gob-encoded Meta. */
  fail(what: string): never {
    throw new BadMetaError(`gob meta: ${what} (at byte ${this.pos}): the peer did not send a gob-encoded Meta`);
  }

  /** refuse: gob, but a Meta this package cannot hold. */
  refuse(what: string): never {
    throw new BadMetaError(
      `gob meta: ${what} (at byte ${this.pos}): a Go peer must send a Meta of strings, integers within ` +
        '±(2^53 - 1), finite floats, booleans or nil; read the raw bytes for anything else',
    );
  }

  byte(): number {
    if (this.pos >= this.end) this.fail('it ends in the middle of a value');
    return this.bytes[this.pos++]!;
  }

  /** bigUint reads gob's unsigned integer: one byte below 128, else a negated byte count and big-endian bytes. */
  bigUint(): bigint {
    const b = this.byte();
    if (b < 0x80) return BigInt(b);
    const n = 256 - b;
    if (n > 8) this.fail(`an unsigned integer announces ${n} bytes; gob's have at most 8`);
    if (this.end - this.pos < n) this.fail('it ends in the middle of an unsigned integer');
    let u = 0n;
    for (let i = 0; i < n; i++) u = (u << 8n) | BigInt(this.bytes[this.pos++]!);
    return u;
  }

  /** uint reads an unsigned integer that must fit a JavaScript number exactly (a length, a count, a delta). */
  uint(): number {
    const u = this.bigUint();
    if (u > MAX_SAFE) this.fail(`a length or count of ${u} is out of range`);
    return Number(u);
  }

  /** bigInt reads gob's signed integer: the low bit of the unsigned one says to complement the rest. */
  bigInt(): bigint {
    const u = this.bigUint();
    return (u & 1n) === 1n ? ~(u >> 1n) : u >> 1n;
  }

  int(): number {
    const i = this.bigInt();
    if (i > MAX_SAFE || i < -MAX_SAFE) this.fail(`a type id of ${i} is out of range`);
    return Number(i);
  }

  /** length reads a byte count that must fit in what is left of the current message. */
  length(what: string): number {
    const n = this.uint();
    if (n > this.end - this.pos) this.fail(`${what} of ${n} bytes runs past the end of its message`);
    return n;
  }

  string(what: string): string {
    return this.text(this.length(what));
  }

  /** text reads n bytes, already checked to be in the message, as UTF-8. */
  text(n: number): string {
    const s = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.pos, n).toString('utf8');
    this.pos += n;
    return s;
  }

  /** float reads gob's float: the IEEE 754 bits byte-reversed, as an unsigned integer. */
  float(): number {
    const b = this.byte();
    const bits = Buffer.alloc(8);
    if (b < 0x80) {
      bits[7] = b;
    } else {
      const n = 256 - b;
      if (n > 8) this.fail(`a float announces ${n} bytes; gob's have at most 8`);
      if (this.end - this.pos < n) this.fail('it ends in the middle of a float');
      bits.set(this.bytes.subarray(this.pos, this.pos + n), 8 - n);
      this.pos += n;
    }
    return bits.readDoubleLE(0);
  }
}

/**
 * decodeGobMeta reads the bytes of one gob-encoded Meta, as gobwas/graceful
 * writes it, into a flat object like the one JSON meta gives: gob strings
 * become strings, integers and floats numbers, booleans booleans, nil
 * interfaces null. Throws BadMetaError for anything else: bytes that are not
 * such a gob stream, a value of another type (a slice, a struct, a nested
 * map), an integer beyond Number.MAX_SAFE_INTEGER, a NaN or infinite float,
 * or bytes after the value.
 */
export function decodeGobMeta(raw: Uint8Array): Meta {
  const r: Reader = new Reader(raw, raw.byteLength);
  const maps = new Map<number, number>(); // map type id -> elem type id
  for (;;) {
    r.end = raw.byteLength;
    if (r.pos >= r.end) r.fail('it ends before the value of the map');
    const length = r.length('a message');
    if (length === 0) r.fail('a message is empty');
    r.end = r.pos + length;
    const id = r.int();
    if (id < 0) {
      if (maps.size >= MAX_TYPES) r.fail(`it defines more than ${MAX_TYPES} types`);
      defineType(r, -id, maps);
      continue;
    }
    const elem = maps.get(id);
    if (elem === undefined) {
      r.fail(`its value is of type id ${id}` + (BASIC_NAMES.has(id) ? ` (${BASIC_NAMES.get(id)})` : '') + ', not a map of strings');
    }
    if (r.byte() !== 0) r.fail('a top-level value does not start with a zero field delta');
    const meta = readMap(r, elem);
    if (r.pos !== r.end || r.end !== raw.byteLength) r.fail('bytes follow the value of the map');
    return meta;
  }
}

/** defineType reads the wireType of type id: only a map from string to a basic type or interface is accepted. */
function defineType(r: Reader, id: number, maps: Map<number, number>): void {
  if (id < FIRST_USER_ID || maps.has(id)) r.fail(`it redefines type id ${id}`);
  // wireType: a struct whose field 3 (0-based) is the MapT; any other kind of type is refused.
  if (r.uint() !== 4) r.refuse('it defines a type that is not a map (a struct, slice, array or custom encoder)');
  let key = 0;
  let elem = 0;
  let field = -1;
  // mapType: CommonType (field 0: Name string, Id int), Key (field 1), Elem (field 2).
  for (let delta = r.uint(); delta !== 0; delta = r.uint()) {
    field += delta;
    if (field === 0) {
      let common = -1;
      for (let d = r.uint(); d !== 0; d = r.uint()) {
        common += d;
        if (common === 0) r.string('a type name');
        else if (common === 1) r.int();
        else r.fail(`a type's CommonType has an unknown field ${common}`);
      }
    } else if (field === 1) {
      key = r.int();
    } else if (field === 2) {
      elem = r.int();
    } else {
      r.fail(`a map type has an unknown field ${field}`);
    }
  }
  if (r.uint() !== 0) r.fail('a type definition holds more than a map type');
  if (r.pos !== r.end) r.fail('bytes follow a type definition in its message');
  if (key !== STRING) r.refuse(`the map's keys are of type id ${key}, not string`);
  if (elem !== INTERFACE && elem !== BOOL && elem !== INT && elem !== UINT && elem !== FLOAT && elem !== STRING) {
    r.refuse(`the map's values are of type id ${elem}, not interface{} or a string, integer, float or bool`);
  }
  maps.set(id, elem);
}

function readMap(r: Reader, elem: number): Meta {
  const count = r.uint();
  // Every entry takes at least two bytes (an empty key, a nil interface or a zero).
  if (count > (r.end - r.pos) / 2) r.fail(`the map announces ${count} entries, more than its message holds`);
  const entries: [string, MetaValue][] = new Array(count);
  for (let i = 0; i < count; i++) {
    const key = r.string('a key');
    entries[i] = [key, elem === INTERFACE ? readInterface(r, key) : readBasic(r, elem, key)];
  }
  // fromEntries defines own properties, so a key "__proto__" stays a key; the last of equal keys wins, as in Go.
  return Object.fromEntries(entries);
}

/** quoteKey: a key for an error message, cut to 40 characters. */
function quoteKey(key: string): string {
  return JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}...` : key);
}

function readInterface(r: Reader, key: string): MetaValue {
  const nameLength = r.length('a type name');
  if (nameLength === 0) return null; // a nil interface
  if (nameLength > MAX_TYPE_NAME) r.fail(`the type name of ${quoteKey(key)} is ${nameLength} bytes long`);
  const name = r.text(nameLength);
  const id = r.int();
  if (id !== BOOL && id !== INT && id !== UINT && id !== FLOAT && id !== STRING) {
    r.refuse(`the value of ${quoteKey(key)} is a ${name}, not a string, integer, float or bool`);
  }
  const n = r.length('an interface value');
  const outer = r.end;
  r.end = r.pos + n;
  if (r.byte() !== 0) r.fail('an interface value does not start with a zero field delta');
  const value = readBasic(r, id, key);
  if (r.pos !== r.end) r.fail(`bytes follow the value of ${quoteKey(key)}`);
  r.end = outer;
  return value;
}

function readBasic(r: Reader, id: number, key: string): MetaValue {
  switch (id) {
    case BOOL:
      return r.bigUint() !== 0n; // as Go reads it
    case STRING:
      return r.string('a string');
    case FLOAT: {
      const f = r.float();
      if (!Number.isFinite(f)) r.refuse(`the value of ${quoteKey(key)} is ${f}, which meta cannot hold`);
      return f;
    }
    default: {
      const i = id === INT ? r.bigInt() : r.bigUint();
      if (i > MAX_SAFE || i < -MAX_SAFE) r.refuse(`the value of ${quoteKey(key)} is ${i}, beyond Number.MAX_SAFE_INTEGER`);
      return Number(i);
    }
  }
}

// The type definition a fresh Go encoder sends for `type Meta map[string]interface{}`:
// message length, type id -65, wireType{MapT: mapType{CommonType{"Meta", 65}, Key: string, Elem: interface}}.
const META_TYPE = Buffer.from('14ff81040101044d65746101ff8200010c01100000', 'hex');
const NAME_STRING = Buffer.from('06737472696e670c', 'hex'); // "string", id 6
const NAME_BOOL = Buffer.from('04626f6f6c02', 'hex'); // "bool", id 1
const NAME_INT = Buffer.from('03696e7404', 'hex'); // "int", id 2
const NAME_FLOAT64 = Buffer.from('07666c6f6174363408', 'hex'); // "float64", id 4

class Writer {
  private parts: Uint8Array[] = [];
  private scratch: number[] = [];
  length = 0;

  bytes(b: Uint8Array): void {
    this.flush();
    this.parts.push(b);
    this.length += b.length;
  }

  byte(b: number): void {
    this.scratch.push(b);
    this.length++;
  }

  uint(u: bigint | number): void {
    let v = BigInt(u);
    if (v < 0x80n) {
      this.byte(Number(v));
      return;
    }
    const be: number[] = [];
    while (v > 0n) {
      be.unshift(Number(v & 0xffn));
      v >>= 8n;
    }
    this.byte(256 - be.length);
    for (const b of be) this.byte(b);
  }

  int(i: number): void {
    const v = BigInt(i);
    this.uint(v < 0n ? ((-v - 1n) << 1n) | 1n : v << 1n);
  }

  float(f: number): void {
    const le = Buffer.alloc(8);
    le.writeDoubleLE(f, 0);
    let start = 0;
    while (start < 8 && le[start] === 0) start++;
    if (start === 8) {
      this.byte(0);
    } else if (start === 7 && le[7]! < 0x80) {
      this.byte(le[7]!);
    } else {
      this.byte(256 - (8 - start));
      for (let i = start; i < 8; i++) this.byte(le[i]!);
    }
  }

  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.uint(b.length);
    this.bytes(b);
  }

  done(): Buffer {
    this.flush();
    return Buffer.concat(this.parts, this.length);
  }

  private flush(): void {
    if (this.scratch.length > 0) {
      this.parts.push(Uint8Array.from(this.scratch));
      this.scratch = [];
    }
  }
}

/**
 * encodeGobMeta writes meta as a fresh Go gob encoder writes a
 * `map[string]interface{}` named Meta, which gobwas/graceful's Meta reads:
 * strings as "string", safe integers as "int", other numbers as "float64",
 * booleans as "bool", null as a nil interface. Keys keep the object's order.
 * Throws InvalidArgumentError when meta is not a flat Meta.
 */
export function encodeGobMeta(meta: Meta, api = 'encodeGobMeta'): Buffer {
  const proto = typeof meta === 'object' && meta !== null && !Array.isArray(meta) ? Object.getPrototypeOf(meta) : undefined;
  if (proto !== Object.prototype && proto !== null) throw notFlat(api);
  const keys = Object.keys(meta);
  const body = new Writer();
  body.int(META_ID);
  body.byte(0); // a top-level value that is not a struct: field delta 0
  body.uint(keys.length);
  for (const key of keys) {
    body.string(key);
    const v = meta[key]!;
    if (v === null) {
      body.byte(0); // nil interface: an empty type name
      continue;
    }
    const value = new Writer();
    value.byte(0);
    if (typeof v === 'string') {
      body.bytes(NAME_STRING);
      value.string(v);
    } else if (typeof v === 'boolean') {
      body.bytes(NAME_BOOL);
      value.uint(v ? 1 : 0);
    } else if (Number.isSafeInteger(v)) {
      body.bytes(NAME_INT);
      value.int(v);
    } else if (typeof v === 'number' && Number.isFinite(v)) {
      body.bytes(NAME_FLOAT64);
      value.float(v);
    } else {
      throw notFlat(api);
    }
    const bytes = value.done();
    body.uint(bytes.length);
    body.bytes(bytes);
  }
  const message = body.done();
  const out = new Writer();
  out.bytes(META_TYPE);
  out.uint(message.length);
  out.bytes(message);
  return out.done();
}

function notFlat(api: string): Error {
  return invalidArgument(api, 'gob meta must be a flat object of strings, finite numbers, booleans or nulls, or a Uint8Array');
}

/**
 * withMetaFormat returns items with every flat Meta encoded in format: as
 * they are for 'json' (the connection writes JSON), gob bytes for 'gob'. A
 * Uint8Array meta always goes as it is. Throws InvalidArgumentError for an
 * unknown format or a meta gob cannot hold.
 */
export function withMetaFormat<T extends { meta?: Meta | Uint8Array | null }>(items: readonly T[], format: MetaFormat | undefined,
  api: string): readonly T[] {
  if (format === undefined || format === 'json') return items;
  if (format !== 'gob') throw invalidArgument(api, `metaFormat must be 'json' or 'gob', got ${JSON.stringify(format)}`);
  return items.map((item) => {
    const { meta } = item;
    if (meta === undefined || meta === null || meta instanceof Uint8Array) return item;
    return { ...item, meta: encodeGobMeta(meta, api) };
  });
}
