/** The frame codec and meta, on their own. */
import { expect } from 'chai';
import { ONE_PIECE_BYTES } from '../../src/wire.js';
import { encodeMessages, FrameDecoder, encodeMeta, decodeMeta, isMeta, type FrameRecord } from '../../src/handoff.js';

const rec = (fd: number, meta: string) => ({ fd, meta: Buffer.from(meta) });

describe('wire: encodeMessages', () => {
  it('packs records in order into as few messages as the byte and descriptor limits allow', () => {
    const records = Array.from({ length: 600 }, (_, i) => rec(i, `{"i":${i}}`));
    const messages = encodeMessages(records, 4096, 253);
    expect(messages.map((m) => m.fds.length)).to.deep.equal([253, 253, 94]);
    const small = encodeMessages(records.slice(0, 10), 40, 253);
    expect(small.every((m) => m.data.length <= 40)).to.equal(true);
    expect(small.flatMap((m) => m.fds)).to.deep.equal([...Array(10).keys()]);
  });

  it('writes gobwas/graceful framing: uint32 LE length then the meta', () => {
    const [m] = encodeMessages([rec(7, 'ab'), rec(8, '')]);
    expect(m!.data.toString('hex')).to.equal('020000006162' + '00000000');
    expect(m!.fds).to.deep.equal([7, 8]);
  });

  it('refuses a meta that cannot fit one message', () => {
    expect(() => encodeMessages([rec(1, 'x'.repeat(4093))], 4096)).to.throw(/4093 bytes; one message holds at most 4092/)
      .with.property('code', 'ERR_GRACEFUL_META_TOO_LARGE');
  });
});

describe('wire: FrameDecoder', () => {
  const frame = (...metas: string[]) => Buffer.concat(encodeMessages(metas.map((m, i) => rec(i, m)), 1 << 20).map((m) => m.data));

  it('pairs records with descriptors across arbitrary read boundaries', () => {
    const data = frame('{"a":1}', '', '{"b":2}');
    for (let cut = 1; cut < data.length; cut++) {
      const d = new FrameDecoder();
      const got = [...d.push(data.subarray(0, cut), [10, 11, 12], true), ...d.push(data.subarray(cut), [])];
      expect(got.map((r) => [r.fd, r.raw.toString()])).to.deep.equal([[10, '{"a":1}'], [11, ''], [12, '{"b":2}']]);
      d.end();
    }
  });

  it('copies each read once: raw metas and the remainder are views of the copy, never of the caller\'s buffer', () => {
    const data = frame('{"a":1}', '{"b":2}', '{"c":3}');
    const cut = data.length - 3;
    const read = Buffer.from(data.subarray(0, cut));
    const d = new FrameDecoder();
    const first = d.push(read, [1, 2, 3], true);
    expect(first.map((r) => r.raw.toString())).to.deep.equal(['{"a":1}', '{"b":2}']);
    expect(first[0]!.raw.buffer).to.equal(first[1]!.raw.buffer);
    read.fill(0); // the caller reuses its buffer
    const rest = Buffer.from(data.subarray(cut));
    const second = d.push(rest, []);
    rest.fill(0);
    expect([...first, ...second].map((r) => [r.fd, r.raw.toString()])).to.deep.equal([[1, '{"a":1}'], [2, '{"b":2}'], [3, '{"c":3}']]);
    d.end();
  });

  it('pushGiven keeps views of the given buffer, and copies only to join a record begun in an earlier read', () => {
    const data = frame('{"a":1}', '{"b":2}', '{"c":3}');
    const cut = data.length - 3;
    const given = Buffer.concat([Buffer.from('xx'), data]);
    const d = new FrameDecoder();
    const out: FrameRecord[] = [];
    d.pushGiven(given, 2, cut, [1, 2, 3], true, out);
    expect(out.map((r) => r.raw.toString())).to.deep.equal(['{"a":1}', '{"b":2}']);
    d.pushGiven(given, 2 + cut, 3, [], false, out);
    expect(out[2]!.raw.toString()).to.equal('{"c":3}');
    given.fill(0x20);
    expect(out.map((r) => r.raw.toString())).to.deep.equal(['       ', '       ', '{"c":3}']); // views; the joined one a copy
    d.end();
  });

  it('pushTo reads the first bytes of a larger buffer and appends to a list, left as it was on an error', () => {
    const data = frame('{"a":1}', '{"b":2}');
    const big = Buffer.concat([data, Buffer.from('garbage after the read')]);
    const out: FrameRecord[] = [{ fd: 99, raw: Buffer.alloc(0) }];
    const d = new FrameDecoder();
    d.pushTo(big, [1, 2], false, out, data.length);
    expect(out.map((r) => [r.fd, r.raw.toString()])).to.deep.equal([[99, ''], [1, '{"a":1}'], [2, '{"b":2}']]);
    expect(() => d.pushTo(frame('{}', '{}'), [3], false, out)).to.throw(/more meta records than descriptors/);
    expect(out).to.have.length(3);
    expect(d.takeFds()).to.deep.equal([3]);
  });

  it('hands back every descriptor it holds after an error', () => {
    const d = new FrameDecoder();
    expect(() => d.push(frame('{}'), [3, 4])).to.throw(/1 more descriptor/).with.property('code', 'ERR_GRACEFUL_FD_COUNT_MISMATCH');
    expect(d.takeFds()).to.deep.equal([3, 4]);
    expect(() => d.push(frame('{}'), [6])).to.throw(/already failed/).with.property('code', 'ERR_GRACEFUL_BAD_FRAME');
    // A read that filled the buffer may stop inside its message: checked at the next one.
    const e = new FrameDecoder();
    expect(e.push(frame('{}'), [3, 4], true).map((r) => r.fd)).to.deep.equal([3]);
    expect(() => e.push(frame('{}'), [5])).to.throw(/1 more descriptor/).with.property('code', 'ERR_GRACEFUL_FD_COUNT_MISMATCH');
    expect(e.takeFds()).to.deep.equal([4, 5]);
  });

  it('tells a meta that runs past its message from a missing record', () => {
    const d = new FrameDecoder();
    const head = Buffer.alloc(4);
    head.writeUInt32LE(100);
    d.push(Buffer.concat([head, Buffer.from('{"a":')]), [1]);
    expect(() => d.push(frame('{}'), [2])).to.throw(/runs past the end of its message/).with.property('code', 'ERR_GRACEFUL_BAD_FRAME');
    expect(d.takeFds()).to.deep.equal([1, 2]);
  });

  it('a meta that runs past a message of one piece fails at the next bytes, even bytes that complete it', () => {
    const head = Buffer.alloc(4);
    head.writeUInt32LE(12);
    const cut = Buffer.concat([frame('{"i":0}'), head, Buffer.from('{"a":')]); // a whole record, then a cut one
    // Completed by plain bytes, or by the next message's first bytes: the records of the cut message are not handed out.
    for (const [rest, fds] of [[Buffer.from('1234567'), []], [Buffer.concat([Buffer.from('1234567'), frame('{}')]), [3]]] as const) {
      const d = new FrameDecoder();
      expect(d.push(cut, [1, 2]).map((r) => r.fd)).to.deep.equal([1]);
      expect(() => d.push(rest, fds)).to.throw(/runs past the end of its message/).with.property('code', 'ERR_GRACEFUL_BAD_FRAME');
      expect(d.takeFds()).to.deep.equal([2, ...fds]);
    }
    // A read that filled the buffer may stop inside the message: the rest follows.
    const d = new FrameDecoder();
    d.push(cut, [1, 2], true);
    expect(d.push(Buffer.from('1234567'), []).map((r) => [r.fd, r.raw.toString()])).to.deep.equal([[2, '{"a":1234567']]);
    // A message over ONE_PIECE_BYTES may come in pieces (a partial write, a large message): its rest follows.
    const big = frame(JSON.stringify({ pad: 'x'.repeat(ONE_PIECE_BYTES) }));
    const e = new FrameDecoder();
    expect(e.push(big.subarray(0, ONE_PIECE_BYTES), [1])).to.deep.equal([]);
    expect(e.push(big.subarray(ONE_PIECE_BYTES, ONE_PIECE_BYTES + 10), [])).to.deep.equal([]);
    expect(e.push(big.subarray(ONE_PIECE_BYTES + 10), []).map((r) => r.fd)).to.deep.equal([1]);
    e.end();
  });

  it('at the end of the stream, tells leftover descriptors from a cut message', () => {
    const d = new FrameDecoder();
    d.push(frame('{}'), [1, 2], true);
    expect(() => d.end()).to.throw(/1 more descriptor/).with.property('code', 'ERR_GRACEFUL_FD_COUNT_MISMATCH');
  });

  it('reports a stream that ends inside a message', () => {
    const d = new FrameDecoder();
    d.push(frame('{"x":1}').subarray(0, 5), [1]);
    expect(() => d.end()).to.throw(/in the middle of a message \(5 byte\(s\) and 1 descriptor\(s\)/).with.property('code', 'ERR_GRACEFUL_TRUNCATED_MESSAGE');
  });
});

describe('meta', () => {
  it('encodes flat JSON objects and raw bytes, and refuses anything else', () => {
    expect(encodeMeta({ a: 1, b: 'x', c: true, d: null }).toString()).to.equal('{"a":1,"b":"x","c":true,"d":null}');
    expect(encodeMeta(undefined).length).to.equal(0);
    expect(encodeMeta(new Uint8Array([1, 2])).toString('hex')).to.equal('0102');
    for (const bad of [{ a: { b: 1 } }, { a: [1] }, { a: NaN }, [1], 'str', new Date()]) {
      expect(() => encodeMeta(bad as never), JSON.stringify(bad)).to.throw(/flat object/).with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    }
  });

  it('decodes only flat JSON objects; anything else is null (the raw bytes stay with the caller)', () => {
    expect(decodeMeta(Buffer.from('{"a":1}'))).to.deep.equal({ a: 1 });
    for (const raw of ['', '[1]', '{"a":{"b":1}}', '{broken', '\u00ff']) expect(decodeMeta(Buffer.from(raw, 'latin1')), raw).to.equal(null);
    expect(isMeta(Object.create(null))).to.equal(true);
  });
});
