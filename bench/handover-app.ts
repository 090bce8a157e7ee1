/**
 * The server of the hand-over benchmark (bench/handover.ts): one plain HTTP
 * listener on PORT, with connection hand-over on when HANDOVER=1. SIGHUP
 * redeploys. Every generation prints "serving <pid> <generation>" once ready.
 * The take-back window and the idle grace are short, so that ten redeploys
 * fit in a few seconds.
 */
import http from 'node:http';
import { GracefulServer } from '../src/index.js';

const app = new GracefulServer({ takeBackWindow: 200, idleGrace: 100, shutdownTimeout: 5_000 });
const server = http.createServer((_req, res) => res.end(String(process.pid)));
await app.listen('http', server, { port: Number(process.env.PORT), host: '127.0.0.1', handOver: process.env.HANDOVER === '1' });
await app.ready();
console.log(`serving ${process.pid} ${app.generation}`);
