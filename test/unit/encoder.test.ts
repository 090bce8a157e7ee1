/**
 * The send side's meta writer: the JSON it writes in place is
 * JSON.stringify's, byte for byte (the records: test/core/record-encoder).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import type { Meta } from '../../src/handoff.js';
import { writeMetaJson } from '../../src/meta.js';

const valueArb = fc.oneof(
  fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }),
  fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null),
);
const keyArb = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.nat().map(String), fc.constantFrom('__proto__', 'constructor', 'a"b', 'a\\b', ''));
const metaArb = fc.dictionary(keyArb, valueArb, { maxKeys: 8 }) as fc.Arbitrary<Meta>;

/** encodeOne runs writeMetaJson into a buffer of size bytes, or null when it declines. */
function encodeOne(meta: object, size = 4096): Buffer | null {
  const buf = Buffer.alloc(size);
  const end = writeMetaJson(meta, buf, 3);
  return end < 0 ? null : buf.subarray(3, end);
}

describe('meta: writeMetaJson', () => {
  it('writes what JSON.stringify gives, or declines', () => {
    fc.assert(fc.property(metaArb, (meta) => {
      const got = encodeOne(meta);
      if (got !== null) expect(got.toString('latin1')).to.equal(JSON.stringify(meta));
    }), { numRuns: 2000 });
  });

  it('handles the common cases itself', () => {
    const cases: object[] = [
      {}, { name: 'http', addr: '[::]:80' }, { i: 0, n: -0, f: 1.5e-7, big: 1e21, neg: -12, t: true, u: false, z: null },
      { 2: 'b', 1: 'a', x: 'y' }, Object.assign(Object.create(null) as object, { a: 'b' }),
    ];
    for (const meta of cases) expect(encodeOne(meta)?.toString(), JSON.stringify(meta)).to.equal(JSON.stringify(meta));
  });

  it('declines what needs escaping or is not ASCII, what encodeMeta refuses, and a buffer too small', () => {
    const declined: object[] = [
      { q: 'a"b' }, { 'k\\': 1 }, { nl: 'a\nb' }, { u: 'é' }, { e: '😀' },
      { n: NaN }, { i: Infinity }, { o: {} }, { a: [1] }, { f: () => 1 }, { u: undefined }, [1], new Date(0), new Map(),
    ];
    for (const meta of declined) expect(encodeOne(meta), String(Object.keys(meta))).to.equal(null);
    expect(encodeOne({ name: 'http' }, 3 + 14)).to.equal(null);
    expect(encodeOne({ name: 'http' }, 3 + 15)?.toString()).to.equal('{"name":"http"}');
  });
});
