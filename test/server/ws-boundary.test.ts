/** server/ws-boundary.ts: where a WebSocket of the ws package stands, on real WebSocket connections. */
import { expect } from 'chai';
import net from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { webSocketBoundary } from '../../src/server/ws-boundary.js';
import { until } from '../helpers.js';

/** open: a WebSocketServer on port 0 and one client connected to it; [client, its server side]. */
async function open(perMessageDeflate = false): Promise<{ client: WebSocket; server: WebSocket; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate });
  await new Promise((r) => wss.once('listening', r));
  const accepted = new Promise<WebSocket>((r) => wss.once('connection', r));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}`, { perMessageDeflate });
  await new Promise((r) => client.once('open', r));
  const server = await accepted;
  return { client, server, close: async () => {
    client.terminate();
    server.terminate();
    await new Promise((r) => wss.close(r));
  } };
}

describe('server/ws-boundary', () => {
  it('an open WebSocket between frames: its socket and no head', async () => {
    const ws = await open();
    const got = new Promise((r) => ws.server.once('message', r));
    ws.client.send('hello');
    await got;
    const b = webSocketBoundary(ws.server);
    expect(b.socket).to.equal((ws.server as unknown as { _socket: net.Socket })._socket);
    expect(b.head).to.have.length(0);
    await ws.close();
  });

  it('in the middle of a frame: ERR_GRACEFUL_MID_FRAME, and a boundary again once the frame is complete', async () => {
    const ws = await open();
    const raw = (ws.client as unknown as { _socket: net.Socket })._socket;
    // A masked text frame of 5 bytes: its header, then (later) the mask and the payload.
    const payload = Buffer.from('hello');
    const mask = Buffer.from([1, 2, 3, 4]);
    const masked = Buffer.from(payload.map((c, i) => c ^ mask[i % 4]!));
    raw.write(Buffer.from([0x81, 0x85]));
    await until(() => {
      try {
        webSocketBoundary(ws.server);
        return false;
      } catch (err) {
        expect(err).to.include({
          code: 'ERR_GRACEFUL_MID_FRAME',
          message: 'handOverWebSocket: the WebSocket is in the middle of a frame or of a fragmented message: hand it over after its next \'message\' event, or close it (1012) if it never gets there',
        });
        return true;
      }
    }, 5000, 'the server side inside the frame');
    const got = new Promise<string>((r) => ws.server.once('message', (d) => r(String(d))));
    raw.write(Buffer.concat([mask, masked]));
    expect(await got).to.equal('hello');
    expect(webSocketBoundary(ws.server).head).to.have.length(0);
    await ws.close();
  });

  it('refuses what is no open ws WebSocket, and one with permessage-deflate, with ERR_GRACEFUL_INVALID_ARGUMENT', async () => {
    for (const bad of [null, undefined, {}, 'ws', new net.Socket()]) {
      expect(() => webSocketBoundary(bad)).to.throw('handOverWebSocket: pass a WebSocket of the ws package (8.x), as WebSocketServer gives it')
        .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    }
    const ws = await open();
    const closed = new Promise((r) => ws.server.once('close', r));
    ws.client.close();
    await closed;
    expect(() => webSocketBoundary(ws.server)).to.throw('handOverWebSocket: the WebSocket is not open (readyState 3): there is nothing to hand over')
      .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    await ws.close();

    const deflate = await open(true);
    expect(() => webSocketBoundary(deflate.server)).to.throw(
      'handOverWebSocket: the WebSocket uses permessage-deflate, whose state stays in this process: create the WebSocketServer with perMessageDeflate: false to hand its connections over',
    ).with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    await deflate.close();
  });
});
