/**
 * The drain's side of a connection hand-over alone: tryMove on real HTTP/1
 * connections of a real server, with a ConnectionMover that records what it
 * is given (the new instance's side is tested in conn-handover and handover).
 */
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { Connections, type Conn } from '../../../src/server/drain/conns.js';
import { followRequest, markIdle } from '../../../src/server/drain/http1.js';
import { canMove, tryMove, type ConnectionMover } from '../../../src/server/drain/handover.js';
import type { MoveCounts } from '../../../src/server/drain/options.js';
import type { Meta } from '../../../src/meta.js';
import { until } from '../../helpers.js';

const open: net.Server[] = [];
const clients: net.Socket[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of open.splice(0)) s.close();
});

/** Mover: takes every connection (destroying this process's socket, as a pass does) or none. */
class Mover implements ConnectionMover {
  readonly error = null;
  readonly given: { fd: number; meta: Meta }[] = [];
  constructor(private readonly takes: boolean) {}
  accepts(): boolean {
    return true;
  }
  acceptsSockets(): boolean {
    return false;
  }
  async pass(socket: net.Socket, handle: { fd: number }, meta: Meta): Promise<boolean> {
    this.given.push({ fd: handle.fd, meta });
    if (this.takes) socket.destroy();
    return this.takes;
  }
}

/** idleConnection: an HTTP/1 connection of a real server that answered one request and is idle. */
async function idleConnection(): Promise<{ conn: Conn; client: net.Socket; text: () => string }> {
  const table = new Connections();
  const idle: Conn[] = [];
  const drain = { draining: () => true, mayMove: () => true, idle: (c: Conn) => (markIdle(c), idle.push(c)) };
  // The body is read before the answer: the connection becomes idle once per request, when its response is written.
  const server = http.createServer((req, res) => req.resume().once('end', () => res.end(req.url)));
  server.on('connection', (raw: net.Socket) => table.add(raw, raw, 'http1'));
  server.prependListener('request', (req, res) => followRequest(table.byProtocol(req.socket)!, req, res, drain));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  open.push(server);
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  clients.push(client);
  let text = '';
  client.setEncoding('latin1');
  client.on('data', (d: string) => (text += d));
  client.write('GET /1 HTTP/1.1\r\nHost: x\r\n\r\n');
  await until(() => idle.length === 1 && text.endsWith('/1'));
  return { conn: idle[0]!, client, text: () => text };
}

const counts = (): MoveCounts => ({ handedOver: 0, drained: 0, forced: 0 });

describe('drain/handover: tryMove', function () {
  this.timeout(10_000);

  it('canMove: only a plain HTTP/1 connection that is not ending and has not failed a pass', async () => {
    const { conn } = await idleConnection();
    expect(canMove(conn)).to.equal(true);
    for (const change of [{ kind: 'upgraded' }, { stays: true }, { ending: true }, { io: new net.Socket() }] as Partial<Conn>[]) {
      expect(canMove({ ...conn, ...change }), JSON.stringify(Object.keys(change))).to.equal(false);
    }
  });

  it('passes an idle connection at a request boundary with its listener and peer, and counts it', async () => {
    const { conn, client } = await idleConnection();
    const mover = new Mover(true);
    const moved = counts();
    const fd = (conn.raw as unknown as { _handle: { fd: number } })._handle.fd;
    const port = client.localPort; // read now: the client sees the end once the mover took the socket
    tryMove(conn, mover, 'web', moved);
    expect(conn.moving).to.equal(true);
    await until(() => moved.handedOver === 1);
    expect(mover.given).to.deep.equal([{ fd, meta: { listener: 'web', remoteAddress: '127.0.0.1', remotePort: port } }]);
  });

  it('a connection the mover does not take stays, reads again and is answered here', async () => {
    const { conn, client, text } = await idleConnection();
    const moved = counts();
    tryMove(conn, new Mover(false), 'web', moved);
    await until(() => conn.stays);
    expect([conn.moving, moved.handedOver]).to.deep.equal([false, 0]);
    client.write('GET /2 HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => text().endsWith('/2'));
    // it stays: a later try does not pass it
    const mover = new Mover(true);
    tryMove(conn, mover, 'web', moved);
    expect(mover.given).to.deep.equal([]);
  });

  it('a connection on which a next request is arriving is not passed, and is read on', async () => {
    const { conn, client, text } = await idleConnection();
    client.write('GET /2 HTTP/1.1\r\n');
    await until(() => conn.raw.bytesRead > conn.readMark);
    const mover = new Mover(true);
    tryMove(conn, mover, 'web', counts());
    expect([mover.given.length, conn.moving, conn.stays]).to.deep.equal([0, false, false]);
    client.write('Host: x\r\n\r\n');
    await until(() => text().endsWith('/2'));
  });

  it('a connection that no longer speaks HTTP (no parser) stays and drains', async () => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    open.push(server);
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    clients.push(client);
    const [raw] = await accepted;
    const conn = new Connections().add(raw, raw, 'http1');
    const mover = new Mover(true);
    tryMove(conn, mover, 'web', counts());
    expect([conn.stays, mover.given.length]).to.deep.equal([true, 0]);
  });
});
