/** Taking descriptors out of Node objects and putting them back. */
import { expect } from 'chai';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fdOf, socketFromFd, writeStreamFromFd, waitForFd, listenOnPath, listenAndServe, receive, socketHandler } from '../../src/handoff.js';
import { tmpDir } from '../helpers.js';

describe('fds', () => {
  it('takes the fd out of a net.Server, net.Socket, dgram.Socket, FileHandle and file stream', async () => {
    const dir = tmpDir();
    const server = net.createServer();
    expect(() => fdOf(server)).to.throw(/has no open descriptor/).with.property('code', 'ERR_GRACEFUL_NOT_TRANSFERABLE');
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const sfd = fdOf(server);
    expect(fs.readlinkSync(`/proc/self/fd/${sfd}`)).to.match(/^socket:/);

    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise((r) => client.once('connect', r));
    expect(fdOf(client)).to.be.a('number').and.not.equal(sfd);

    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    expect(fs.readlinkSync(`/proc/self/fd/${fdOf(udp)}`)).to.match(/^socket:/);

    const fh = await fs.promises.open(path.join(dir, 'f'), 'w');
    expect(fdOf(fh)).to.equal(fh.fd);
    const ws = fs.createWriteStream(path.join(dir, 'g'));
    expect(await waitForFd(ws)).to.equal(fdOf(ws));

    expect(() => fdOf({} as never)).to.throw(/expected a descriptor/);
    client.destroy();
    server.close();
    udp.close();
    await fh.close();
    ws.close();
  });

  it('wraps a descriptor in a net.Socket and a write stream that own it', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'out');
    const ws = writeStreamFromFd(fs.openSync(file, 'a'));
    await new Promise<void>((r) => ws.end('hello\n', () => r()));
    expect(fs.readFileSync(file, 'utf8')).to.equal('hello\n');

    // A connected socket travels through a hand-off and is wrapped again.
    const server = net.createServer();
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const theirs = await accepted;
    const sock = path.join(dir, 'h.sock');
    const hs = listenAndServe(sock, socketHandler(theirs, { kind: 'socket' }));
    let fd = -1;
    await receive(sock, (got) => {
      fd = got;
    });
    await hs.close();
    theirs.destroy(); // our copy of the connection stays open
    const wrapped = socketFromFd(fd);
    const answer = new Promise<string>((resolve) => client.once('data', (d) => resolve(d.toString())));
    wrapped.end('hi through the hand-off');
    expect(await answer).to.equal('hi through the hand-off');
    client.destroy();
    server.close();
  });

  it('listenOnPath binds a UNIX socket that server.close() leaves in place for a successor', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'srv.sock');
    const server = await listenOnPath(net.createServer(), sock, { mode: 0o600 });
    expect(fs.statSync(sock).mode & 0o777).to.equal(0o600);
    await new Promise((r) => server.close(r));
    expect(fs.statSync(sock).isSocket()).to.equal(true);
  });
});
