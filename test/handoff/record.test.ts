/** handoff/record.ts: the records a hand-off connection hands out, and the inbox they wait in. */
import { expect } from 'chai';
import { inspect } from 'node:util';
import { newInbox, RecordDecoder, type ReceivedFd } from '../../src/handoff/record.js';
import { encodeMessages } from '../../src/wire.js';

function frame(...metas: string[]): Buffer {
  const [m] = encodeMessages(metas.map((s, i) => ({ fd: 100 + i, meta: Buffer.from(s) })));
  return m!.data;
}

describe('handoff/record', () => {
  it('RecordDecoder makes records whose raw is a view of the read and whose meta is decoded on first access', () => {
    const dec = new RecordDecoder();
    const [a, b] = dec.push(frame('{"k":"v"}', 'opaque'), [7, 8]) as ReceivedFd[];
    expect(a!.fd).to.equal(7);
    expect(a!.raw.toString()).to.equal('{"k":"v"}');
    expect(a!.meta).to.deep.equal({ k: 'v' });
    expect(a!.meta).to.equal(a!.meta); // kept, not parsed again
    expect(b!.fd).to.equal(8);
    expect(b!.meta).to.equal(null);
    expect(b!.raw.toString()).to.equal('opaque');
    expect(a!.raw.buffer).to.equal(b!.raw.buffer); // views of the same copy
  });

  it('raw and meta are enumerable: spread, deep equality, JSON and inspect show fd, meta and raw', () => {
    const dec = new RecordDecoder();
    const [r] = dec.push(frame('{"n":1}'), [5]) as ReceivedFd[];
    expect(Object.keys({ ...r })).to.have.members(['fd']); // own: fd; the accessors live on the prototype
    const keys: string[] = [];
    for (const k in r) keys.push(k);
    expect(keys).to.have.members(['fd', 'raw', 'meta']);
    expect(JSON.parse(JSON.stringify(r))).to.deep.equal({ fd: 5, meta: { n: 1 }, raw: { type: 'Buffer', data: [...Buffer.from('{"n":1}')] } });
    expect(inspect(r)).to.equal(inspect({ fd: 5, meta: { n: 1 }, raw: Buffer.from('{"n":1}') }));
  });

  it('assigning raw or meta replaces what is kept', () => {
    const dec = new RecordDecoder();
    const [r] = dec.push(frame('{"a":1}'), [3]) as ReceivedFd[];
    r!.meta = { b: 2 };
    expect(r!.meta).to.deep.equal({ b: 2 });
    r!.raw = Buffer.from('x');
    expect(r!.raw.toString()).to.equal('x');
    expect(r!.meta).to.deep.equal({ b: 2 }); // meta was assigned: raw does not change it
    const [s] = dec.push(frame('{"a":1}'), [4]) as ReceivedFd[];
    s!.raw = Buffer.from('{"c":3}');
    expect(s!.meta).to.deep.equal({ c: 3 }); // meta not read yet: decoded from the new raw
  });

  it('RecordDecoder keeps the frame decoder checks: a record without a descriptor is refused', () => {
    const dec = new RecordDecoder();
    expect(() => dec.push(frame('{}'), [])).to.throw(/record 1 has no descriptor/).with.property('code', 'ERR_GRACEFUL_FD_COUNT_MISMATCH');
  });

  it('newInbox is an empty list, a new one each call', () => {
    const a = newInbox();
    const b = newInbox();
    expect(a).to.deep.equal([]);
    expect(a).to.not.equal(b);
    a.push({ fd: 1, meta: null, raw: Buffer.alloc(0) });
    expect(b).to.have.length(0);
    expect(newInbox()).to.have.length(0);
  });
});
