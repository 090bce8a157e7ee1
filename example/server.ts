/**
 * The example: an HTTP server that redeploys with zero dropped connections.
 *
 *   npm start                      # PORT=8080, control socket GRACEFUL_SOCKET=app.sock
 *   kill -HUP <pid>                # redeploy: a new instance takes over, this one drains
 *   curl localhost:8080/           # "hello from pid <pid> (generation <n>)"
 *
 * Its log file (LOG_FILE, default app.log) is one open file across every
 * redeploy: each generation appends to the same file description.
 */
import http from 'node:http';
import { GracefulServer } from '../src/index.js';

const app = new GracefulServer({ pidFile: process.env.PID_FILE });
const log = await app.file('log', process.env.LOG_FILE ?? 'app.log');

const server = http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end(`hello from pid ${process.pid} (generation ${app.generation})\n`);
});
await app.listen('http', server, { port: Number(process.env.PORT ?? 8080), host: process.env.HOST });
await app.ready();

const where = app.listenerInfo()[0]?.address;
log.write(`${new Date().toISOString()} pid ${process.pid} generation ${app.generation} ready on port ${where?.port}\n`);
console.log(`pid ${process.pid} (generation ${app.generation}) serving on http://${where?.host}:${where?.port}/ - kill -HUP ${process.pid} to redeploy`);
app.on('halt', () => log.write(`${new Date().toISOString()} pid ${process.pid} halted\n`));
