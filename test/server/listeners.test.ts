/** ManagedListener and OwnedFd on real sockets: which inherited socket fits, stop and take-back, who closes a descriptor. */
import { expect } from 'chai';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { listenOnFd, fdOf } from '../../src/index.js';
import { addon } from '../../src/native.js';
import { ManagedListener } from '../../src/server/listeners.js';
import { OwnedFd } from '../../src/owned-fd.js';
import { tmpDir } from '../helpers.js';

const isOpen = (fd: number) => {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};

function connectOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1', () => {
      c.destroy();
      resolve();
    });
    c.on('error', reject);
  });
}

describe('listeners', () => {
  it('matches an inherited socket only where the bind options ask: path, port, host; a socket from systemd always', () => {
    const tcp = (bind: object) => new ManagedListener('http', net.createServer(), bind);
    const meta = (m: object) => ({ name: 'http', kind: 'listener', family: 'tcp', ...m });
    expect(tcp({ port: 8080, host: '127.0.0.1' }).matches(meta({ host: '127.0.0.1', port: 8080 }))).to.equal(true);
    expect(tcp({ port: 8080, host: '127.0.0.1' }).matches(meta({ host: '0.0.0.0', port: 8080 })), 'host narrowed').to.equal(false);
    expect(tcp({ port: 8080 }).matches(meta({ host: '127.0.0.1', port: 8080 })), 'host widened').to.equal(false);
    expect(tcp({ port: 8080 }).matches(meta({ host: '::', port: 8080 }))).to.equal(true);
    expect(tcp({ port: 8081, host: '127.0.0.1' }).matches(meta({ host: '127.0.0.1', port: 8080 })), 'port changed').to.equal(false);
    expect(tcp({ host: '127.0.0.1' }).matches(meta({ host: '127.0.0.1', port: 8080 })), 'port 0 keeps the real one').to.equal(true);
    expect(tcp({ port: 8080, host: 'localhost' }).matches(meta({ host: '127.0.0.1', port: 8080 }))).to.equal(true);
    expect(tcp({ port: 8080, host: '::1' }).matches(meta({ host: '127.0.0.1', port: 8080 }))).to.equal(false);
    expect(tcp({ port: 1 }).matches(meta({ host: '127.0.0.1', port: 8080, systemd: true })), 'systemd owns the address').to.equal(true);
    expect(tcp({ port: 8080 }).matches({ name: 'http', kind: 'dgram', port: 8080 })).to.equal(false);
    const unix = new ManagedListener('u', net.createServer(), { path: '/run/a.sock' });
    expect(unix.matches({ kind: 'listener', family: 'unix', path: '/run/a.sock' })).to.equal(true);
    expect(unix.matches({ kind: 'listener', family: 'unix', path: '/run/b.sock' })).to.equal(false);
    expect(unix.matches(meta({ host: '127.0.0.1', port: 8080 }))).to.equal(false);
  });

  it('overlaps: an inherited TCP socket on the port asked for but another host; not one that matches, another port, a port left to the kernel, UNIX or systemd', () => {
    const tcp = (bind: object) => new ManagedListener('http', net.createServer(), bind);
    const meta = (m: object) => ({ name: 'http', kind: 'listener', family: 'tcp', ...m });
    expect(tcp({ port: 8080, host: '0.0.0.0' }).overlaps(meta({ host: '127.0.0.1', port: 8080 })), 'widened').to.equal(true);
    expect(tcp({ port: 8080, host: '127.0.0.1' }).overlaps(meta({ host: '0.0.0.0', port: 8080 })), 'narrowed').to.equal(true);
    expect(tcp({ port: 8080 }).overlaps(meta({ host: '127.0.0.1', port: 8080 })), 'no host: every address').to.equal(true);
    expect(tcp({ port: 8080, host: '127.0.0.1' }).overlaps(meta({ host: '127.0.0.1', port: 8080 })), 'matches').to.equal(false);
    expect(tcp({ port: 8081, host: '0.0.0.0' }).overlaps(meta({ host: '127.0.0.1', port: 8080 })), 'another port').to.equal(false);
    expect(tcp({ host: '0.0.0.0' }).overlaps(meta({ host: '127.0.0.1', port: 8080 })), 'port left to the kernel').to.equal(false);
    expect(tcp({ port: 8080, host: '0.0.0.0' }).overlaps(meta({ host: '127.0.0.1', port: 8080, systemd: true }))).to.equal(false);
    expect(tcp({ port: 8080, host: '0.0.0.0' }).overlaps({ kind: 'listener', family: 'unix', path: '/run/a.sock' })).to.equal(false);
    expect(new ManagedListener('u', net.createServer(), { path: '/run/a.sock' }).overlaps(meta({ host: '127.0.0.1', port: 8080 }))).to.equal(false);
  });

  it('stops accepting, and takes back on its kept duplicate: the same port, accepting again, the duplicate used once', async () => {
    const server = net.createServer((s) => s.destroy());
    const l = new ManagedListener('http', server, { host: '127.0.0.1' });
    await l.start();
    const port = l.address().port as number;
    await connectOnce(port);
    l.keepSpare();
    l.stop(false);
    expect(l.isOpen).to.equal(false);
    await l.takeBack();
    expect(l.isOpen).to.equal(true);
    expect(l.address()).to.include({ family: 'tcp', host: '127.0.0.1', port });
    await connectOnce(port);
    l.dropSpare(); // nothing left to drop: a second close would hit a reused number
    l.stop(true);
  });

  it('start() takes an inherited socket from its owner, even when listening on it fails', async () => {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const fd = addon.dup(fdOf(udp));
    udp.close();
    const owned = new OwnedFd(fd, { name: 'http' });
    const l = new ManagedListener('http', net.createServer(), {});
    const err = await l.start(owned).catch((e: unknown) => e as Error & { code?: string });
    expect(err).to.be.instanceOf(Error);
    expect(owned.open, 'the owner gave it away').to.equal(false);
    expect(isOpen(fd), 'closed once, by whoever took it').to.equal(false);
    owned.close(); // idempotent: never a second close(2)
  });

  it('listenOnFd owns the fd it is given: a non-socket is closed and refused; a bad socket closed once', async () => {
    const dir = tmpDir();
    const file = fs.openSync(path.join(dir, 'f'), 'w');
    const e1 = (await listenOnFd(net.createServer(), file).catch((e: unknown) => e)) as { code?: string };
    expect(e1.code).to.equal('ERR_GRACEFUL_NOT_TRANSFERABLE');
    expect(isOpen(file)).to.equal(false);
    // A connected socket cannot listen: Node made a handle of it and closes it; listenOnFd must not close it again.
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise((r) => client.once('connect', r));
    const dup = addon.dup(fdOf(client));
    const e2 = await listenOnFd(net.createServer(), dup).catch((e: unknown) => e as { code?: string });
    expect(e2).to.be.instanceOf(Error);
    expect(isOpen(dup)).to.equal(false);
    client.destroy();
    server.close();
  });

  it('OwnedFd: close once, take gives it away, a closed one says so with ERR_GRACEFUL_CLOSED', () => {
    const a = new OwnedFd(addon.dup(1), { name: 'a' });
    const n = a.fd;
    a.close();
    a.close();
    expect(isOpen(n)).to.equal(false);
    expect(() => a.fd).to.throw(/"a" was closed or given away already/).with.property('code', 'ERR_GRACEFUL_CLOSED');
    const b = new OwnedFd(addon.dup(1));
    const m = b.take();
    b.close();
    expect(isOpen(m), 'taken: no longer closed by its old owner').to.equal(true);
    addon.close(m);
  });
});
