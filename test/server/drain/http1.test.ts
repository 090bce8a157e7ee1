/**
 * The HTTP/1 part of the drain alone: followRequest on a real http.Server,
 * with a drain that is (or is not) under way, and real clients.
 */
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { Connections, type Conn } from '../../../src/server/drain/conns.js';
import { endIfIdle, followRequest, headsInChunk, markIdle, type Http1Drain } from '../../../src/server/drain/http1.js';
import { until } from '../../helpers.js';

interface Served {
  port: number;
  table: Connections;
  drain: Http1Drain & { on: boolean; moves: boolean; idles: Conn[] };
}

const open: net.Server[] = [];
const clients: net.Socket[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of open.splice(0)) s.close();
});

/** serve: an http.Server whose requests the HTTP/1 part follows before app answers them. */
async function serve(app: http.RequestListener): Promise<Served> {
  const table = new Connections();
  const drain = {
    on: false, moves: false, idles: [] as Conn[],
    draining: () => drain.on,
    mayMove: () => drain.moves,
    idle: (c: Conn) => {
      markIdle(c);
      drain.idles.push(c);
    },
  };
  const server = http.createServer(app);
  server.on('connection', (raw: net.Socket) => table.add(raw, raw, 'http1'));
  server.prependListener('request', (req, res) => followRequest(table.byProtocol(req.socket)!, req, res, drain));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  open.push(server);
  return { port: (server.address() as net.AddressInfo).port, table, drain };
}

/** client: a raw socket that keeps what it reads. */
async function client(port: number): Promise<{ socket: net.Socket; text: () => string }> {
  const socket = net.connect(port, '127.0.0.1');
  clients.push(socket);
  await once(socket, 'connect');
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (text += d));
  return { socket, text: () => text };
}

const connections = (text: string) => [...text.matchAll(/^Connection: (\S+)\r$/gim)].map((m) => m[1]!.toLowerCase());
const pipeline = (n: number) => [...Array(n).keys()].map((i) => `GET /${i + 1} HTTP/1.1\r\nHost: x\r\n\r\n`).join('');

describe('drain/http1: followRequest', function () {
  this.timeout(10_000);

  it('outside a drain, responses keep the connection; the connection is idle again once each is written', async () => {
    const s = await serve((req, res) => res.end(req.url));
    const c = await client(s.port);
    c.socket.write(pipeline(2));
    await until(() => connections(c.text()).length === 2);
    expect(connections(c.text())).to.deep.equal(['keep-alive', 'keep-alive']);
    await until(() => s.drain.idles.length >= 2);
    const conn = [...s.table.values()][0]!;
    expect([conn.requests, conn.queue.length, conn.readMark]).to.deep.equal([2, 0, conn.raw.bytesRead]);
  });

  it('during a drain, of 3 requests read in one chunk and answered at once only the last says close', async () => {
    const s = await serve((req, res) => res.end(req.url));
    s.drain.on = true;
    const c = await client(s.port);
    const ended = once(c.socket, 'end');
    c.socket.write(pipeline(3));
    await ended;
    expect(connections(c.text())).to.deep.equal(['keep-alive', 'keep-alive', 'close']);
  });

  it('during a drain, a response on a connection that is to move keeps it', async () => {
    const s = await serve((req, res) => res.end(req.url));
    s.drain.on = true;
    s.drain.moves = true;
    const c = await client(s.port);
    c.socket.write(pipeline(1));
    await until(() => connections(c.text()).length === 1);
    expect(connections(c.text())).to.deep.equal(['keep-alive']);
  });

  it('a request in flight is queued until its response is written', async () => {
    let answer: (() => void) | null = null;
    const s = await serve((_req, res) => (answer = () => res.end('late')));
    const c = await client(s.port);
    c.socket.write(pipeline(1));
    await until(() => answer !== null);
    const conn = [...s.table.values()][0]!;
    expect(conn.queue.length).to.equal(1);
    answer!();
    await until(() => conn.queue.length === 0 && s.drain.idles.length >= 1);
  });
});

describe('drain/http1: endIfIdle and headsInChunk', function () {
  this.timeout(10_000);

  it('endIfIdle ends a connection only once idle for the grace window with nothing of a next request read', async () => {
    // The body is read before the answer: the connection becomes idle once, when the response is written.
    const s = await serve((req, res) => req.resume().once('end', () => res.end(req.url)));
    const c = await client(s.port);
    c.socket.write(pipeline(1));
    await until(() => s.drain.idles.length === 1 && c.text().endsWith('/1'));
    const conn = s.drain.idles[0]!;
    expect(endIfIdle(conn, conn.idleSince + 99, 100)).to.equal(false);
    c.socket.write('GET /next HTTP/1.1\r\n');
    await until(() => conn.raw.bytesRead > conn.readMark);
    expect(endIfIdle(conn, conn.idleSince + 1_000, 100)).to.equal(false);
    markIdle(conn);
    const ended = once(c.socket, 'end');
    expect(endIfIdle(conn, conn.idleSince + 100, 100)).to.equal(true);
    expect(conn.ending).to.equal(true);
    await ended;
  });

  it('headsInChunk is 0 for a socket that has no HTTP parser', async () => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    open.push(server);
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    await client((server.address() as net.AddressInfo).port);
    const [raw] = await accepted;
    expect(headsInChunk(raw)).to.equal(0);
  });
});
