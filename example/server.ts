/**
 * The example: an HTTP server that redeploys with zero dropped connections.
 *
 *   npm start                      # under `graceful-restart run`; Ctrl-C stops it
 *   npm run cli -- app.sock        # redeploy (or kill -HUP <pid>): a new instance takes over
 *   npm run cli -- -s app.sock     # an interactive shell: status, telinit 1, requests ...
 *   curl localhost:8080/           # "hello from pid <pid> (generation <n>)"
 *   curl --http2-prior-knowledge localhost:8081/   # the same over HTTP/2 (h2c, H2_PORT, default PORT + 1)
 *   a WebSocket on ws://localhost:8080/ echoes "<pid> <message>"; a drain
 *   closes it with 1012 "service restart", 10 ms apart per client
 *
 * Its variables: PORT (8080), HOST (every address), GRACEFUL_SOCKET (the
 * control socket, app.sock), LOG_FILE (app.log), PID_FILE (none), WORKERS
 * (worker processes: a number or auto; none by default).
 *
 * Its log file is one open file across every redeploy: each generation
 * appends to the same file description. After logrotate moves it,
 * `kill -USR1 <pid>` (or `npm run cli -- -s app.sock reopen`) re-opens it by name.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { GracefulServer, type DrainEvent } from '../src/index.js';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST || undefined;
const controlSocket = process.env.GRACEFUL_SOCKET ?? 'app.sock';
const logFile = process.env.LOG_FILE ?? 'app.log';

// WORKERS=n (or auto) runs n worker processes; without it, one process.
const workers = process.env.WORKERS === 'auto' ? 'auto' : Number(process.env.WORKERS ?? 0);
const app = new GracefulServer({ pidFile: process.env.PID_FILE, controlSocket, sigusr1: 'reopen', workers });

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

// An application command: `npm run cli -- -s app.sock requests 1000` streams
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

/** hint: what to do about a kernel error at start, in one sentence. */
function hint(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE': return 'or set PORT';
    case 'EACCES': return 'permission denied: choose a port above 1023 and paths you may write';
    case 'ENOENT': return 'a directory is missing: create it, or set GRACEFUL_SOCKET, LOG_FILE and PID_FILE';
    case 'ERR_GRACEFUL_SOCKET_IN_USE': return 'or set GRACEFUL_SOCKET to another path';
    default: return ''; // the library's own codes: the message says what to do
  }
}

let log;
try {
  log = await app.file('log', logFile);
  await app.listen('http', server, { port, host, onDrain });
  // HTTP/2 on H2_PORT, by default the next port (any free one when PORT is 0).
  await app.listen('h2', h2, { port: Number(process.env.H2_PORT ?? (port === 0 ? 0 : port + 1)), host });
  await app.ready();
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  const todo = hint(e);
  // The code once: a message that names it already is not prefixed again.
  const code = e.code ?? e.name;
  console.error(`example: cannot start: ${e.message.includes(code) ? e.message : `${code}: ${e.message}`}${todo ? ` (${todo})` : ''}`);
  await app.telinit(0).catch(() => undefined); // closes what was opened, the control socket included
  process.exit(1);
}

const where = app.listenerInfo()[0]?.address;
// An unspecified address (:: or 0.0.0.0) is not one a browser can open: name localhost instead.
const shown = !host || host === '::' || host === '0.0.0.0' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
log.write(`${new Date().toISOString()} pid ${process.pid} generation ${app.generation} ready on port ${where?.port}\n`);
if (app.isPrimary) {
  const what = app.workers > 0 ? ` with ${app.workers} workers` : '';
  console.log(`pid ${process.pid} (generation ${app.generation}) serving${what} on http://${shown}:${where?.port}/ - Ctrl-C stops it, kill -HUP ${process.pid} redeploys`);
}
app.on('halt', () => log.write(`${new Date().toISOString()} pid ${process.pid} halted\n`));
