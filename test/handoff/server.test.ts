/** listenAndServe's socket file: stale, live, not a socket, mode, removal at close; sendTo / receiveFrom. */
import { expect } from 'chai';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import {
  listenAndServe, HandoffServer, receive, HandoffConnection, sendTo, receiveFrom, fdHandler, callbackHandler,
} from '../../src/index.js';
import { addon } from '../../src/native.js';
import { fdCount, spawnChild, spawnFixture, tmpDir, until } from '../helpers.js';

describe('listenAndServe', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir();
  });

  it('serves every client that connects, with mode 0600 by default, and removes its socket at close', async () => {
    const sock = path.join(dir, 'a.sock');
    const hs = listenAndServe(sock, fdHandler(0, { name: 'stdin' }));
    expect(hs.path).to.equal(sock);
    expect(fs.statSync(sock).mode & 0o777).to.equal(0o600);
    for (let i = 0; i < 3; i++) {
      const metas: unknown[] = [];
      expect(await receive(sock, (fd, meta) => {
        metas.push(meta);
        fs.closeSync(fd);
      })).to.equal(1);
      expect(metas).to.deep.equal([{ name: 'stdin' }]);
    }
    await hs.close();
    expect(fs.existsSync(sock)).to.equal(false);
  });

  it('a handler that closes the server while more clients wait: no further accept, no crash, the others see the end', async () => {
    const sock = path.join(dir, 'once.sock');
    let served = 0;
    const hs = listenAndServe(sock, callbackHandler(() => {
      served++;
      void hs.close(); // one client only, as a new instance's adopter takes its predecessor alone
    }));
    const errors: unknown[] = [];
    hs.on('clientError', (err) => errors.push(err));
    // Three clients queued in the backlog before the server's poll fires: one wake-up sees them all.
    const conns = await Promise.all([0, 1, 2].map(() => HandoffConnection.connect(sock)));
    const ends = await Promise.all(conns.map((c) => receiveFrom(c).then((r) => r, (e: Error) => e)));
    for (const c of conns) c.close();
    expect(served).to.equal(1);
    expect(errors).to.deep.equal([]);
    expect(ends.filter((e) => e === null).length + ends.filter((e) => e instanceof Error).length).to.equal(3);
    expect(fs.existsSync(sock)).to.equal(false);
  });

  it('takes another mode on request', async () => {
    const sock = path.join(dir, 'b.sock');
    const hs = listenAndServe(sock, fdHandler(0), { mode: 0o640 });
    expect(fs.statSync(sock).mode & 0o777).to.equal(0o640);
    await hs.close();
    expect(() => listenAndServe(sock, fdHandler(0), { mode: 0o1777 })).to.throw(/mode must be a file mode/).with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
  });

  it('replaces a stale socket file', async () => {
    const sock = path.join(dir, 'stale.sock');
    const py = spawnChild('python3', ['-c', `import socket; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(sock)})`]);
    await py.exited;
    expect(fs.statSync(sock).isSocket()).to.equal(true);
    const hs = listenAndServe(sock, fdHandler(0));
    expect(await receive(sock, (fd) => fs.closeSync(fd))).to.equal(1);
    await hs.close();
  });

  it('refuses a live socket, naming the pid that owns it', async () => {
    const sock = path.join(dir, 'live.sock');
    const other = spawnChild('python3', ['-c', `import socket, time; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(sock)}); s.listen(1); print("up", flush=True); time.sleep(30)`]);
    await other.next(/^up/);
    const before = fdCount();
    expect(() => listenAndServe(sock, fdHandler(0))).to.throw(`listenAndServe: ${sock} is in use by pid ${other.pid}: stop that process or choose another path`)
      .with.property('code', 'ERR_GRACEFUL_SOCKET_IN_USE');
    expect(fdCount()).to.equal(before);
    other.kill('SIGKILL');
    await other.exited;
    // The python process died without removing its file: now it is stale.
    const hs = listenAndServe(sock, fdHandler(0));
    await hs.close();
  });

  it('never removes what is not a socket: a regular file, a directory, a symlink', () => {
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, 'keep me');
    const sub = path.join(dir, 'sub');
    fs.mkdirSync(sub);
    const link = path.join(dir, 'link');
    fs.symlinkSync(file, link);
    for (const [p, what] of [[file, 'not a socket'], [sub, 'a directory'], [link, 'a symbolic link']] as const) {
      expect(() => listenAndServe(p, fdHandler(0))).to.throw(`listenAndServe: ${p} is ${what}; refusing to replace it`)
        .with.property('code', 'ERR_GRACEFUL_NOT_A_SOCKET');
    }
    expect(fs.readFileSync(file, 'utf8')).to.equal('keep me');
    expect(fs.statSync(sub).isDirectory()).to.equal(true);
    expect(fs.readlinkSync(link)).to.equal(file);
  });

  it('refuses a directory others can write without the sticky bit; accepts one with it', async () => {
    const open = path.join(dir, 'open');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777);
    expect(() => listenAndServe(path.join(open, 'x.sock'), fdHandler(0))).to.throw(`is writable by other users (mode 0777) without the sticky bit`)
      .with.property('code', 'ERR_GRACEFUL_UNSAFE_DIRECTORY');
    fs.chmodSync(open, 0o1777);
    const hs = listenAndServe(path.join(open, 'x.sock'), fdHandler(0));
    await hs.close();
  });

  it('at close, leaves alone a socket file that another server put in its place', async () => {
    const sock = path.join(dir, 'moved.sock');
    const first = listenAndServe(sock, fdHandler(0));
    fs.rmSync(sock);
    const second = listenAndServe(sock, fdHandler(0));
    await first.close();
    expect(fs.existsSync(sock)).to.equal(true);
    await second.close();
    expect(fs.existsSync(sock)).to.equal(false);
  });

  it('rejects bad arguments with ERR_GRACEFUL_INVALID_ARGUMENT', () => {
    expect(() => listenAndServe('', fdHandler(0))).to.throw().with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    expect(() => listenAndServe(path.join(dir, 'x.sock'), 42 as never)).to.throw(/handler must be a function/);
    expect(() => fdHandler(-1)).to.throw().with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
  });

  it('refuses meta too large for one message with ERR_GRACEFUL_META_TOO_LARGE, and the client sees a clean end', async () => {
    const sock = path.join(dir, 'big.sock');
    const errors: { code?: string }[] = [];
    const hs = listenAndServe(sock, fdHandler(0, { big: 'x'.repeat(5000) }));
    hs.on('clientError', (err: { code?: string }) => errors.push(err));
    expect(await receive(sock, (fd) => fs.closeSync(fd))).to.equal(0);
    expect(errors.map((e) => e.code)).to.deep.equal(['ERR_GRACEFUL_META_TOO_LARGE']);
    await hs.close();
  });

  it('sendTo / receiveFrom work on a connection the caller opened, in both directions', async () => {
    const sock = path.join(dir, 'conn.sock');
    const reply = new Promise<unknown>((resolve) => {
      // The server receives on the same connection it serves.
      const hs = listenAndServe(sock, callbackHandler(async (res) => {
        const got = await receiveFrom(res.connection);
        fs.closeSync(got!.fd);
        res.send(0, { echo: got!.meta?.hello ?? null });
        resolve(got?.meta);
        setImmediate(() => void hs.close());
      }));
    });
    const conn = await HandoffConnection.connect(sock);
    await sendTo(conn, 0, { hello: 'world' });
    const back = await receiveFrom(conn);
    expect(back?.meta).to.deep.equal({ echo: 'world' });
    fs.closeSync(back!.fd);
    expect(await receiveFrom(conn)).to.equal(null);
    conn.close();
    expect(await reply).to.deep.equal({ hello: 'world' });
    expect(() => sendTo({} as never, 0)).to.throw().with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
  });

  it('raw meta that is not flat JSON reaches the callback as bytes', async () => {
    const sock = path.join(dir, 'raw.sock');
    const gob = Buffer.from([0x0e, 0xff, 0x81, 0x04, 0x01, 0x02, 0xff, 0x82]);
    const hs = listenAndServe(sock, callbackHandler((res) => {
      res.send(0, gob);
      res.send(0, Buffer.from('[1,2]'));
      res.send(0, Buffer.from('{"nested":{"a":1}}'));
    }));
    const got: [unknown, string][] = [];
    await receive(sock, (fd, meta, raw) => {
      got.push([meta, raw.toString('hex')]);
      fs.closeSync(fd);
    });
    expect(got).to.deep.equal([
      [null, gob.toString('hex')],
      [null, Buffer.from('[1,2]').toString('hex')],
      [null, Buffer.from('{"nested":{"a":1}}').toString('hex')],
    ]);
    await hs.close();
  });

  it('random bytes and half messages from another process: the server goes on serving, nothing leaks', async () => {
    const sock = path.join(dir, 'noise.sock');
    const hs = listenAndServe(sock, fdHandler(0, { ok: true }));
    const before = fdCount();
    const noise = spawnChild('python3', ['-c', [
      'import os, socket, struct',
      'for i in range(50):',
      '    s = socket.socket(socket.AF_UNIX)',
      `    s.connect(${JSON.stringify(sock)})`,
      '    try:',
      '        s.sendall(os.urandom(1 + i * 37))',
      '        if i % 2: s.sendall(struct.pack("<I", 1000) + b"{")',
      '    except OSError:',
      '        pass  # the server may have answered and closed first',
      '    s.close()',
      'print("done", flush=True)',
    ].join('\n')]);
    expect(await noise.next()).to.equal('done');
    await noise.exited;
    expect(await receive(sock, (fd) => fs.closeSync(fd))).to.equal(1);
    await until(() => fdCount() === before, 5000, 'descriptors back to the baseline');
    await hs.close();
  });

  it('a client process killed mid-hand-off costs the server nothing', async () => {
    const sock = path.join(dir, 'kill.sock');
    const fds = Array.from({ length: 600 }, () => fs.openSync('/dev/null', 'r'));
    const hs = listenAndServe(sock, callbackHandler((res) => fds.forEach((fd, i) => res.send(fd, { i, pad: 'p'.repeat(200) }))));
    const before = fdCount();
    const child = spawnFixture('receiver', ['files', sock]);
    child.kill('SIGKILL');
    await child.exited;
    expect(await receive(sock, (fd) => fs.closeSync(fd))).to.equal(600);
    expect(fdCount()).to.equal(before);
    await hs.close();
    for (const fd of fds) fs.closeSync(fd);
  });

  it('at EMFILE, pauses accepting instead of spinning, and serves the waiting client once a descriptor frees', async function () {
    this.timeout(20_000);
    const sock = path.join(dir, 'emfile.sock');
    const server = spawnFixture('emfile', [sock], { stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      await server.next(/^full$/);
      const pending = receive(sock, (fd) => fs.closeSync(fd));
      expect(await server.next(/^clientError /)).to.equal('clientError EMFILE');
      // Over 300 ms: one event for the episode (a level-triggered spin made tens of thousands).
      expect(await server.next(/^errors /)).to.equal('errors 1');
      server.proc.stdin!.write('free\n');
      await server.next(/^freed$/);
      await server.next(/^served$/);
      expect(await pending).to.equal(1);
    } finally {
      server.kill('SIGKILL');
      await server.exited;
    }
  });

  it('after a poll error (POLLERR), polls again and serves the next client', async function () {
    this.timeout(20_000);
    // A FIFO's write end reports POLLERR once its reader is gone: the server
    // starts on that, then the listening socket is put at the same number.
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const target = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    fs.closeSync(reader);
    const sock = path.join(dir, 'pollerr.sock');
    const listening = addon.listen(sock, 0o600, 8);
    const hs = new HandoffServer(sock, target, fdHandler(0, { name: 'stdin' }), {});
    const errors: { code?: string }[] = [];
    hs.on('clientError', (err: { code?: string }) => errors.push(err));
    try {
      await until(() => errors.length > 0, 5000, 'the poll error');
      expect(errors.map((e) => e.code), 'one event for the episode: what accept(2) said then').to.deep.equal(['ENOTSOCK']);
      addon.dup2(listening, target);
      addon.close(listening);
      expect(await receive(sock, (fd) => fs.closeSync(fd), { timeout: 5000 })).to.equal(1);
    } finally {
      await hs.close();
    }
  });
});
