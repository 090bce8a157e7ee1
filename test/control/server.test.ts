/**
 * ControlServer, the listener: its socket file (mode, removed or kept at
 * close), a socket systemd passed that is not a UNIX one, and settle(), which
 * a halt awaits so that lines a client already sent are answered first.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ControlServer } from '../../src/control/server.js';
import { fdOf } from '../../src/fds.js';
import { addon } from '../../src/native.js';
import { tmpDir, until } from '../helpers.js';
import { connectRaw } from './attackers.js';

describe('control server (the listener)', function () {
  this.timeout(20_000);

  it('binds its socket file with mode 0600 (or the mode given); close(true) removes it, close(false) leaves it', async () => {
    const dir = tmpDir();
    const a = new ControlServer(path.join(dir, 'a.sock'));
    const b = new ControlServer(path.join(dir, 'b.sock'), { mode: 0o660 });
    await a.listen();
    await b.listen();
    expect(fs.statSync(a.path).mode & 0o777).to.equal(0o600);
    expect(fs.statSync(b.path).mode & 0o777).to.equal(0o660);
    expect(a.leftBehind).to.not.equal(null);
    a.close(true);
    b.close(false);
    expect(fs.existsSync(a.path)).to.equal(false);
    expect(fs.existsSync(b.path)).to.equal(true);
  });

  it('refuses a socket systemd passed that listens on TCP, naming where it listens', async () => {
    const tcp = net.createServer();
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const { port } = tcp.address() as net.AddressInfo;
    const server = new ControlServer(path.join(tmpDir(), 'c.sock'));
    try {
      await server.listen(addon.dup(fdOf(tcp)), { activated: true }).then(() => expect.fail('listen succeeded'), (err: Error & { code?: string }) => {
        expect(err.code).to.equal('ERR_GRACEFUL_INVALID_ARGUMENT');
        expect(err.message).to.equal(`controlSocket: the socket systemd passed as the control socket listens on 127.0.0.1 port ${port}, ` +
          'not on a UNIX path: give the control socket a ListenStream= with a path (ListenStream=/run/app/app.sock)');
      });
    } finally {
      server.close(false);
      tcp.close();
    }
  });

  it('settle waits for the lines a client already sent, or for its deadline', async () => {
    const server = new ControlServer(path.join(tmpDir(), 'c.sock'));
    let release: (() => void) | null = null;
    server.commands.add('block', { usage: 'block', run: () => new Promise<void>((resolve) => (release = resolve)) });
    server.commands.add('echo', { usage: 'echo', run: (ctx) => ctx.args.join(' ') });
    await server.listen();
    try {
      await server.settle(Date.now() + 60_000); // nothing queued: at once
      const c = await connectRaw(server.path);
      c.socket.write('block\necho after\n');
      await until(() => release !== null, 5_000, 'block to run, with echo read and queued behind it');
      const started = Date.now();
      await server.settle(Date.now() + 200); // the deadline comes first
      expect(Date.now() - started).to.be.at.least(150);
      let settled = false;
      const settling = server.settle(Date.now() + 60_000).then(() => (settled = true));
      expect(settled).to.equal(false);
      release!();
      await settling;
      await until(() => c.lines.length === 3, 5_000, 'the answers');
      expect(c.lines).to.deep.equal(['ok', 'after', 'ok']);
      c.socket.destroy();
    } finally {
      server.close(true);
    }
  });
});
