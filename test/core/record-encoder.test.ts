/**
 * record-encoder.ts: its records pack into the very messages encodeMessages
 * makes, and a meta sent again is written from its cached JSON only while
 * unchanged.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { encodeMessages, encodeMeta, type Meta } from '../../src/handoff.js';
import { RecordEncoder } from '../../src/record-encoder.js';

const valueArb = fc.oneof(
  fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }),
  fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null),
);
const keyArb = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.nat().map(String), fc.constantFrom('__proto__', 'constructor', 'a"b', 'a\\b', ''));
const metaArb = fc.dictionary(keyArb, valueArb, { maxKeys: 8 }) as fc.Arbitrary<Meta>;

describe('RecordEncoder', () => {
  const itemArb = fc.record({
    fd: fc.nat({ max: 1 << 20 }),
    meta: fc.oneof(metaArb, fc.uint8Array({ maxLength: 600 }), fc.constant(null), fc.constant(undefined),
      fc.string({ maxLength: 3000 }).map((s) => ({ s }))),
  });

  it('packs the same messages as encodeMessages, with any limits, growing past its buffer', () => {
    const enc = new RecordEncoder();
    fc.assert(fc.property(fc.array(itemArb, { maxLength: 60 }), fc.integer({ min: 8000, max: 20000 }), fc.integer({ min: 1, max: 253 }),
      (items, maxBytes, maxFds) => {
        const expected = encodeMessages(items.map(({ fd, meta }) => ({ fd, meta: encodeMeta(meta) })), maxBytes, maxFds);
        enc.encode(items, maxBytes, 'test');
        const got: { data: string; fds: number[] }[] = [];
        for (let r = 0; r < enc.count;) {
          const next = enc.messageEnd(r, maxBytes, maxFds);
          got.push({ data: enc.bytes.toString('hex', enc.start(r), enc.end(next)), fds: Array.from(enc.fds.subarray(r, next)) });
          r = next;
        }
        expect(got).to.deep.equal(expected.map((m) => ({ data: m.data.toString('hex'), fds: m.fds })));
        enc.release();
      }), { numRuns: 300 });
    // and a batch far larger than its buffer
    const big = Array.from({ length: 300 }, (_, i) => ({ fd: i, meta: { i, pad: 'x'.repeat(1000) } }));
    enc.encode(big, 4096, 'test');
    expect(enc.count).to.equal(300);
    expect(enc.end(300)).to.equal(big.reduce((n, { meta }) => n + 4 + JSON.stringify(meta).length, 0));
  });

  it('a meta sent again is written from its cached JSON only while unchanged: any change is encoded afresh', () => {
    /** records: the JSON of each record of the last encode(). */
    const records = (enc: RecordEncoder) => Array.from({ length: enc.count }, (_, r) => enc.bytes.toString('latin1', enc.start(r) + 4, enc.end(r + 1)));
    const enc = new RecordEncoder();
    const change = fc.oneof(
      fc.tuple(fc.constant('set'), keyArb, valueArb),
      fc.tuple(fc.constant('delete'), fc.nat({ max: 7 })),
      fc.tuple(fc.constant('reorder'), fc.nat({ max: 7 })),
      fc.tuple(fc.constant('proto'), fc.boolean()),
    );
    fc.assert(fc.property(metaArb, fc.array(change, { maxLength: 12 }), (start, changes) => {
      const meta: Record<string, unknown> = { ...start };
      for (const c of [null, ...changes]) {
        const keys = Object.keys(meta);
        if (c?.[0] === 'set') meta[c[1] as string] = c[2];
        else if (c?.[0] === 'delete' && keys.length > 0) delete meta[keys[(c[1] as number) % keys.length]!];
        else if (c?.[0] === 'reorder' && keys.length > 0) {
          const k = keys[(c[1] as number) % keys.length]!;
          const v = meta[k];
          delete meta[k];
          meta[k] = v;
        } else if (c?.[0] === 'proto') Object.setPrototypeOf(meta, c[1] ? null : Object.prototype);
        let want: string;
        try {
          want = encodeMeta(meta as Meta).toString('latin1');
        } catch {
          continue; // a prototype of null with a '__proto__' key, say: refused either way
        }
        enc.encode([{ fd: 1, meta: meta as Meta }, { fd: 2, meta: meta as Meta }, { fd: 3, meta: meta as Meta }], 1 << 20, 'test');
        expect(records(enc)).to.deep.equal([want, want, want]);
      }
    }), { numRuns: 300 });
    // A meta whose getter returns a new value at each read: never a stale JSON.
    let n = 0;
    const counting = Object.defineProperty({}, 'n', { enumerable: true, get: () => n++ }) as Meta;
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) {
      enc.encode([{ fd: 1, meta: counting }, { fd: 2, meta: counting }], 4096, 'test');
      for (const json of records(enc)) seen.push((JSON.parse(json) as { n: number }).n);
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i]).to.be.above(seen[i - 1]!);
    // A meta turned into one writeMetaJson declines is refused as before.
    const m: Record<string, unknown> = { a: 1 };
    enc.encode([{ fd: 1, meta: m as Meta }, { fd: 1, meta: m as Meta }], 4096, 'test');
    m.a = [1];
    expect(() => enc.encode([{ fd: 1, meta: m as Meta }], 4096, 'send')).to.throw(/flat object/);
  });

  it('refuses a bad fd or meta, and a record longer than a message, with coded errors', () => {
    const enc = new RecordEncoder();
    for (const fd of [-1, 1.5, NaN, '3', 2 ** 31]) {
      expect(() => enc.encode([{ fd: fd as number }], 4096, 'send'), String(fd)).to.throw(/send: fd must be a non-negative integer/)
        .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    }
    expect(() => enc.encode([{ fd: 1, meta: { a: [1] } as never }], 4096, 'send')).to.throw(/flat object/)
      .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    expect(() => enc.encode([{ fd: 1, meta: new Uint8Array(4093) }], 4096, 'send')).to.throw(/4093 bytes; one message holds at most 4092/)
      .with.property('code', 'ERR_GRACEFUL_META_TOO_LARGE');
  });
});
