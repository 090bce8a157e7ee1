/**
 * The example: an HTTP server that redeploys with zero dropped connections.
 *
 *   npm start                      # PORT=8080, control socket GRACEFUL_SOCKET=app.sock
 *   graceful-restart app.sock      # redeploy (or kill -HUP <pid>): a new instance takes over
 *   graceful-restart -s app.sock   # an interactive shell: status, telinit 1, requests ...
 *   curl localhost:8080/           # "hello from pid <pid> (generation <n>)"
 *
 * Its log file (LOG_FILE, default app.log) is one open file across every
 * redeploy: each generation appends to the same file description. After
 * logrotate moves it, `kill -USR1 <pid>` (or `graceful-restart -s app.sock
 * reopen`) re-opens it by name.
 */
import http from 'node:http';
import { GracefulServer } from '../src/index.js';

const app = new GracefulServer({
  pidFile: process.env.PID_FILE,
  controlSocket: process.env.GRACEFUL_SOCKET ?? 'app.sock',
  sigusr1: 'reopen',
});
const log = await app.file('log', process.env.LOG_FILE ?? 'app.log');

let served = 0;
const server = http.createServer((req, res) => {
  served++;
  res.setHeader('Content-Type', 'text/plain');
  res.end(`hello from pid ${process.pid} (generation ${app.generation})\n`);
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
await app.listen('http', server, { port: Number(process.env.PORT ?? 8080), host: process.env.HOST });
await app.ready();

const where = app.listenerInfo()[0]?.address;
log.write(`${new Date().toISOString()} pid ${process.pid} generation ${app.generation} ready on port ${where?.port}\n`);
console.log(`pid ${process.pid} (generation ${app.generation}) serving on http://${where?.host}:${where?.port}/ - kill -HUP ${process.pid} to redeploy`);
app.on('halt', () => log.write(`${new Date().toISOString()} pid ${process.pid} halted\n`));
