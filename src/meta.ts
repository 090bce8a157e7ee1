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
