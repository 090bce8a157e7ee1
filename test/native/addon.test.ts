/** The addon against the real kernel: flags, errors shaped like Node's, partial writes, SO_PEERCRED, datagrams. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { addon, AGAIN } from '../../src/native.js';
import { HandoffConnection, sendDatagram } from '../../src/index.js';
import { fdCount, fdFlags, O_CLOEXEC, O_NONBLOCK, socketPair, spawnChild, tmpDir } from '../helpers.js';

function recvAll(fd: number): { data: Buffer; fds: number[] } {
  const buf = Buffer.alloc(65536);
  const out = new Int32Array(254);
  const n = addon.recvmsg(fd, buf, 0, buf.length, out);
  return { data: buf.subarray(0, Math.max(n, 0)), fds: Array.from(out.subarray(1, 1 + out[0]!)) };
}

describe('native addon', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir();
  });

  it('creates close-on-exec, non-blocking sockets and receives close-on-exec descriptors', async () => {
    const before = fdCount();
    const [c, s] = await socketPair(dir);
    for (const fd of [c, s]) expect(fdFlags(fd) & (O_CLOEXEC | O_NONBLOCK)).to.equal(O_CLOEXEC | O_NONBLOCK);
    // The receiver's flags come from MSG_CMSG_CLOEXEC, whatever the sender's are.
    const file = fs.openSync('/dev/null', 'r');
    expect(addon.sendmsg(c, Buffer.from('abcd'), 0, 4, [file], 1)).to.equal(4);
    const got = recvAll(s);
    expect(got.data.toString()).to.equal('abcd');
    expect(got.fds).to.have.length(1);
    expect(fdFlags(got.fds[0]!) & O_CLOEXEC).to.equal(O_CLOEXEC);
    // A spawned process does not see the received descriptor.
    const ls = spawnChild('sh', ['-c', 'ls /proc/self/fd']);
    await ls.exited;
    expect(ls.stdout.map(Number)).to.not.include(got.fds[0]);
    for (const fd of [c, s, file, ...got.fds]) addon.close(fd);
    expect(fdCount()).to.equal(before);
  });

  it('shapes errors like Node: code, errno, syscall, path', () => {
    const missing = path.join(dir, 'missing.sock');
    expect(() => addon.connect(missing)).to.throw(`connect ENOENT ${missing}`).that.includes({
      code: 'ENOENT', errno: -2, syscall: 'connect', path: missing,
    });
    expect(() => addon.close(99999)).to.throw().that.includes({ code: 'EBADF', syscall: 'close' });
    expect(() => addon.listen(path.join(dir, 'no/such/dir.sock'), 0o600, 1)).to.throw().that.includes({ code: 'ENOENT', syscall: 'listen' });
    // setReusePort and dropIncoming on a descriptor that is no socket (a file): ENOTSOCK, as Node says it.
    const file = fs.openSync(path.join(dir, 'plain'), 'w');
    try {
      expect(() => addon.setReusePort(file)).to.throw('setsockopt ENOTSOCK').that.includes({ code: 'ENOTSOCK', errno: -88, syscall: 'setsockopt' });
      expect(() => addon.dropIncoming(file)).to.throw('setsockopt ENOTSOCK').that.includes({ code: 'ENOTSOCK', errno: -88, syscall: 'setsockopt' });
    } finally {
      fs.closeSync(file);
    }
  });

  it('checks its arguments with a Usage TypeError', () => {
    expect(() => (addon.sendmsg as unknown as (...a: unknown[]) => number)('x')).to.throw(TypeError, /^Usage: sendmsg\(fd/);
    expect(() => addon.sendmsg(0, Buffer.alloc(4), 2, 4, null, 0)).to.throw(TypeError, /^Usage: sendmsg/);
    expect(() => addon.sendmsg(0, Buffer.alloc(4), 0, 4, [1, 2], 254)).to.throw(TypeError, /nfds <= 253/);
    expect(() => addon.recvmsg(0, Buffer.alloc(4), 0, 4, new Int32Array(10))).to.throw(TypeError, /at least 254/);
    expect(() => new addon.Poller(-1, () => undefined)).to.throw(TypeError, /^Usage: new Poller/);
    expect(() => addon.setReusePort(-1)).to.throw(TypeError, /^Usage: setReusePort\(fd\)/);
    expect(() => (addon.dropIncoming as unknown as (...a: unknown[]) => void)('x')).to.throw(TypeError, /^Usage: dropIncoming\(fd\)/);
  });

  it('gives the socket file the requested mode', () => {
    for (const mode of [0o600, 0o640, 0o666]) {
      const sock = path.join(dir, `m${mode.toString(8)}.sock`);
      const fd = addon.listen(sock, mode, 1);
      expect(fs.statSync(sock).mode & 0o777).to.equal(mode);
      addon.close(fd);
    }
  });

  it('reports SO_PEERCRED of both ends', async () => {
    const [c, s] = await socketPair(dir);
    const me = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
    expect(addon.peercred(c)).to.deep.equal(me);
    expect(addon.peercred(s)).to.deep.equal(me);
    addon.close(c);
    addon.close(s);
  });

  it('returns -1 for EAGAIN instead of blocking, and 0 at end of stream', async () => {
    const [c, s] = await socketPair(dir);
    const buf = Buffer.alloc(16);
    expect(addon.recvmsg(s, buf, 0, 16, new Int32Array(254))).to.equal(AGAIN);
    addon.close(c);
    expect(addon.recvmsg(s, buf, 0, 16, new Int32Array(254))).to.equal(0);
    addon.close(s);
  });

  it('survives partial writes: a 1 MiB meta larger than the socket buffer arrives whole, its descriptor once', async () => {
    const [c, s] = await socketPair(dir);
    const big = 'x'.repeat(1 << 20);
    const sender = new HandoffConnection(c, { maxMessageBytes: 2 << 20 });
    const receiver = new HandoffConnection(s, { maxMetaBytes: 2 << 20 });
    const file = fs.openSync('/dev/null', 'r');
    const before = fdCount();
    const sent = sender.send([{ fd: file, meta: { big } }, { fd: file, meta: { small: 1 } }]);
    const first = await receiver.receive();
    const second = await receiver.receive();
    await sent;
    expect(first?.meta).to.deep.equal({ big });
    expect(second?.meta).to.deep.equal({ small: 1 });
    sender.close();
    expect(await receiver.receive()).to.equal(null);
    receiver.close();
    fs.closeSync(first!.fd);
    fs.closeSync(second!.fd);
    expect(fdCount()).to.equal(before - 2);
    fs.closeSync(file);
  });

  it('sends a datagram with a descriptor to a UNIX datagram socket (named and abstract)', async () => {
    const named = path.join(dir, 'notify.sock');
    const abstract = `@gr-test-${process.pid}`;
    for (const target of [named, abstract]) {
      const bind = target.startsWith('@') ? `'\\0' + ${JSON.stringify(target.slice(1))}` : JSON.stringify(target);
      const py = spawnChild('python3', ['-c', [
        'import socket, os, sys',
        's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
        `s.bind(${bind})`,
        'print("bound", flush=True)',
        'msg, fds, flags, addr = socket.recv_fds(s, 1024, 4)',
        'print(msg.decode(), len(fds), os.readlink("/proc/self/fd/%d" % fds[0]) if fds else "", flush=True)',
      ].join('\n')]);
      await py.next(/^bound/);
      const file = fs.openSync('/dev/null', 'r');
      expect(sendDatagram(target, 'READY=1\nSTATUS=up', [file])).to.equal(17);
      fs.closeSync(file);
      expect(await py.next(/READY/)).to.equal('READY=1');
      expect(await py.next()).to.equal('STATUS=up 1 /dev/null');
      await py.exited;
    }
    expect(() => sendDatagram(path.join(dir, 'nobody.sock'), 'x')).to.throw().that.includes({ code: 'ENOENT', syscall: 'sendmsg' });
  });
  it('closeFds closes a batch received by SCM_RIGHTS in one call, marks failures with -errno, never leaks', async () => {
    const before = fdCount();
    const [c, s] = await socketPair(dir);
    const files = Array.from({ length: 16 }, () => fs.openSync('/dev/null', 'r'));
    expect(addon.sendmsg(c, Buffer.from('x'), 0, 1, files, files.length)).to.equal(1);
    const got = recvAll(s);
    expect(got.fds).to.have.length(16);
    for (const fd of got.fds) expect(fdFlags(fd) & O_CLOEXEC).to.equal(O_CLOEXEC);
    const batch = Int32Array.from(got.fds);
    expect(addon.closeFds(batch, batch.length)).to.equal(0);
    expect(Array.from(batch)).to.deep.equal(got.fds); // closed entries stay as they were
    for (const fd of got.fds) expect(() => fdFlags(fd)).to.throw(); // gone from /proc/self/fd
    // A failure goes on to the rest: a number closed already and a negative one become -EBADF.
    const live = fs.openSync('/dev/null', 'r');
    const mixed = Int32Array.of(files[0]!, -5, live, files[0]!);
    expect(addon.closeFds(mixed, 4)).to.equal(2);
    expect(Array.from(mixed)).to.deep.equal([files[0], -9, live, -9]);
    // count bounds the batch: entries past it are not touched.
    const kept = fs.openSync('/dev/null', 'r');
    expect(addon.closeFds(Int32Array.of(kept), 0)).to.equal(0);
    expect(addon.closeFds(new Int32Array(0), 0)).to.equal(0);
    fs.closeSync(kept);
    for (const fd of [c, s, ...files.slice(1)]) addon.close(fd);
    expect(fdCount()).to.equal(before);
  });

  it('closeFds checks its arguments with a Usage TypeError, closing nothing', () => {
    const before = fdCount();
    const fd = fs.openSync('/dev/null', 'r');
    const call = addon.closeFds as unknown as (...a: unknown[]) => number;
    for (const args of [[], [Int32Array.of(fd)], [[fd], 1], [Uint32Array.of(fd), 1], [Int32Array.of(fd), 2],
      [Int32Array.of(fd), -1], [Int32Array.of(fd), 'x'], [null, 0], [new Float64Array([fd]), 1]]) {
      expect(() => call(...args), JSON.stringify(args)).to.throw(TypeError, /^Usage: closeFds\(fds: Int32Array, count <= fds.length\)$/);
    }
    expect(fdFlags(fd) & O_CLOEXEC).to.equal(O_CLOEXEC); // still open
    fs.closeSync(fd);
    expect(fdCount()).to.equal(before);
  });
});
