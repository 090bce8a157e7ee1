/** meta.ts: the payload that travels with each descriptor (flat JSON, or gob). */
import { expect } from 'chai';
import { decodeMeta, encodeMeta, isMeta, writeMetaJson } from '../../src/meta.js';
import { encodeGobMeta } from '../../src/gob.js';

describe('meta', () => {
  it('isMeta accepts flat objects of strings, finite numbers, booleans and nulls only', () => {
    expect(isMeta({})).to.equal(true);
    expect(isMeta({ a: 'x', b: 1.5, c: true, d: null })).to.equal(true);
    expect(isMeta(Object.assign(Object.create(null), { a: 1 }))).to.equal(true);
    expect(isMeta(null)).to.equal(false);
    expect(isMeta([])).to.equal(false);
    expect(isMeta('x')).to.equal(false);
    expect(isMeta({ a: { b: 1 } })).to.equal(false);
    expect(isMeta({ a: [1] })).to.equal(false);
    expect(isMeta({ a: NaN })).to.equal(false);
    expect(isMeta({ a: Infinity })).to.equal(false);
    expect(isMeta({ a: undefined })).to.equal(false);
    expect(isMeta(new Map())).to.equal(false);
    expect(isMeta(new Date())).to.equal(false);
  });

  it('encodeMeta writes JSON for a Meta, the bytes as they are for a Uint8Array, nothing for null/undefined', () => {
    expect(encodeMeta({ kind: 'tcp', port: 80 }).toString()).to.equal('{"kind":"tcp","port":80}');
    expect(encodeMeta(undefined).length).to.equal(0);
    expect(encodeMeta(null).length).to.equal(0);
    const bytes = new Uint8Array([9, 8, 7, 6]);
    const view = bytes.subarray(1, 3);
    const out = encodeMeta(view);
    expect([...out]).to.deep.equal([8, 7]);
    expect(out.buffer).to.equal(bytes.buffer); // a view, not a copy
  });

  it('encodeMeta refuses anything else with ERR_GRACEFUL_INVALID_ARGUMENT naming the API', () => {
    for (const bad of [{ a: { b: 1 } }, { a: NaN }, [1, 2], 'text', 5]) {
      expect(() => encodeMeta(bad as never, 'send')).to.throw(
        'send: meta must be a flat object of strings, finite numbers, booleans or nulls, or a Uint8Array',
      ).with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    }
    expect(() => encodeMeta({ a: [] } as never)).to.throw(/^encodeMeta: meta must be/);
  });

  it('decodeMeta reads flat JSON (whitespace around it allowed) and gob, and gives null for anything else', () => {
    expect(decodeMeta(Buffer.from('{"a":1,"b":"x"}'))).to.deep.equal({ a: 1, b: 'x' });
    expect(decodeMeta(Buffer.from(' \t\r\n{"a":null} \n'))).to.deep.equal({ a: null });
    expect(decodeMeta(Buffer.alloc(0))).to.equal(null);
    expect(decodeMeta(Buffer.from('{"a":{"nested":1}}'))).to.equal(null);
    expect(decodeMeta(Buffer.from('[1,2]'))).to.equal(null);
    expect(decodeMeta(Buffer.from('{"a":'))).to.equal(null);
    expect(decodeMeta(Buffer.from([0xff, 0x00, 0x13]))).to.equal(null);
    const gob = encodeGobMeta({ name: 'listener', addr: '127.0.0.1:80' });
    expect(decodeMeta(gob)).to.deep.equal({ name: 'listener', addr: '127.0.0.1:80' });
    // A view into a larger buffer decodes only its own bytes.
    const big = Buffer.from('xx{"k":"v"}yy');
    expect(decodeMeta(big.subarray(2, 11))).to.deep.equal({ k: 'v' });
  });

  it('writeMetaJson writes exactly what JSON.stringify writes, or -1 when it cannot', () => {
    const buf = Buffer.alloc(128, 0xee);
    const meta = { kind: 'tcp', port: 8080, tls: false, on: true, none: null, f: -1.25 };
    const end = writeMetaJson(meta, buf, 3);
    expect(buf.subarray(3, end).toString()).to.equal(JSON.stringify(meta));
    expect(buf[2]).to.equal(0xee);
    expect(writeMetaJson({}, buf, 0)).to.equal(2);
    expect(buf.subarray(0, 2).toString()).to.equal('{}');
    // Not the common case: escapes, non-ASCII, non-finite, nested, arrays, class instances, no room.
    expect(writeMetaJson({ a: 'say "hi"' }, buf, 0)).to.equal(-1);
    expect(writeMetaJson({ a: 'é' }, buf, 0)).to.equal(-1);
    expect(writeMetaJson({ a: 'x\n' }, buf, 0)).to.equal(-1);
    expect(writeMetaJson({ a: NaN }, buf, 0)).to.equal(-1);
    expect(writeMetaJson({ a: { b: 1 } }, buf, 0)).to.equal(-1);
    expect(writeMetaJson([1], buf, 0)).to.equal(-1);
    expect(writeMetaJson(new Date(), buf, 0)).to.equal(-1);
    expect(writeMetaJson({ long: 'x'.repeat(200) }, buf, 0)).to.equal(-1);
    expect(writeMetaJson({}, buf, 128)).to.equal(-1);
    const exact = Buffer.alloc('{"a":1}'.length);
    expect(writeMetaJson({ a: 1 }, exact, 0)).to.equal(exact.length);
    expect(writeMetaJson({ a: 1 }, Buffer.alloc(exact.length - 1), 0)).to.equal(-1);
  });
});
