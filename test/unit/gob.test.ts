/**
 * Gob meta against golden bytes from Go's encoding/gob (test/fixtures/gob-vectors.ts,
 * made by test/fixtures/gob/vectors/main.go), and the decoder against hostile bytes:
 * only a Meta or BadMetaError may come out of decodeGobMeta, only a Meta or null
 * out of decodeMeta.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { decodeGobMeta, encodeGobMeta, decodeMeta, encodeMeta, isMeta, BadMetaError, type Meta } from '../../src/handoff.js';
import { gobVectors } from '../fixtures/gob-vectors.js';

/** decodeOrCode: the Meta, or the code of what decodeGobMeta threw (failing on anything uncoded). */
function decodeOrCode(bytes: Uint8Array): Meta | string {
  try {
    return decodeGobMeta(bytes);
  } catch (err) {
    if (!(err instanceof BadMetaError)) throw err;
    expect(err.code).to.equal('ERR_GRACEFUL_BAD_META');
    expect(err.message).to.match(/^gob meta: /);
    return err.code;
  }
}

/** checkDecoded: a Meta that decodeGobMeta returns is flat and no bigger than its input allows. */
function checkDecoded(result: Meta | string, bytes: Uint8Array): void {
  if (typeof result === 'string') return;
  expect(isMeta(result)).to.equal(true);
  expect(Object.keys(result).length).to.be.at.most(bytes.length / 2);
}

/** wellFormed: s survives UTF-8 (no lone surrogate). */
const wellFormed = (s: string): boolean => Buffer.from(s, 'utf8').toString('utf8') === s;

const SOME = gobVectors.filter((v) => ['several', 'string', 'float64', 'int min safe', 'map of strings', 'bool true', 'nil'].includes(v.name));

describe('gob meta: golden vectors from Go', () => {
  it('has the vectors', () => {
    expect(gobVectors.length).to.be.at.least(40);
    expect(SOME.length).to.equal(7);
  });

  for (const v of gobVectors) {
    it(`decodes ${v.name}`, () => {
      const bytes = Buffer.from(v.hex, 'hex');
      const want = JSON.parse(v.want) as Meta | null;
      expect(decodeMeta(bytes)).to.deep.equal(want);
      if (want === null) {
        expect(() => decodeGobMeta(bytes)).to.throw(BadMetaError);
        return;
      }
      const got = decodeGobMeta(bytes);
      expect(Object.getPrototypeOf(got)).to.equal(Object.prototype);
      expect(Object.keys(got)).to.have.members(Object.keys(want));
      if (v.exact) expect(encodeGobMeta(want).toString('hex')).to.equal(v.hex);
      expect(decodeGobMeta(encodeGobMeta(want))).to.deep.equal(want);
    });
  }

  it('keeps a key __proto__ a key, and the prototype alone', () => {
    const v = gobVectors.find((x) => x.name === '__proto__ key')!;
    const got = decodeGobMeta(Buffer.from(v.hex, 'hex'));
    expect(Object.hasOwn(got, '__proto__')).to.equal(true);
    expect(got['__proto__']).to.equal('x');
    expect(Object.getPrototypeOf(got)).to.equal(Object.prototype);
  });

  it('names the reason of a refusal and what a Go peer may send', () => {
    const big = gobVectors.find((x) => x.name === 'uint64 max')!;
    expect(() => decodeGobMeta(Buffer.from(big.hex, 'hex'))).to.throw(BadMetaError,
      'gob meta: the value of "n" is 18446744073709551615, beyond Number.MAX_SAFE_INTEGER (at byte 47): ' +
      'a Go peer must send a Meta of strings, integers within ±(2^53 - 1), finite floats, booleans or nil; read the raw bytes for anything else');
    const slice = gobVectors.find((x) => x.name === 'slice value')!;
    expect(() => decodeGobMeta(Buffer.from(slice.hex, 'hex'))).to.throw(BadMetaError, /^gob meta: the value of "s" is a \[\]int, not a string, integer, float or bool/);
    const inStruct = gobVectors.find((x) => x.name === 'struct value')!;
    expect(() => decodeGobMeta(Buffer.from(inStruct.hex, 'hex'))).to.throw(BadMetaError, /^gob meta: the value of "p" is a main\.point, not/);
    const struct = gobVectors.find((x) => x.name === 'not a map: struct')!;
    expect(() => decodeGobMeta(Buffer.from(struct.hex, 'hex'))).to.throw(BadMetaError, /^gob meta: it defines a type that is not a map/);
    expect(() => decodeGobMeta(Buffer.from('{"a":1}'))).to.throw(BadMetaError, /the peer did not send a gob-encoded Meta$/);
  });
});

describe('gob meta: encodeGobMeta', () => {
  it('writes what Go writes for each kind of value, in the object\'s key order', () => {
    const meta = { name: 'ln', fd: 3, ratio: 0.5, ok: false, none: null, neg: -7 };
    const bytes = encodeGobMeta(meta);
    expect(decodeGobMeta(bytes)).to.deep.equal(meta);
    expect(Object.keys(decodeGobMeta(bytes))).to.deep.equal(Object.keys(meta));
    // the type definition a fresh Go encoder sends for Meta, then the value message of type id 65
    expect(bytes.subarray(0, 21).toString('hex')).to.equal('14ff81040101044d65746101ff8200010c01100000');
    expect(bytes.subarray(22, 25).toString('hex')).to.equal('ff8200');
  });

  it('writes integers beyond 2^53 and fractions as float64, safe integers as int', () => {
    const bytes = encodeGobMeta({ a: 2 ** 60, b: 1, c: 0.1 });
    const text = bytes.toString('latin1');
    expect(text.split('float64').length - 1).to.equal(2);
    expect(text.split('\x03int').length - 1).to.equal(1);
    expect(decodeGobMeta(bytes)).to.deep.equal({ a: 2 ** 60, b: 1, c: 0.1 });
  });

  it('refuses what is not a flat Meta, with ERR_GRACEFUL_INVALID_ARGUMENT', () => {
    for (const bad of [{ a: { b: 1 } }, { a: NaN }, { a: Infinity }, { a: [1] }, { a: undefined }, [1], new Map(), 'x', null]) {
      expect(() => encodeGobMeta(bad as unknown as Meta, 'send')).to.throw(/^send: gob meta must be a flat object/)
        .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    }
  });

  it('round-trips any flat Meta through gob', () => {
    const value = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.integer(),
      fc.maxSafeInteger(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null));
    const key = fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('__proto__', 'constructor', 'toString', ''));
    fc.assert(fc.property(fc.array(fc.tuple(key, value), { maxLength: 20 }), (entries) => {
      // lone surrogates do not survive UTF-8 in any encoding: leave them out
      const meta = Object.fromEntries(entries.filter(([k, v]) => wellFormed(k) && (typeof v !== 'string' || wellFormed(v)))) as Meta;
      const want = Object.fromEntries(Object.entries(meta).map(([k, v]) => [k, Object.is(v, -0) ? 0 : v]));
      expect(decodeGobMeta(encodeGobMeta(meta))).to.deep.equal(want);
      expect(decodeMeta(encodeGobMeta(meta))).to.deep.equal(want);
    }), { numRuns: 2000 });
  });
});

describe('gob meta: hostile bytes', () => {
  it('refuses every truncation and every extension of every vector', () => {
    for (const v of gobVectors) {
      const bytes = Buffer.from(v.hex, 'hex');
      for (let n = 0; n < bytes.length; n++) expect(decodeOrCode(bytes.subarray(0, n)), `${v.name} cut at ${n}`).to.equal('ERR_GRACEFUL_BAD_META');
      expect(decodeOrCode(Buffer.concat([bytes, Buffer.from([0])])), v.name).to.equal('ERR_GRACEFUL_BAD_META');
    }
  });

  it('every byte of some vectors replaced by every value: a flat Meta or a coded error', () => {
    let decoded = 0;
    for (const v of SOME) {
      const bytes = Buffer.from(v.hex, 'hex');
      for (let i = 0; i < bytes.length; i++) {
        for (let b = 0; b < 256; b++) {
          const m = Buffer.from(bytes);
          m[i] = b;
          const r = decodeOrCode(m);
          checkDecoded(r, m);
          if (typeof r !== 'string') decoded++;
        }
      }
    }
    expect(decoded).to.be.above(0); // some replacements (a character of a string) still decode
  });

  it('announced sizes beyond the input are refused before anything is allocated for them', () => {
    const head = '14ff81040101044d65746101ff8200010c01100000';
    const cases: [string, RegExp][] = [
      // a value message announcing 2^53 - 1 entries in 5 bytes
      [head + '0bff8200f91fffffffffffff', /the map announces 9007199254740991 entries/],
      // a message length of 2^64 - 1
      [head + 'f8ffffffffffffffff', /a length or count of 18446744073709551615 is out of range/],
      // an unsigned integer of 9 bytes
      [head + 'f7', /announces 9 bytes; gob's have at most 8/],
      // a key of 1 GiB
      [head + '09ff820001fc40000000', /a key of 1073741824 bytes runs past the end of its message/],
      // a type name of 300 bytes
      [head + '0aff82000101' + '61' + 'fe012c', /runs past the end|is 300 bytes long/],
      // a value of type int at top level
      ['03040002', /its value is of type id 2 \(int\), not a map of strings/],
      // the same type defined twice
      [head + head + '04ff820000', /it redefines type id 65/],
    ];
    for (const [hex, re] of cases) expect(() => decodeGobMeta(Buffer.from(hex, 'hex')), hex).to.throw(BadMetaError, re);
    const defs = Array.from({ length: 5 }, (_, i) => `14ff${(0x81 + 2 * i).toString(16)}040101044d65746101ff8200010c01100000`).join('');
    expect(() => decodeGobMeta(Buffer.from(defs + '04ff820000', 'hex'))).to.throw(BadMetaError, /it defines more than 4 types/);
  });

  it('random bytes: a flat Meta or a coded error, never anything else', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      checkDecoded(decodeOrCode(bytes), bytes);
      const m = decodeMeta(bytes);
      expect(m === null || isMeta(m)).to.equal(true);
    }), { numRuns: 5000 });
  });

  it('random bytes after a valid type definition and value header: a flat Meta or a coded error', () => {
    const head = Buffer.from('14ff81040101044d65746101ff8200010c01100000', 'hex');
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 20 }), (tail, count) => {
      const body = Buffer.concat([Buffer.from([0xff, 0x82, 0x00, count]), tail]);
      const bytes = Buffer.concat([head, Buffer.from([0xfe, body.length >> 8, body.length & 0xff]), body]);
      checkDecoded(decodeOrCode(bytes), bytes);
    }), { numRuns: 5000 });
  });

  it('splices of valid encodings: a flat Meta or a coded error', () => {
    const valid = gobVectors.map((v) => Buffer.from(v.hex, 'hex'));
    fc.assert(fc.property(fc.constantFrom(...valid), fc.constantFrom(...valid), fc.nat(), fc.nat(), fc.uint8Array({ maxLength: 8 }),
      (a, b, i, j, noise) => {
        const bytes = Buffer.concat([a.subarray(0, i % (a.length + 1)), noise, b.subarray(j % (b.length + 1))]);
        checkDecoded(decodeOrCode(bytes), bytes);
      }), { numRuns: 5000 });
  });

  it('decodes 64 KiB of hostile bytes in bounded time', () => {
    // the largest meta a receiver accepts by default, as a map of 16382 empty keys with nil values
    const n = 16382;
    const body = Buffer.concat([Buffer.from([0xff, 0x82, 0x00, 0xfe, n >> 8, n & 0xff]), Buffer.alloc(2 * n)]);
    const bytes = Buffer.concat([Buffer.from('14ff81040101044d65746101ff8200010c01100000', 'hex'),
      Buffer.from([0xfd, 0, body.length >> 8, body.length & 0xff]), body]);
    const t = process.hrtime.bigint();
    expect(decodeGobMeta(bytes)).to.deep.equal({ '': null }); // equal keys: the last one wins, as in Go
    expect(Number(process.hrtime.bigint() - t) / 1e6).to.be.below(1000);
  });
});

describe('JSON meta: whitespace', () => {
  it('accepts a JSON object with whitespace around it', () => {
    for (const raw of [' {"a":1}', '\n\t\r {"a":1}', '{"a":1}\n', '  { "a" : 1 }  ']) expect(decodeMeta(Buffer.from(raw)), JSON.stringify(raw)).to.deep.equal({ a: 1 });
    expect(decodeMeta(encodeMeta({ a: 'x' }))).to.deep.equal({ a: 'x' });
  });

  it('still gives null for what is no flat JSON object, even after whitespace', () => {
    for (const raw of [' ', ' [1]', ' "x"', ' {"a":{}}', '\v{"a":1}', '\u00a0{"a":1}', ' {broken']) {
      expect(decodeMeta(Buffer.from(raw)), JSON.stringify(raw)).to.equal(null);
    }
  });
});
