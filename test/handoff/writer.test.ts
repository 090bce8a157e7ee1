/** handoff/writer.ts: the sending half of a hand-off connection, on a real socket pair. */
import { expect } from 'chai';
import fs from 'node:fs';
import { setImmediate as tick } from 'node:timers/promises';
import { addon, AGAIN } from '../../src/native.js';
import { ClosedError } from '../../src/errors.js';
import { Writer } from '../../src/handoff/writer.js';
import { FrameDecoder, type Record } from '../../src/wire.js';
import { fdCount, socketPair, tmpDir } from '../helpers.js';

const BUF = Buffer.alloc(1 << 20);
const FDS = new Int32Array(addon.maxFds + 1);

/** Peer: reads the other end with recvmsg and decodes what came. */
class Peer {
  readonly decoder = new FrameDecoder();
  readonly records: Record[] = [];
  readonly fdsPerRead: number[] = [];
  data = Buffer.alloc(0);
  constructor(readonly fd: number, private readonly decode = true) {}
  /** read reads until EAGAIN; false at the end of the stream. Without decoding, descriptors are closed as they come. */
  read(): boolean {
    for (;;) {
      const n = addon.recvmsg(this.fd, BUF, 0, BUF.length, FDS);
      if (n === AGAIN) return true;
      const fds = Array.from(FDS.subarray(1, 1 + FDS[0]!));
      if (n === 0 && fds.length === 0) return false;
      if (fds.length > 0) this.fdsPerRead.push(fds.length);
      if (this.decode) this.decoder.pushTo(BUF, fds, n === BUF.length, this.records, n);
      else {
        this.data = Buffer.concat([this.data, BUF.subarray(0, n)]);
        for (const fd of fds) addon.close(fd);
      }
    }
  }
  release(): void {
    for (const r of this.records.splice(0)) addon.close(r.fd);
  }
}

function devNull(n: number): number[] {
  return Array.from({ length: n }, () => fs.openSync('/dev/null', 'r'));
}

describe('handoff/writer', () => {
  let before: number;
  beforeEach(() => {
    before = fdCount();
  });

  it('send writes records straight to the kernel and resolves; the caller keeps its descriptors', async () => {
    const [c, s] = await socketPair(tmpDir());
    let changed = 0;
    const w = new Writer(c, 4096, 253, () => changed++);
    const mine = devNull(3);
    await w.send([{ fd: mine[0]! }, { fd: mine[1]!, meta: { kind: 'file', n: 1 } }, { fd: mine[2]!, meta: Buffer.from([1, 2]) }]);
    expect(w.wantsToWrite()).to.equal(false);
    expect(changed).to.equal(0);
    await w.send([]); // nothing to send
    const peer = new Peer(s);
    peer.read();
    expect(peer.records.map((r) => r.raw.toString('hex'))).to.deep.equal(['', Buffer.from('{"kind":"file","n":1}').toString('hex'), '0102']);
    for (const r of peer.records) expect(fs.readlinkSync(`/proc/self/fd/${r.fd}`)).to.equal('/dev/null');
    for (const f of mine) expect(fs.fstatSync(f).isCharacterDevice()).to.equal(true); // still ours
    peer.release();
    for (const f of mine) fs.closeSync(f);
    w.close(new ClosedError('done'));
    addon.close(c);
    addon.close(s);
    expect(fdCount()).to.equal(before);
  });

  it('a meta object sent again after a change carries the change', async () => {
    const [c, s] = await socketPair(tmpDir());
    const w = new Writer(c, 4096, 253, () => undefined);
    const [file] = devNull(1);
    const meta: { [key: string]: string | number } = { name: 'http', n: 1 };
    await w.send([{ fd: file!, meta }, { fd: file!, meta }]);
    meta.n = 2;
    await w.send([{ fd: file!, meta }]);
    meta.extra = 'x';
    await w.send([{ fd: file!, meta }]);
    delete meta.name;
    await w.send([{ fd: file!, meta }, { fd: file!, meta }]);
    const peer = new Peer(s);
    peer.read();
    expect(peer.records.map((r) => r.raw.toString())).to.deep.equal([
      '{"name":"http","n":1}', '{"name":"http","n":1}', '{"name":"http","n":2}', '{"name":"http","n":2,"extra":"x"}',
      '{"n":2,"extra":"x"}', '{"n":2,"extra":"x"}',
    ]);
    peer.release();
    fs.closeSync(file!);
    w.close(new ClosedError('done'));
    addon.close(c);
    addon.close(s);
    expect(fdCount()).to.equal(before);
  });

  it('splits records into messages of at most maxFdsPerMessage descriptors and maxMessageBytes bytes', async () => {
    const [c, s] = await socketPair(tmpDir());
    const w = new Writer(c, 64, 2, () => undefined);
    const mine = devNull(5);
    await w.send(mine.map((fd, i) => ({ fd, meta: { i } })));
    const peer = new Peer(s);
    peer.read();
    expect(peer.fdsPerRead).to.deep.equal([2, 2, 1]);
    expect(peer.records.map((r) => r.raw.toString())).to.deep.equal(mine.map((_, i) => `{"i":${i}}`));
    peer.release();

    const big = new Writer(c, 16, 253, () => undefined);
    const err = await big.send([{ fd: mine[0]!, meta: { long: 'x'.repeat(40) } }]).then(() => null, (e: unknown) => e);
    expect(err).to.have.property('code', 'ERR_GRACEFUL_META_TOO_LARGE');
    expect(big.error).to.equal(null); // nothing was written: the connection goes on
    for (const f of mine) fs.closeSync(f);
    addon.close(c);
    addon.close(s);
    expect(fdCount()).to.equal(before);
  });

  it('send refuses a bad meta with ERR_GRACEFUL_INVALID_ARGUMENT and writes nothing', async () => {
    const [c, s] = await socketPair(tmpDir());
    const w = new Writer(c, 4096, 253, () => undefined);
    const [fd] = devNull(1);
    const err = await w.send([{ fd: fd!, meta: { nested: { a: 1 } } as never }]).then(() => null, (e: unknown) => e);
    expect(err).to.have.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    expect((err as Error).message).to.equal('send: meta must be a flat object of strings, finite numbers, booleans or nulls, or a Uint8Array');
    const peer = new Peer(s);
    peer.read();
    expect(peer.records).to.deep.equal([]);
    fs.closeSync(fd!);
    addon.close(c);
    addon.close(s);
    expect(fdCount()).to.equal(before);
  });

  it('what the kernel does not take waits in order until the socket drains (data, then records)', async () => {
    const [c, s] = await socketPair(tmpDir());
    let changed = 0;
    const w = new Writer(c, 4096, 253, () => changed++);
    const payload = Buffer.alloc(8 << 20, 0x61);
    const done: string[] = [];
    const p1 = w.writeData(payload).then(() => done.push('data'));
    expect(w.wantsToWrite()).to.equal(true); // the kernel took only part of 8 MiB
    const [fd] = devNull(1);
    const p2 = w.send([{ fd: fd!, meta: { after: true } }]).then(() => done.push('record'));
    expect(w.wantsToWrite()).to.equal(true);
    const peer = new Peer(s, false);
    while (done.length < 2 && !w.error) {
      peer.read();
      w.flush();
      await tick();
    }
    peer.read();
    await Promise.all([p1, p2]);
    fs.closeSync(fd!); // the outbox sends the number itself: the caller keeps it open until the send resolves
    expect(done).to.deep.equal(['data', 'record']);
    expect(changed).to.be.greaterThan(0);
    expect(w.wantsToWrite()).to.equal(false);
    expect(peer.data.length).to.equal(payload.length + 4 + '{"after":true}'.length);
    expect(peer.data.subarray(0, payload.length).equals(payload)).to.equal(true);
    expect(peer.data.subarray(payload.length + 4).toString()).to.equal('{"after":true}');
    expect(peer.fdsPerRead).to.deep.equal([1]);
    await w.writeData(new Uint8Array(0)); // nothing to write: resolves at once
    w.close(new ClosedError('done'));
    addon.close(c);
    addon.close(s);
    expect(fdCount()).to.equal(before);
  });

  it('fail and close reject every pending write, and every later one, with the error', async () => {
    const [c, s] = await socketPair(tmpDir());
    const w = new Writer(c, 4096, 253, () => undefined);
    const pending = w.writeData(Buffer.alloc(8 << 20));
    const stop = new ClosedError('the connection was closed');
    w.close(stop);
    expect(await pending.then(() => null, (e: unknown) => e)).to.equal(stop);
    expect(w.error).to.equal(stop);
    expect(w.wantsToWrite()).to.equal(false);
    expect(await w.send([{ fd: 0 }]).then(() => null, (e: unknown) => e)).to.equal(stop);
    expect(await w.writeData(Buffer.from('x')).then(() => null, (e: unknown) => e)).to.equal(stop);
    const other = new ClosedError('later');
    w.fail(other);
    expect(w.error).to.equal(stop); // the first error stays
    addon.close(c);
    addon.close(s);
    expect(fdCount()).to.equal(before);
  });

  it('a peer that is gone: send rejects with the errno (EPIPE) and the writer stays failed', async () => {
    const [c, s] = await socketPair(tmpDir());
    addon.close(s);
    const w = new Writer(c, 4096, 253, () => undefined);
    const [fd] = devNull(1);
    const err = await w.send([{ fd: fd! }]).then(() => null, (e: unknown) => e);
    expect(err).to.include({ code: 'EPIPE', syscall: 'sendmsg' });
    expect(w.error).to.equal(err);
    expect(await w.writeData(Buffer.from('x')).then(() => null, (e: unknown) => e)).to.equal(err);
    fs.closeSync(fd!);
    addon.close(c);
    expect(fdCount()).to.equal(before);
  });
});
