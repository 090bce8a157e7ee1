/**
 * native/bound.cc against the real kernel: recvmsg and sendmsg over buffers
 * bound once (SCM_RIGHTS over real socket pairs), a binding made stale by a
 * second one, bad arguments (a TypeError, never a crash), errors shaped like
 * recvmsg's and sendmsg's, and no descriptor leaked on any path.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import { addon, AGAIN, STALE } from '../../src/native.js';
import { HandoffConnection } from '../../src/handoff.js';
import { fdCount, fdFlags, O_CLOEXEC, socketPair, tmpDir } from '../helpers.js';

describe('native bound buffers (bindReceive, recvmsgBound, bindSend, sendmsgBound)', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir();
  });

  it('sends and receives 16 descriptors with numbers only, close-on-exec, and leaks none', async () => {
    const before = fdCount();
    const [c, s] = await socketPair(dir);
    const files = Array.from({ length: 20 }, () => fs.openSync('/dev/null', 'r'));
    const out = Buffer.from('..hello..');
    const sendFds = Int32Array.from(files);
    const sendBinding = addon.bindSend(out, sendFds);
    // bytes [2, 7) with descriptors [4, 20): an offset into each buffer.
    expect(addon.sendmsgBound(sendBinding, c, 2, 5, 4, 16)).to.equal(5);
    const bytes = Buffer.alloc(64);
    const fdsOut = new Int32Array(254);
    const binding = addon.bindReceive(bytes, fdsOut);
    expect(addon.recvmsgBound(binding, s, 64)).to.equal(5);
    expect(bytes.subarray(0, 5).toString()).to.equal('hello');
    expect(fdsOut[0]).to.equal(16);
    const got = Array.from(fdsOut.subarray(1, 17));
    for (const fd of got) expect(fdFlags(fd) & O_CLOEXEC).to.equal(O_CLOEXEC);
    expect(addon.closeFds(Int32Array.from(got), 16)).to.equal(0);
    // Nothing waits: -1; the peer gone: 0, the end of the stream.
    expect(addon.recvmsgBound(binding, s, 64)).to.equal(AGAIN);
    addon.close(c);
    expect(addon.recvmsgBound(binding, s, 64)).to.equal(0);
    expect(fdsOut[0]).to.equal(0);
    addon.close(s);
    addon.closeFds(sendFds, sendFds.length);
    expect(fdCount()).to.equal(before);
  });

  it('a binding made stale by another returns -3 and neither reads nor sends', async () => {
    const before = fdCount();
    const [c, s] = await socketPair(dir);
    const file = fs.openSync('/dev/null', 'r');
    const old = addon.bindSend(Buffer.from('a'), Int32Array.of(file));
    const now = addon.bindSend(Buffer.from('b'), Int32Array.of(file));
    expect(now).to.not.equal(old);
    expect(addon.sendmsgBound(old, c, 0, 1, 0, 1)).to.equal(STALE);
    expect(addon.sendmsgBound(now, c, 0, 1, 0, 1)).to.equal(1);
    const first = addon.bindReceive(Buffer.alloc(8), new Int32Array(254));
    const bytes = Buffer.alloc(8);
    const fdsOut = new Int32Array(254);
    const second = addon.bindReceive(bytes, fdsOut);
    expect(addon.recvmsgBound(first, s, 8)).to.equal(STALE);
    expect(addon.recvmsgBound(second, s, 8)).to.equal(1); // the message was still there
    expect(bytes.toString('latin1', 0, 1)).to.equal('b');
    expect(fdsOut[0]).to.equal(1);
    addon.close(fdsOut[1]!);
    for (const fd of [c, s, file]) addon.close(fd);
    expect(fdCount()).to.equal(before);
  });

  it('a connection goes on after someone else bound buffers in its place (a second copy of the module)', async () => {
    const before = fdCount();
    const [c, s] = await socketPair(dir);
    const a = new HandoffConnection(c);
    const b = new HandoffConnection(s);
    const file = fs.openSync('/dev/null', 'r');
    for (let round = 0; round < 3; round++) {
      addon.bindSend(Buffer.alloc(4), new Int32Array(4));
      addon.bindReceive(Buffer.alloc(4), new Int32Array(254));
      await a.send([{ fd: file, meta: { round } }]);
      const got = await b.receive();
      expect(got?.meta).to.deep.equal({ round });
      addon.close(got!.fd);
    }
    a.close();
    b.close();
    addon.close(file);
    expect(fdCount()).to.equal(before);
  });

  it('refuses bad arguments with a Usage TypeError, sending nothing and keeping its binding', async () => {
    const before = fdCount();
    const [c, s] = await socketPair(dir);
    const file = fs.openSync('/dev/null', 'r');
    const call = (name: string, ...args: unknown[]) => (addon as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!(...args);
    for (const args of [[], [Buffer.alloc(4)], [new Int32Array(4), new Int32Array(254)], [Buffer.alloc(4), new Int32Array(253)],
      [Buffer.alloc(4), new Uint32Array(254)], ['x', new Int32Array(254)]]) {
      expect(() => call('bindReceive', ...args), JSON.stringify(args)).to.throw(TypeError, /^Usage: bindReceive\(/);
    }
    for (const args of [[], [Buffer.alloc(4)], [[1], Int32Array.of(1)], [Buffer.alloc(4), [1]]]) {
      expect(() => call('bindSend', ...args), JSON.stringify(args)).to.throw(TypeError, /^Usage: bindSend\(/);
    }
    const binding = addon.bindSend(Buffer.from('abcd'), Int32Array.of(file, -1, file));
    for (const args of [[binding, c, 0, 5, 0, 0], [binding, c, 5, 0, 0, 0], [binding, c, 2, 3, 0, 0], [binding, c, 0, 4, 2, 2],
      [binding, c, 0, 4, 0, 2], [binding, c, 0, 4, 4, 0], [binding, -1, 0, 4, 0, 1], [binding, c, 0, 4, 0, 254],
      [binding, c, -1, 4, 0, 1], [binding, c, 0.5, 1, 0, 1], ['x', c, 0, 4, 0, 1], [binding, c, 0, 4, 0]]) {
      expect(() => call('sendmsgBound', ...args), JSON.stringify(args)).to.throw(TypeError, /^Usage: sendmsgBound\(binding, fd/);
    }
    expect(addon.sendmsgBound(binding, c, 0, 4, 0, 1)).to.equal(4); // still bound: nothing was sent before
    const bytes = Buffer.alloc(8);
    const fdsOut = new Int32Array(254);
    const rb = addon.bindReceive(bytes, fdsOut);
    for (const args of [[rb, s, 9], [rb, s, -1], [rb, -1, 4], [rb, s], ['x', s, 4], [rb, s, 1.5]]) {
      expect(() => call('recvmsgBound', ...args), JSON.stringify(args)).to.throw(TypeError, /^Usage: recvmsgBound\(binding, fd/);
    }
    expect(addon.recvmsgBound(rb, s, 8)).to.equal(4);
    expect(bytes.toString('latin1', 0, 4)).to.equal('abcd');
    expect(fdsOut[0]).to.equal(1);
    addon.close(fdsOut[1]!);
    for (const fd of [c, s, file]) addon.close(fd);
    expect(fdCount()).to.equal(before);
  });

  it('throws the kernel\'s errors shaped like recvmsg\'s and sendmsg\'s (code, errno, syscall)', async () => {
    const before = fdCount();
    const [c, s] = await socketPair(dir);
    const file = fs.openSync('/dev/null', 'r');
    const rb = addon.bindReceive(Buffer.alloc(8), new Int32Array(254));
    expect(() => addon.recvmsgBound(rb, file, 8)).to.throw('recvmsg ENOTSOCK').that.includes({ code: 'ENOTSOCK', syscall: 'recvmsg' });
    const sb = addon.bindSend(Buffer.from('x'), Int32Array.of(file));
    addon.close(s);
    expect(() => addon.sendmsgBound(sb, c, 0, 1, 0, 1)).to.throw('sendmsg EPIPE').that.includes({ code: 'EPIPE', errno: -32, syscall: 'sendmsg' });
    expect(() => addon.sendmsgBound(sb, file, 0, 1, 0, 0)).to.throw().that.includes({ code: 'ENOTSOCK', syscall: 'sendmsg' });
    for (const fd of [c, file]) addon.close(fd);
    expect(fdCount()).to.equal(before);
  });
});
