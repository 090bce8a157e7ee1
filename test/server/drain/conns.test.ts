/** Connections: the table of a listener's connections and the state each counts under, on real sockets. */
import { expect } from 'chai';
import fs from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { once } from 'node:events';
import { Connections, stateOf, type Conn } from '../../../src/server/drain/conns.js';
import { root, until } from '../../helpers.js';

const tlsFiles = { key: fs.readFileSync(path.join(root, 'test/fixtures/tls/key.pem')), cert: fs.readFileSync(path.join(root, 'test/fixtures/tls/cert.pem')) };

describe('drain/conns: Connections', function () {
  this.timeout(10_000);
  const open: net.Server[] = [];
  const clients: net.Socket[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.destroy();
    for (const s of open.splice(0)) s.close();
  });

  /** accepted: a server on port 0, a client connected to it, and the server's side of that connection. */
  async function accepted<S extends net.Server>(server: S, connect: (port: number) => net.Socket): Promise<{ server: S; client: net.Socket; raw: net.Socket }> {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    open.push(server);
    const gotRaw = once(server, 'connection') as Promise<[net.Socket]>;
    const client = connect((server.address() as net.AddressInfo).port);
    client.on('error', () => undefined);
    clients.push(client);
    const [raw] = await gotRaw;
    return { server, client, raw };
  }

  it('finds a TLS connection by the accepted socket and by its TLSSocket, and forgets both when removed', async () => {
    const table = new Connections();
    const server = tls.createServer(tlsFiles);
    let conn: Conn | null = null;
    server.on('connection', (raw: net.Socket) => (conn = table.add(raw, raw, 'tls')));
    const secure = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>;
    const { raw } = await accepted(server, (port) => tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }));
    expect(stateOf(conn!)).to.equal('tlsHandshake');
    const [socket] = await secure;
    table.setIo(conn!, socket);
    conn!.kind = 'http1';
    expect(table.byAccepted(raw)).to.equal(conn);
    expect(table.byProtocol(socket)).to.equal(conn);
    expect([table.has(raw), table.has(socket), table.size]).to.deep.equal([true, true, 1]);
    expect(stateOf(conn!)).to.equal('tlsBeforeRequest');
    conn!.requests = 1;
    expect(stateOf(conn!)).to.equal('idle');
    table.remove(conn!);
    expect([table.has(raw), table.has(socket), table.size, table.byProtocol(raw)]).to.deep.equal([false, false, 0, undefined]);
  });

  it('counts each connection under its state: idle, headers arriving, in a request, pipelined, handing over, and the other kinds', async () => {
    const table = new Connections();
    const { client, raw } = await accepted(net.createServer(), (port) => net.connect(port, '127.0.0.1'));
    raw.resume();
    const conn = table.add(raw, raw, 'http1');
    expect(stateOf(conn)).to.equal('idle');
    client.write('GET / HTTP/1.1\r\n');
    await until(() => raw.bytesRead > 0);
    expect(stateOf(conn)).to.equal('headers');
    const pending = { res: null as unknown as http.ServerResponse, followed: false };
    conn.queue.push(pending);
    expect(stateOf(conn)).to.equal('request');
    conn.queue.push(pending);
    expect(stateOf(conn)).to.equal('pipelined');
    conn.moving = true;
    expect(stateOf(conn)).to.equal('handingOver');
    for (const [kind, state] of [['h2', 'http2'], ['upgraded', 'upgraded'], ['other', 'other'], ['tls', 'tlsHandshake']] as const) {
      conn.kind = kind;
      expect(stateOf(conn)).to.equal(state);
    }
    expect(table.states(3)).to.include({ tlsHandshake: 1, http2Streams: 3, idle: 0 });
  });
});
