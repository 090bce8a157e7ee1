/**
 * Meta: the key-value payload that travels with each descriptor, as UTF-8
 * JSON of a flat object, or as gobwas/graceful's gob-encoded Meta (see
 * gob.ts). A peer may send anything else: the receiver then gets
 * `meta: null` and the raw bytes.
 */
import { BadMetaError, invalidArgument } from './errors.js';
import { decodeGobMeta } from './gob.js';
import { isMeta, type Meta } from './meta-value.js';

export { isMeta, type Meta, type MetaValue } from './meta-value.js';

const EMPTY = Buffer.alloc(0);

/**
 * encodeMeta turns meta into its record bytes: JSON for a Meta, the bytes as
 * they are for a Uint8Array, nothing for undefined or null.
 */
export function encodeMeta(meta: Meta | Uint8Array | null | undefined, api = 'encodeMeta'): Buffer {
  if (meta === undefined || meta === null) return EMPTY;
  if (meta instanceof Uint8Array) return Buffer.from(meta.buffer, meta.byteOffset, meta.byteLength);
  if (!isMeta(meta)) {
    throw invalidArgument(api, 'meta must be a flat object of strings, finite numbers, booleans or nulls, or a Uint8Array');
  }
  return Buffer.from(JSON.stringify(meta), 'utf8');
}

/**
 * decodeMeta parses record bytes: a flat JSON object (whitespace around it
 * allowed), or else a gob-encoded Meta as gobwas/graceful writes it. It
 * returns null when they are empty or neither; it never throws.
 */
export function decodeMeta(raw: Uint8Array): Meta | null {
  const n = raw.byteLength;
  if (n === 0) return null;
  let i = 0;
  while (i < n && isJsonSpace(raw[i]!)) i++;
  if (i < n && raw[i] === 0x7b /* { */) {
    try {
      const value: unknown = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, n).toString('utf8'));
      if (isMeta(value)) return value;
    } catch {
      // not JSON: it may still be gob, whose first byte (a length) can be '{' or a space
    }
  }
  try {
    return decodeGobMeta(raw);
  } catch (err) {
    if (err instanceof BadMetaError) return null;
    throw err;
  }
}

/** isJsonSpace: the four whitespace bytes of RFC 8259. */
function isJsonSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/**
 * writeMetaJson writes the JSON of a flat object into buf at offset, the
 * bytes JSON.stringify + UTF-8 would give, without the intermediate string
 * and Buffer. It covers the common case only: keys and string values of
 * printable ASCII needing no escape, and enough room in buf. It returns the
 * offset after the JSON, or -1 when it cannot (anything else, including what
 * encodeMeta refuses): the caller then uses encodeMeta. What it wrote on -1
 * is garbage. With a snapshot, it also records what it read: the prototype,
 * and each own enumerable key and its value, in order (incomplete on -1).
 */
export function writeMetaJson(meta: object, buf: Uint8Array, offset: number, snapshot?: MetaSnapshot): number {
  const proto = Object.getPrototypeOf(meta) as object | null;
  if ((proto !== Object.prototype && proto !== null) || Array.isArray(meta)) return -1;
  if (snapshot) snapshot.proto = proto;
  const end = buf.length;
  let o = offset;
  if (o >= end) return -1;
  buf[o++] = 0x7b; // {
  let first = true;
  for (const key in meta) {
    if (!Object.hasOwn(meta, key)) continue;
    const v: unknown = (meta as Record<string, unknown>)[key];
    if (snapshot) {
      snapshot.keys.push(key);
      snapshot.values.push(v);
    }
    if (!first) {
      if (o >= end) return -1;
      buf[o++] = 0x2c; // ,
    }
    first = false;
    o = writeJsonString(key, buf, o);
    if (o < 0 || o >= end) return -1;
    buf[o++] = 0x3a; // :
    if (typeof v === 'string') o = writeJsonString(v, buf, o);
    else if (typeof v === 'number') o = Number.isFinite(v) ? writeAscii(String(v), buf, o) : -1;
    else if (v === true) o = writeAscii('true', buf, o);
    else if (v === false) o = writeAscii('false', buf, o);
    else if (v === null) o = writeAscii('null', buf, o);
    else return -1;
    if (o < 0) return -1;
  }
  if (o >= end) return -1;
  buf[o++] = 0x7d; // }
  return o;
}

/** MetaSnapshot: what writeMetaJson read from a meta: its prototype, and its own enumerable keys and values, in order. */
export interface MetaSnapshot {
  proto: object | null;
  keys: string[];
  values: unknown[];
}

/** writeJsonString writes s quoted when it is printable ASCII with no quote or backslash; -1 otherwise. */
function writeJsonString(s: string, buf: Uint8Array, offset: number): number {
  const n = s.length;
  if (offset + n + 2 > buf.length) return -1;
  let o = offset;
  buf[o++] = 0x22;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return -1;
    buf[o++] = c;
  }
  buf[o++] = 0x22;
  return o;
}

/** writeAscii writes s, known to be ASCII (a number's digits, a literal). */
function writeAscii(s: string, buf: Uint8Array, offset: number): number {
  const n = s.length;
  if (offset + n > buf.length) return -1;
  for (let i = 0; i < n; i++) buf[offset + i] = s.charCodeAt(i);
  return offset + n;
}
