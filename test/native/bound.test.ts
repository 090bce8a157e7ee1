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

describe('native bound buffers (bindReceive, recvmsgBound, recvmsgMany, bindSend, sendmsgBound)', () => {
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

  it('recvmsgMany reads ahead: each read\'s bytes and descriptors end to end, within its bounds', async () => {
    const before = fdCount();
    const [c, s] = await socketPair(dir);
    const file = fs.openSync('/dev/null', 'r');
    const send = (text: string, nfds: number) => {
      const b = Buffer.from(text);
      expect(addon.sendmsg(c, b, 0, b.length, Array(nfds).fill(file), nfds)).to.equal(b.length);
    };
    send('ab', 1);
    send('cde', 2);
    send('f', 1);
    const bytes = Buffer.alloc(16 * 1024);
    const fdsOut = new Int32Array(2 * 254);
    const reads = new Int32Array(1 + 2 * 4);
    const rb = addon.bindReceive(bytes, fdsOut, reads);
    // At most 2 reads: it stops there, with nothing said about EAGAIN.
    expect(addon.recvmsgMany(rb, s, bytes.length, 2, 100)).to.equal(2);
    expect(Array.from(reads.subarray(0, 5))).to.deep.equal([0, 2, 1, 3, 2]);
    expect(bytes.toString('latin1', 0, 5)).to.equal('abcde');
    expect(fdsOut[0]).to.equal(3);
    expect(addon.closeFds(fdsOut.subarray(1), 3)).to.equal(0);
    // The rest, then EAGAIN: reads[0] is 1.
    expect(addon.recvmsgMany(rb, s, bytes.length, 4, 100)).to.equal(1);
    expect(Array.from(reads.subarray(0, 3))).to.deep.equal([1, 1, 1]);
    addon.close(fdsOut[1]!);
    expect(addon.recvmsgMany(rb, s, bytes.length, 4, 100)).to.equal(AGAIN);
    // maxFds: it stops once that many came; less than 4096 bytes of room: one read only.
    send('g', 2);
    send('h', 1);
    expect(addon.recvmsgMany(rb, s, bytes.length, 4, 2)).to.equal(1);
    expect(fdsOut[0]).to.equal(2);
    addon.closeFds(fdsOut.subarray(1), 2);
    send('i', 1);
    expect(addon.recvmsgMany(rb, s, 4095, 4, 100)).to.equal(1);
    expect(bytes.toString('latin1', 0, 1)).to.equal('h');
    addon.close(fdsOut[1]!);
    expect(addon.recvmsgMany(rb, s, bytes.length, 4, 100)).to.equal(1);
    addon.close(fdsOut[1]!);
    // The end of the stream is a read of 0, the last reported.
    send('j', 1);
    addon.close(c);
    expect(addon.recvmsgMany(rb, s, bytes.length, 4, 100)).to.equal(2);
    expect(Array.from(reads.subarray(0, 5))).to.deep.equal([0, 1, 1, 0, 0]);
    addon.close(fdsOut[1]!);
    // A stale binding, and bad arguments: nothing read.
    const call = (name: string, ...args: unknown[]) => (addon as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!(...args);
    const [c2, s2] = await socketPair(dir);
    const plain = addon.bindReceive(Buffer.alloc(8), new Int32Array(254));
    expect(addon.recvmsgMany(rb, s2, 8, 1, 1)).to.equal(STALE);
    for (const args of [[plain, s2, 8, 1, 1]]) {
      expect(() => call('recvmsgMany', ...args)).to.throw(TypeError, /^Usage: recvmsgMany\(/); // no reads array bound
    }
    const rb2 = addon.bindReceive(bytes, fdsOut, reads);
    for (const args of [[rb2, s2, bytes.length + 1, 1, 1], [rb2, s2, 8, 0, 1], [rb2, s2, 8, 5, 1], [rb2, s2, 8, 1, 0],
      [rb2, -1, 8, 1, 1], [rb2, s2, 8, 1], ['x', s2, 8, 1, 1]]) {
      expect(() => call('recvmsgMany', ...args), JSON.stringify(args)).to.throw(TypeError, /^Usage: recvmsgMany\(/);
    }
    expect(() => call('bindReceive', bytes, fdsOut, new Int32Array(2))).to.throw(TypeError, /^Usage: bindReceive\(/);
    for (const status of [0, 1, 'x']) {
      expect(() => call('recvmsgFailure', status)).to.throw(TypeError, /^Usage: recvmsgFailure\(/);
    }
    expect(() => addon.recvmsgFailure(-104)).to.throw('recvmsg ECONNRESET').that.includes({ code: 'ECONNRESET', syscall: 'recvmsg' });
    expect(() => addon.recvmsgFailure(-(1 << 20))).to.throw().that.includes({ code: 'ERR_GRACEFUL_FDS_TRUNCATED' });
    // The first read's failure throws as recvmsg's.
    expect(() => addon.recvmsgMany(rb2, file, 8, 1, 1)).to.throw('recvmsg ENOTSOCK');
    for (const fd of [s, c2, s2, file]) addon.close(fd);
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
