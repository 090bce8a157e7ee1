/** handoff/handlers.ts: the handler combinators, each sending what it wraps to a real client. */
import { expect } from 'chai';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { callbackHandler, dgramHandler, fdHandler, fileHandler, listenerHandler, sequenceHandler, socketHandler } from '../../src/handoff/handlers.js';
import { receive } from '../../src/handoff/client.js';
import { listenAndServe, type Handler } from '../../src/handoff/server.js';
import type { Meta } from '../../src/meta.js';
import { fdOf } from '../../src/fds.js';
import { fdCount, tmpDir } from '../helpers.js';

/** serveOnce serves handler at a fresh path and returns what one client received: each descriptor's inode and meta. */
async function serveOnce(handler: Handler): Promise<{ inode: string; meta: Meta | null }[]> {
  const sock = path.join(tmpDir(), 'h.sock');
  const server = listenAndServe(sock, handler);
  const got: { inode: string; meta: Meta | null }[] = [];
  try {
    await receive(sock, (fd, meta) => {
      got.push({ inode: fs.readlinkSync(`/proc/self/fd/${fd}`), meta });
      fs.closeSync(fd);
    });
  } finally {
    await server.close();
  }
  return got;
}
const inodeOf = (fd: number): string => fs.readlinkSync(`/proc/self/fd/${fd}`);

describe('handoff/handlers', () => {
  it('fdHandler sends a descriptor with meta, and refuses what is no descriptor at once', async () => {
    const before = fdCount();
    const fd = fs.openSync('/dev/null', 'r');
    expect(await serveOnce(fdHandler(fd, { kind: 'file' }))).to.deep.equal([{ inode: '/dev/null', meta: { kind: 'file' } }]);
    fs.closeSync(fd);
    expect(() => fdHandler(-1)).to.throw('fdOf: a descriptor must be a non-negative integer, got -1').with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    expect(fdCount()).to.equal(before);
  });

  it('listenerHandler, socketHandler and dgramHandler send the descriptor of a listening server, a connection and a bound socket', async () => {
    const before = fdCount();
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const theirs = await accepted;
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const got = await serveOnce(sequenceHandler(
      listenerHandler(server, { name: 'l' }),
      socketHandler(theirs, { name: 's' }),
      dgramHandler(udp, { name: 'u' }),
    ));
    expect(got).to.deep.equal([
      { inode: inodeOf(fdOf(server)), meta: { name: 'l' } },
      { inode: inodeOf(fdOf(theirs)), meta: { name: 's' } },
      { inode: inodeOf(fdOf(udp)), meta: { name: 'u' } },
    ]);
    for (const g of got) expect(g.inode).to.match(/^socket:\[\d+\]$/);
    client.destroy();
    theirs.destroy();
    udp.close();
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise((r) => setImmediate(r));
    expect(fdCount()).to.equal(before);
  });

  it('fileHandler sends an fd, a FileHandle, or a write stream once it opened', async () => {
    const before = fdCount();
    const dir = tmpDir();
    const fh = await fs.promises.open(path.join(dir, 'a'), 'w');
    const ws = fs.createWriteStream(path.join(dir, 'b'));
    const got = await serveOnce(sequenceHandler(fileHandler(fh, { f: 'a' }), fileHandler(ws, { f: 'b' })));
    expect(got).to.deep.equal([{ inode: path.join(dir, 'a'), meta: { f: 'a' } }, { inode: path.join(dir, 'b'), meta: { f: 'b' } }]);
    await fh.close();
    await new Promise<void>((r) => ws.close(() => r()));
    expect(fdCount()).to.equal(before);
  });

  it('sequenceHandler runs handlers in order; callbackHandler adapts any function of the response', async () => {
    const order: string[] = [];
    const fd = fs.openSync('/dev/null', 'r');
    const got = await serveOnce(sequenceHandler(
      callbackHandler(async (res) => {
        await new Promise((r) => setImmediate(r));
        order.push('first');
        res.send(fd, { n: 1 });
      }),
      callbackHandler((res) => {
        order.push('second');
        expect(res.peer().pid).to.equal(process.pid);
        res.send(fd, { n: 2 });
      }),
    ));
    expect(order).to.deep.equal(['first', 'second']);
    expect(got.map((g) => g.meta)).to.deep.equal([{ n: 1 }, { n: 2 }]);
    fs.closeSync(fd);
  });
});
