/**
 * Meta values: what a descriptor's meta may hold, a flat object of strings,
 * finite numbers, booleans and nulls. Both codecs build on this model: the
 * JSON one (meta.ts) and the gob one (gob.ts), which meta.ts also reads.
 */

/** MetaValue: one value of a Meta. */
export type MetaValue = string | number | boolean | null;
/** Meta: a flat object of strings, finite numbers, booleans and nulls. */
export type Meta = { [key: string]: MetaValue };

/** isMetaValue tells whether v may be a value of a Meta (a number must be finite). */
export function isMetaValue(v: unknown): v is MetaValue {
  return v === null || typeof v === 'string' || typeof v === 'boolean' ||
    (typeof v === 'number' && Number.isFinite(v));
}

/** isMeta tells whether value is a flat object that encodeMeta accepts: a plain or null-prototype object of MetaValues. */
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
