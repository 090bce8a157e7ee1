/**
 * handOver() and handOverWebSocket() refuse careless calls with their codes,
 * outside a redeploy, in this process with real sockets and `ws` clients:
 * the connection stays usable and no descriptor is left behind.
 */
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { GracefulServer } from '../../src/index.js';
import { fdCount, until } from '../helpers.js';

const quiet = { signals: false, exitProcess: false, log: () => undefined };
const refusal = (p: Promise<unknown>) => p.then(() => ({ code: 'resolved', message: '' }), (e: { code?: string; message: string }) => ({ code: e.code, message: e.message }));

function openWs(port: number, deflate = false): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: deflate });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function echo(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    ws.once('message', (d) => resolve(String(d)));
    ws.send(text);
  });
}

describe('socket hand-over: careless calls are refused with their codes', () => {
  it('listen() checks handOverSockets', async () => {
    const app = new GracefulServer(quiet);
    const err = await refusal(app.listen('x', http.createServer(), { host: '127.0.0.1', handOverSockets: 'yes' as unknown as boolean }));
    expect(err).to.deep.equal({ code: 'ERR_GRACEFUL_INVALID_ARGUMENT', message: 'listen: handOverSockets must be true or false, got yes' });
    await app.ready();
    await app.telinit(0);
  });

  it('not a socket, not ours, not upgraded, option off, bad state, no redeploy, no ws: coded errors; the connections still work; no descriptor left', async () => {
    const before = fdCount();
    const app = new GracefulServer(quiet);
    const server = http.createServer((_req, res) => res.end('ok'));
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: true });
    const served: WebSocket[] = [];
    server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => {
      served.push(ws);
      ws.on('message', (d) => ws.send(`echo ${String(d)}`));
    }));
    const accepted: net.Socket[] = [];
    server.on('connection', (s: net.Socket) => accepted.push(s));
    const lineSockets: net.Socket[] = [];
    const plain = net.createServer((s) => lineSockets.push(s));
    await app.listen('web', server, { host: '127.0.0.1', port: 0, handOverSockets: true });
    await app.listen('plain', plain, { host: '127.0.0.1', port: 0 });
    await app.ready();
    const [webPort, plainPort] = app.listenerInfo().map((l) => Number(l.address.port));

    expect(await refusal(app.handOver('nope' as unknown as net.Socket, {}))).to.deep.equal({
      code: 'ERR_GRACEFUL_INVALID_ARGUMENT', message: 'handOver: pass the net.Socket of a connection (for a ws WebSocket use handOverWebSocket)',
    });
    const client = await openWs(webPort!);
    await until(() => served.length === 1, 5_000, 'the server side of the WebSocket');
    const ws = served[0]!;
    const socket = (ws as unknown as { _socket: net.Socket })._socket;
    // A client's own socket is no connection of a listener.
    const clientSocket = (client as unknown as { _socket: net.Socket })._socket;
    expect((await refusal(app.handOver(clientSocket, {}))).code).to.equal('ERR_GRACEFUL_INVALID_ARGUMENT');
    // State that is not JSON-able, or too large; head that is not bytes.
    expect(await refusal(app.handOver(socket, { n: 1n }))).to.deep.include({ code: 'ERR_GRACEFUL_INVALID_ARGUMENT' });
    expect(await refusal(app.handOver(socket, () => 1))).to.deep.equal({
      code: 'ERR_GRACEFUL_INVALID_ARGUMENT', message: 'handOver: the state must be JSON-able, got function: pass plain objects, arrays, strings, numbers, booleans or null',
    });
    expect((await refusal(app.handOver(socket, { s: 'x'.repeat(17_000) }))).code).to.equal('ERR_GRACEFUL_META_TOO_LARGE');
    expect((await refusal(app.handOver(socket, {}, { head: Buffer.alloc(17_000) }))).code).to.equal('ERR_GRACEFUL_META_TOO_LARGE');
    expect((await refusal(app.handOver(socket, {}, { head: 42 as unknown as Buffer }))).code).to.equal('ERR_GRACEFUL_INVALID_ARGUMENT');
    // No redeploy under way: nobody takes it.
    const none = await refusal(app.handOver(socket, { room: 'a' }));
    expect(none.code).to.equal('ERR_GRACEFUL_HANDOVER_FAILED');
    expect(none.message).to.match(/^handOver: no new instance takes connections of "web" now: hand them over from onDrain during a redeploy/);
    // A ws WebSocket: not one, or with permessage-deflate.
    expect((await refusal(app.handOverWebSocket({}, {}))).code).to.equal('ERR_GRACEFUL_INVALID_ARGUMENT');
    const deflated = await openWs(webPort!, true);
    await until(() => served.length === 2, 5_000, 'the second WebSocket');
    const withDeflate = await refusal(app.handOverWebSocket(served[1]!, {}));
    expect(withDeflate.code).to.equal('ERR_GRACEFUL_INVALID_ARGUMENT');
    expect(withDeflate.message).to.include('create the WebSocketServer with perMessageDeflate: false');
    // Each WebSocket still works: nothing was taken from it.
    expect(await echo(client, 'hi')).to.equal('echo hi');
    expect(await echo(deflated, 'ho')).to.equal('echo ho');
    // An HTTP connection that is not upgraded is the library's to move.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await new Promise<void>((resolve) => http.get({ host: '127.0.0.1', port: webPort, agent }, (r) => r.resume().on('end', resolve)));
    const httpConn = accepted[2]!;
    expect((await refusal(app.handOver(httpConn, {}))).message).to.match(/speaks http1, which the library drains itself/);
    agent.destroy();
    // A listener without handOverSockets.
    const raw = net.connect(plainPort!, '127.0.0.1');
    await until(() => lineSockets.length === 1, 5_000, 'the plain connection');
    expect(await refusal(app.handOver(lineSockets[0]!, {}))).to.deep.equal({
      code: 'ERR_GRACEFUL_INVALID_ARGUMENT', message: 'handOver: listener "plain" does not hand sockets over: listen with handOverSockets: true (not on a TLS server)',
    });
    // A WebSocket closed.
    client.close();
    await until(() => ws.readyState === WebSocket.CLOSED, 5_000, 'the close');
    expect((await refusal(app.handOverWebSocket(ws, {}))).code).to.equal('ERR_GRACEFUL_INVALID_ARGUMENT');
    deflated.terminate();
    raw.destroy();
    await app.telinit(0);
    await until(() => fdCount() <= before, 5_000, `the descriptors to be closed (${fdCount()} open, ${before} before)`);
  });
});
