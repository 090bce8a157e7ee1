/** The addon's process calls and notify receiver against the real kernel: pidfds, subreaper and reaping, credentials. */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { addon, POLL_READABLE } from '../../src/native.js';
import { sendDatagram } from '../../src/index.js';
import { fdCount, fdFlags, O_CLOEXEC, O_NONBLOCK, root, tmpDir } from '../helpers.js';

describe('native addon: processes and notify datagrams', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir();
  });

  it('pidfdOpen: a close-on-exec descriptor that becomes readable when the process exits, whoever reaps it', async () => {
    const child = spawn('sleep', ['30']);
    const pidfd = addon.pidfdOpen(child.pid!);
    expect(fdFlags(pidfd) & O_CLOEXEC).to.equal(O_CLOEXEC);
    const events: number[] = [];
    const readable = new Promise<void>((resolve) => {
      const poller = new addon.Poller(pidfd, (status, ev) => {
        events.push(ev);
        poller.close();
        resolve();
      });
      poller.start(POLL_READABLE);
    });
    // The absence of an event while the child runs is what is tested: a short window, then the kill.
    await new Promise((r) => setTimeout(r, 50));
    expect(events, 'not readable while it runs').to.deep.equal([]);
    child.kill('SIGKILL');
    await readable;
    expect(events[0]! & POLL_READABLE).to.equal(POLL_READABLE);
    addon.close(pidfd);
  });

  it('pidfdOpen: ESRCH for a pid that does not exist; a usage error for a bad pid', () => {
    const r = spawnSync('true');
    expect(() => addon.pidfdOpen(r.pid!)).to.throw().with.property('code', 'ESRCH');
    expect(() => addon.pidfdOpen(0)).to.throw(TypeError, /pidfdOpen\(pid > 0\)/);
    expect(() => addon.pidfdOpen(-3)).to.throw(TypeError);
  });

  it('as subreaper, reaps orphans of its descendants with their exit codes and signals, and leaves libuv\'s children alone', () => {
    // In a child process: being a subreaper changes where every orphan goes.
    const script = `
      import { addon } from ${JSON.stringify(path.join(root, 'dist/src/native.js'))};
      import { spawn } from 'node:child_process';
      addon.setChildSubreaper();
      // A child that leaves two orphans behind: one exits 5, one is killed.
      const c = spawn('sh', ['-c', "(sleep 0.2; exit 5) & sh -c 'sleep 0.2; kill -TERM $$' & exit 0"]);
      c.on('exit', (code) => {
        setTimeout(() => {
          const got = addon.reap([]);
          console.log(JSON.stringify({ child: code, got: got.map((r) => [r.code, r.signal]).sort() }));
          // libuv's own child, exited but not yet reaped (the loop is kept busy),
          // is skipped: libuv reaps it and reports its exit.
          const own = spawn('sh', ['-c', 'exit 4']);
          const until = Date.now() + 300;
          while (Date.now() < until) ;
          console.log(JSON.stringify({ skipped: addon.reap([own.pid]) }));
          own.on('exit', (code) => console.log(JSON.stringify({ libuv: code })));
        }, 600);
      });`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stderr).to.equal(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]!.child).to.equal(0);
    expect(lines[0]!.got).to.have.deep.members([[5, null], [null, 15]]);
    expect(lines[1]).to.deep.equal({ skipped: [] });
    expect(lines[2]).to.deep.equal({ libuv: 4 });
  });

  it('bindDatagram / recvDatagram: the sender\'s credentials, null when empty, descriptors that came along closed', () => {
    const before = fdCount();
    const sock = path.join(dir, 'notify.sock');
    const fd = addon.bindDatagram(sock, 0o600);
    expect(fdFlags(fd) & (O_CLOEXEC | O_NONBLOCK)).to.equal(O_CLOEXEC | O_NONBLOCK);
    expect(fs.statSync(sock).mode & 0o777).to.equal(0o600);
    const buf = new Uint8Array(4096);
    expect(addon.recvDatagram(fd, buf)).to.equal(null);
    const passed = fs.openSync('/dev/null', 'r');
    sendDatagram(sock, 'READY=1\nSTATUS=up', [passed]);
    fs.closeSync(passed);
    const got = addon.recvDatagram(fd, buf)!;
    expect(got).to.deep.equal({ length: 17, pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    expect(Buffer.from(buf.buffer, 0, got.length).toString()).to.equal('READY=1\nSTATUS=up');
    expect(addon.recvDatagram(fd, buf)).to.equal(null);
    addon.close(fd);
    expect(fdCount(), 'the descriptor that came with the datagram was closed').to.equal(before);
  });

  it('recvDatagram: a datagram longer than the buffer is dropped with EMSGSIZE, and the next one reads', () => {
    const sock = path.join(dir, 'notify.sock');
    const fd = addon.bindDatagram(sock, 0o600);
    sendDatagram(sock, 'X'.repeat(100));
    sendDatagram(sock, 'READY=1');
    const small = new Uint8Array(16);
    expect(() => addon.recvDatagram(fd, small)).to.throw().with.property('code', 'EMSGSIZE');
    expect(addon.recvDatagram(fd, small)).to.include({ length: 7 });
    addon.close(fd);
  });

  it('bindDatagram: errors shaped like Node\'s (EADDRINUSE, ENAMETOOLONG) and usage errors', () => {
    const sock = path.join(dir, 'notify.sock');
    const fd = addon.bindDatagram(sock, 0o600);
    const before = fdCount();
    expect(() => addon.bindDatagram(sock, 0o600)).to.throw().with.property('code', 'EADDRINUSE');
    expect(() => addon.bindDatagram(path.join(dir, 'x'.repeat(120)), 0o600)).to.throw().with.property('code', 'ENAMETOOLONG');
    expect(fdCount(), 'no descriptor leaked by the failures').to.equal(before);
    expect(() => addon.recvDatagram(fd, Buffer.alloc(4) as unknown as Uint8Array & { x?: 1 })).to.not.throw();
    expect(() => addon.recvDatagram(fd, new Int32Array(4) as unknown as Uint8Array)).to.throw(TypeError, /recvDatagram/);
    expect(() => addon.reap('x' as unknown as number[])).to.throw(TypeError, /reap/);
    addon.close(fd);
  });
});
