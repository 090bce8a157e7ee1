/**
 * Meta: the key-value payload that travels with each descriptor, as UTF-8
 * JSON of a flat object. A peer may send anything else (gobwas/graceful's Go
 * Meta is gob-encoded): the receiver then gets `meta: null` and the raw bytes.
 */
import { invalidArgument } from './errors.js';

export type MetaValue = string | number | boolean | null;
/** Meta: a flat object of strings, finite numbers, booleans and nulls. */
export type Meta = { [key: string]: MetaValue };

const EMPTY = Buffer.alloc(0);

function isMetaValue(v: unknown): v is MetaValue {
  return v === null || typeof v === 'string' || typeof v === 'boolean' ||
    (typeof v === 'number' && Number.isFinite(v));
}

/** isMeta tells whether value is a flat object that encodeMeta accepts. */
export function isMeta(value: unknown): value is Meta {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  // for...in + hasOwn rather than Object.values: no array per call.
  for (const key in value) {
    if (Object.hasOwn(value, key) && !isMetaValue((value as Record<string, unknown>)[key])) return false;
  }
  return true;
}

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

/** decodeMeta parses record bytes; it returns null when they are empty or not a flat JSON object. */
export function decodeMeta(raw: Uint8Array): Meta | null {
  if (raw.byteLength === 0 || raw[0] !== 0x7b /* { */) return null;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'));
  } catch {
    return null;
  }
  return isMeta(value) ? value : null;
}

/**
 * writeMetaJson writes the JSON of a flat object into buf at offset, the
 * bytes JSON.stringify + UTF-8 would give, without the intermediate string
 * and Buffer. It covers the common case only: keys and string values of
 * printable ASCII needing no escape, and enough room in buf. It returns the
 * offset after the JSON, or -1 when it cannot (anything else, including what
 * encodeMeta refuses): the caller then uses encodeMeta. What it wrote on -1
 * is garbage.
 */
export function writeMetaJson(meta: object, buf: Uint8Array, offset: number): number {
  const proto = Object.getPrototypeOf(meta);
  if ((proto !== Object.prototype && proto !== null) || Array.isArray(meta)) return -1;
  const end = buf.length;
  let o = offset;
  if (o >= end) return -1;
  buf[o++] = 0x7b; // {
  let first = true;
  for (const key in meta) {
    if (!Object.hasOwn(meta, key)) continue;
    const v: unknown = (meta as Record<string, unknown>)[key];
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
