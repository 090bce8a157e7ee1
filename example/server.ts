/**
 * The example: an HTTP server that redeploys with zero dropped connections.
 *
 *   npm start                      # PORT=8080, control socket GRACEFUL_SOCKET=app.sock
 *   graceful-restart app.sock      # redeploy (or kill -HUP <pid>): a new instance takes over
 *   graceful-restart -s app.sock   # an interactive shell: status, telinit 1, requests ...
 *   curl localhost:8080/           # "hello from pid <pid> (generation <n>)"
 *   curl --http2-prior-knowledge localhost:8081/   # the same over HTTP/2 (h2c, H2_PORT, default PORT + 1)
 *   a WebSocket on ws://localhost:8080/ echoes "<pid> <message>"; a drain
 *   closes it with 1012 "service restart", 10 ms apart per client
 *
 * Its log file (LOG_FILE, default app.log) is one open file across every
 * redeploy: each generation appends to the same file description. After
 * logrotate moves it, `kill -USR1 <pid>` (or `graceful-restart -s app.sock
 * reopen`) re-opens it by name.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { GracefulServer, type DrainEvent } from '../src/index.js';

const app = new GracefulServer({
  pidFile: process.env.PID_FILE,
  controlSocket: process.env.GRACEFUL_SOCKET ?? 'app.sock',
  sigusr1: 'reopen',
});
const log = await app.file('log', process.env.LOG_FILE ?? 'app.log');

let served = 0;
const hello = (_req: unknown, res: http.ServerResponse | http2.Http2ServerResponse) => {
  served++;
  res.setHeader('Content-Type', 'text/plain');
  res.end(`hello from pid ${process.pid} (generation ${app.generation})\n`);
};
const server = http.createServer(hello);
const h2 = http2.createServer(hello);

// WebSockets: the application's connections. When this instance drains, it
// closes them with 1012 "service restart", one every 10 ms, and their
// clients reconnect to the new instance.
const wss = new WebSocketServer({ noServer: true });
const sockets = new Map<net.Socket, WebSocket>();
server.on('upgrade', (req, socket: net.Socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    sockets.set(socket, ws);
    ws.on('close', () => sockets.delete(socket));
    ws.on('message', (m) => ws.readyState === ws.OPEN && ws.send(`${process.pid} ${String(m)}`));
  });
});
const onDrain = ({ upgraded }: DrainEvent) => upgraded.forEach((socket, i) => {
  setTimeout(() => sockets.get(socket)?.close(1012, 'service restart'), i * 10);
});

// An application command: `graceful-restart -s app.sock requests 1000` streams
// the request count every second until the client leaves.
app.command('requests', {
  usage: 'requests [ms]           stream how many requests this instance served, every ms (default 1000)',
  help: 'Prints the count of requests this pid served, again and again, until you leave (Ctrl-C).',
  maxArgs: 1,
  run: (ctx) => new Promise<void>((resolve) => {
    const timer = setInterval(() => ctx.write(`pid ${process.pid}: ${served} request(s)`), Number(ctx.args[0] ?? 1000));
    ctx.signal.addEventListener('abort', () => {
      clearInterval(timer);
      resolve();
    });
  }),
});
const port = Number(process.env.PORT ?? 8080);
await app.listen('http', server, { port, host: process.env.HOST, onDrain });
// HTTP/2 on H2_PORT, by default the next port (any free one when PORT is 0).
await app.listen('h2', h2, { port: Number(process.env.H2_PORT ?? (port === 0 ? 0 : port + 1)), host: process.env.HOST });
await app.ready();

const where = app.listenerInfo()[0]?.address;
log.write(`${new Date().toISOString()} pid ${process.pid} generation ${app.generation} ready on port ${where?.port}\n`);
console.log(`pid ${process.pid} (generation ${app.generation}) serving on http://${where?.host}:${where?.port}/ - kill -HUP ${process.pid} to redeploy`);
app.on('halt', () => log.write(`${new Date().toISOString()} pid ${process.pid} halted\n`));
