/**
 * passSocket (src/server/socket-pass.ts), the old instance's side of
 * handOver(), on real TCP connections, with a ConnectionMover of the test's
 * own standing for the new instance: its refusals, each with its code and
 * the socket untouched; a pass that fails gives the socket back, reading; one
 * that succeeds leaves the bytes that came meanwhile in the kernel for the
 * new instance, and a socket goes over once.
 */
import { expect } from 'chai';
import net from 'node:net';
import { addon } from '../../src/native.js';
import type { Meta } from '../../src/meta.js';
import type { ConnectionMover } from '../../src/server/drain/handover.js';
import { passSocket, type PassConn, type PassListener } from '../../src/server/socket-pass.js';
import { fdCount } from '../helpers.js';

type Handle = Parameters<ConnectionMover['pass']>[1];

/** Mover: what pass() does is the test's (pass: what it resolves with, or throws). */
class Mover implements ConnectionMover {
  error: Error | null = null;
  lastError: Error | null = null;
  metas: Meta[] = [];
  constructor(private readonly onPass: (socket: net.Socket, handle: Handle) => Promise<boolean>) {}
  accepts(): boolean {
    return true;
  }
  acceptsSockets(): boolean {
    return true;
  }
  pass(socket: net.Socket, handle: Handle, meta: Meta): Promise<boolean> {
    this.metas.push(meta);
    return this.onPass(socket, handle);
  }
}

/** rejects: p rejects with exactly message and code. */
async function rejects(p: Promise<unknown>, message: string, code: string): Promise<void> {
  const err = await p.then(() => null, (e: Error & { code?: string }) => e);
  expect(err, 'rejected').to.be.instanceOf(Error);
  expect({ message: err!.message, code: err!.code }).to.deep.equal({ message, code });
}

/** A turn of the event loop with its poll phase: what a reading socket had waiting, it read by then. */
const loopTurn = () => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));

describe('server/socket-pass: passSocket', () => {
  let server: net.Server;
  let client: net.Socket;
  let socket: net.Socket;
  let before: number;

  beforeEach(async () => {
    before = fdCount();
    server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    socket = await accepted;
    await new Promise((resolve) => client.once('connect', resolve));
  });

  afterEach(async () => {
    client.destroy();
    socket.destroy();
    await new Promise((resolve) => server.close(resolve));
    await loopTurn();
    expect(fdCount(), 'every descriptor of the test closed').to.equal(before);
  });

  const listener = (mover: ConnectionMover | null, handsOverSockets = true): PassListener => ({ name: 'ws', handsOverSockets, mover });
  const upgraded = (): PassConn => ({ kind: 'upgraded', moving: false });
  const reads = (what: string) => new Promise<string>((resolve) => {
    socket.once('data', (d) => resolve(d.toString()));
    client.write(what);
  });

  it('refuses what is no connection of the listener, a second hand-over, a protocol the library drains, a listener without handOverSockets', async () => {
    const mover = new Mover(() => Promise.resolve(true));
    await rejects(passSocket(listener(mover), undefined, socket, {}), 'handOver: the socket is no connection of "ws"', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    await rejects(passSocket(listener(mover), { kind: 'upgraded', moving: true }, socket, {}), 'handOver: this connection of "ws" is being handed over, or was already: hand each socket over once', 'ERR_GRACEFUL_SOCKET_HANDED_OVER');
    await rejects(passSocket(listener(mover), { kind: 'http1', moving: false }, socket, {}), 'handOver: this connection of "ws" speaks http1, which the library drains itself (idle HTTP/1.1 ones move with handOver: true): ' +
      'the application hands over only upgraded connections (WebSocket) and those of a plain net.Server', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    await rejects(passSocket(listener(mover, false), upgraded(), socket, {}), 'handOver: listener "ws" does not hand sockets over: listen with handOverSockets: true (not on a TLS server)', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    await rejects(passSocket(listener(mover), upgraded(), socket, undefined), 'handOver: the state must be JSON-able, got undefined: pass plain objects, arrays, strings, numbers, booleans or null', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    await rejects(passSocket(listener(mover), upgraded(), socket, { big: 'x'.repeat(16 * 1024) }), 'handOver: the state is 16394 bytes as JSON, at most 16384 travel with a socket: keep large data in a store both instances reach and hand over its key', 'ERR_GRACEFUL_META_TOO_LARGE');
    expect(mover.metas, 'nothing reached the mover').to.deep.equal([]);
    expect(await reads('still here'), 'the socket is read as before').to.equal('still here');
  });

  it('with no new instance taking sockets now: ERR_GRACEFUL_HANDOVER_FAILED, the socket read as before', async () => {
    await rejects(passSocket(listener(null), upgraded(), socket, {}), 'handOver: no new instance takes connections of "ws" now: hand them over from onDrain during a redeploy, ' +
      'to a new instance whose listener "ws" has handOverSockets: true and an \'adopt-socket\' listener; close this one your own way', 'ERR_GRACEFUL_HANDOVER_FAILED');
    expect(await reads('hello')).to.equal('hello');
  });

  it('refuses a closed socket with ERR_GRACEFUL_CLOSED', async () => {
    socket.destroy();
    await rejects(passSocket(listener(new Mover(() => Promise.resolve(true))), upgraded(), socket, {}), 'handOver: the socket is closed or closing: there is nothing to hand over', 'ERR_GRACEFUL_CLOSED');
  });

  it('refuses a paused socket holding bytes Node read, with ERR_GRACEFUL_UNREAD_BYTES, and reads on', async () => {
    socket.pause();
    const arrived = new Promise((resolve) => socket.once('readable', resolve));
    client.write('abc');
    await arrived;
    const conn = upgraded();
    await rejects(passSocket(listener(new Mover(() => Promise.resolve(true))), conn, socket, {}), 'handOver: 3 byte(s) were read from the socket but not consumed by the application (a paused socket): ' +
      'read them (socket.read()) and pass what your parser did not consume as head, or hand the socket over once it has none', 'ERR_GRACEFUL_UNREAD_BYTES');
    expect(conn.moving).to.equal(false);
    expect(String(socket.read())).to.equal('abc');
  });

  it('a pass that fails gives the socket back: not moving, read again, and it may be handed over again', async () => {
    let seenWhilePassing = '';
    const mover = new Mover(async (s) => {
      if (mover.metas.length > 1) return false;
      s.once('data', (d) => (seenWhilePassing += d.toString()));
      await new Promise((resolve) => client.write('during', resolve));
      await loopTurn();
      return false;
    });
    mover.lastError = new Error('the new instance closed the hand-off');
    const conn = upgraded();
    await rejects(passSocket(listener(mover), conn, socket, { user: 'ann' }, { head: Buffer.from('hd') }), 'handOver: the new instance closed the hand-off; the connection of "ws" stays here: close it your own way', 'ERR_GRACEFUL_HANDOVER_FAILED');
    expect(seenWhilePassing, 'nothing read while the socket was being passed').to.equal('');
    expect(conn.moving).to.equal(false);
    expect(await new Promise<string>((resolve) => socket.once('data', (d) => resolve(d.toString()))), 'what came meanwhile is read now').to.equal('during');
    expect(mover.metas).to.deep.equal([{
      kind: 'socket', listener: 'ws', remoteAddress: '127.0.0.1', remotePort: client.localPort, state: '{"user":"ann"}', head: Buffer.from('hd').toString('base64'),
    }]);
    // mover.error (the hand-off's own) is named before the last pass's error.
    mover.error = new Error('the hand-off is gone');
    await rejects(passSocket(listener(mover), conn, socket, 1), 'handOver: the hand-off is gone; the connection of "ws" stays here: close it your own way', 'ERR_GRACEFUL_HANDOVER_FAILED');
    expect(await reads('again')).to.equal('again');
  });

  it('a pass that throws: ERR_GRACEFUL_HANDOVER_FAILED with the cause, the socket given back', async () => {
    const boom = new Error('sendmsg EPIPE');
    const conn = upgraded();
    const err = await passSocket(listener(new Mover(() => Promise.reject(boom))), conn, socket, null).catch((e: Error & { code?: string }) => e);
    expect(err).to.include({ message: 'handOver: sendmsg EPIPE', code: 'ERR_GRACEFUL_HANDOVER_FAILED' });
    expect((err as Error).cause).to.equal(boom);
    expect(conn.moving).to.equal(false);
    expect(await reads('back')).to.equal('back');
  });

  it('a pass that succeeds: true; the bytes sent meanwhile wait in the kernel for the new instance; the socket goes over once', async () => {
    let taken = -1;
    const mover = new Mover(async (s, handle) => {
      await new Promise((resolve) => client.write('for the new one', resolve));
      await loopTurn();
      taken = addon.dup((handle as unknown as { fd: number }).fd); // what the new instance receives
      s.destroy();
      return true;
    });
    const conn = upgraded();
    expect(await passSocket(listener(mover), conn, socket, { room: 7 })).to.equal(true);
    expect(conn.moving, 'the tracker\'s record stays moving: the socket is gone').to.equal(true);
    expect(mover.metas[0]).to.deep.include({ kind: 'socket', listener: 'ws', state: '{"room":7}', head: '' });
    const adopted = new net.Socket({ fd: taken, readable: true, writable: true });
    try {
      expect(await new Promise<string>((resolve) => adopted.once('data', (d) => resolve(d.toString())))).to.equal('for the new one');
    } finally {
      adopted.destroy();
    }
    await rejects(passSocket(listener(mover), upgraded(), socket, {}), 'handOver: this connection of "ws" is being handed over, or was already: hand each socket over once', 'ERR_GRACEFUL_SOCKET_HANDED_OVER');
    expect(mover.metas).to.have.length(1);
  });
});
