/**
 * A WebSocket chat (the `ws` package) that keeps every client connected
 * across redeploys: at a drain each WebSocket is handed to the new instance
 * at a frame boundary, with its member (room and name) as state, and the new
 * instance builds its WebSocket again over the same socket.
 *
 *   node dist/example/ws-chat.js   # PORT (default 8090), HOST (default 127.0.0.1)
 *   kill -HUP <pid>                # redeploy: the clients stay connected
 *   a client on ws://127.0.0.1:8090/?room=lobby&name=ann sends text; everyone
 *   in the room gets {"room","name","text","pid"}
 */
import http from 'node:http';
import type net from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { GracefulServer, type AdoptedSocket, type DrainEvent } from '../src/index.js';

interface Member { room: string; name: string }

const app = new GracefulServer();
const server = http.createServer((_req, res) => res.end(`chat, pid ${process.pid}\n`));
// permessage-deflate keeps a compression context in the process: off, so that connections can move.
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
const members = new Map<net.Socket, { ws: WebSocket; member: Member }>();

function join(ws: WebSocket, socket: net.Socket, member: Member): void {
  members.set(socket, { ws, member });
  ws.on('close', () => members.delete(socket));
  ws.on('error', () => undefined);
  ws.on('message', (data) => {
    const line = JSON.stringify({ room: member.room, name: member.name, text: String(data), pid: process.pid });
    for (const m of members.values()) if (m.member.room === member.room && m.ws.readyState === WebSocket.OPEN) m.ws.send(line);
  });
}

server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
  const url = new URL(req.url ?? '/', 'http://chat');
  const member = { room: url.searchParams.get('room') ?? 'lobby', name: url.searchParams.get('name') ?? 'guest' };
  wss.handleUpgrade(req, socket, head, (ws) => join(ws, socket, member));
});

/** handOver moves one WebSocket to the new instance; inside a frame, it tries again after the next message. */
function handOver(socket: net.Socket): void {
  const m = members.get(socket);
  if (!m) return;
  app.handOverWebSocket(m.ws, m.member).catch((err: Error & { code?: string }) => {
    if (err.code === 'ERR_GRACEFUL_MID_FRAME') m.ws.once('message', () => setImmediate(() => handOver(socket)));
    else m.ws.close(1012, 'service restart'); // the new instance does not take it: the client reconnects
  });
}

// The new instance: the same member, a new WebSocket over the socket handed over.
app.on('adopt-socket', ({ socket, state, head }: AdoptedSocket) => {
  // As WebSocketServer does after an upgrade (ws 8): a server-side WebSocket, then setSocket.
  const ws = new WebSocket(null as unknown as string, undefined, {});
  (ws as unknown as { setSocket(s: net.Socket, head: Buffer, o: object): void }).setSocket(socket, head, { maxPayload: 100 * 1024 * 1024 });
  join(ws, socket, state as Member);
});

const port = Number(process.env.PORT ?? 8090);
const host = process.env.HOST ?? '127.0.0.1';
await app.listen('chat', server, { port, host, handOverSockets: true, onDrain: ({ upgraded }: DrainEvent) => upgraded.forEach(handOver) });
await app.ready();
console.log(`chat on ${host}:${String(app.listenerInfo()[0]!.address.port)} pid ${process.pid} generation ${app.generation}`);
