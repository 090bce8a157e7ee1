/**
 * The read seam of a net.Socket, on real UNIX stream sockets: stopReading
 * leaves what the peer sends in the kernel, startReading delivers it (also
 * after a read() that found nothing), handleOf names the descriptor.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { addon } from '../../src/native.js';
import { handleOf, startReading, stopReading } from '../../src/read-seam.js';
import { fdOf } from '../../src/fds.js';
import { tmpDir, until } from '../helpers.js';

/** pair: both ends of a UNIX stream connection, ours as accepted by a server. */
async function pair(): Promise<{ ours: net.Socket; peer: net.Socket; close: () => void }> {
  const server = net.createServer();
  const sock = path.join(tmpDir(), 's.sock');
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const peer = net.createConnection(sock);
  await new Promise<void>((resolve) => peer.once('connect', resolve));
  const ours = await accepted;
  server.close();
  return { ours, peer, close: () => { ours.destroy(); peer.destroy(); } };
}

/** written resolves once data is in the kernel (for a UNIX stream socket: in the receiver's queue). */
function written(socket: net.Socket, data: string): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (err) => (err ? reject(err) : resolve())));
}

/** turn resolves after the event loop went through a poll phase (where libuv reads). */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

describe('read seam (core)', () => {
  it('handleOf: the libuv handle with the socket\'s descriptor; null once the socket is destroyed', async () => {
    const { ours, close } = await pair();
    try {
      const handle = handleOf(ours);
      expect(handle).to.not.equal(null);
      expect(handle!.fd).to.equal(fdOf(ours));
      expect(handle!.readStop).to.be.a('function');
      ours.destroy();
      expect(handleOf(ours)).to.equal(null);
    } finally {
      close();
    }
  });

  it('stopReading: what the peer sends then stays in the kernel, not in Node', async () => {
    const { ours, peer, close } = await pair();
    const got: Buffer[] = [];
    ours.on('data', (c: Buffer) => got.push(c));
    try {
      stopReading(ours);
      await written(peer, 'kept by the kernel');
      await turn();
      expect(got).to.deep.equal([]);
      expect(ours.bytesRead).to.equal(0);
      // The bytes are still in the socket's receive queue: a duplicate of the descriptor reads them.
      const dup = addon.dup(fdOf(ours));
      try {
        const buf = Buffer.alloc(64);
        const n = fs.readSync(dup, buf);
        expect(buf.subarray(0, n).toString()).to.equal('kept by the kernel');
      } finally {
        addon.close(dup);
      }
    } finally {
      close();
    }
  });

  it('startReading delivers what arrived meanwhile, even after a read() that found nothing', async () => {
    const { ours, peer, close } = await pair();
    const got: string[] = [];
    try {
      stopReading(ours);
      // The trap: with nothing buffered, read() leaves the stream believing a read is under way,
      // so resume() alone would never start the handle again.
      expect(ours.read()).to.equal(null);
      await written(peer, 'first');
      ours.on('data', (c: Buffer) => got.push(c.toString()));
      startReading(ours);
      await until(() => got.join('') === 'first', 5_000, 'the bytes sent while reading was stopped');
      await written(peer, ' then more');
      await until(() => got.join('') === 'first then more', 5_000, 'the bytes sent after reading started again');
    } finally {
      close();
    }
  });

  it('stop and start again and again: nothing lost, nothing doubled, in order', async () => {
    const { ours, peer, close } = await pair();
    let got = '';
    ours.on('data', (c: Buffer) => (got += c.toString()));
    try {
      let sent = '';
      for (let i = 0; i < 20; i++) {
        stopReading(ours);
        await written(peer, `${i},`);
        sent += `${i},`;
        startReading(ours);
        await until(() => got === sent, 5_000, `chunk ${i}`);
      }
    } finally {
      close();
    }
  });

  it('both are harmless on a destroyed socket', async () => {
    const { ours, close } = await pair();
    ours.destroy();
    stopReading(ours);
    startReading(ours);
    expect(ours.destroyed).to.equal(true);
    close();
  });
});
