/**
 * The hello-world service of the redeploy-cost benchmark, with this package
 * as users get it (`graceful-restart`, the bundle): N workers (argv[2]),
 * a control socket at BENCH_SOCKET, the rollout BENCH_ROLLOUT ('all' by default, or 'rolling');
 * prints "ready <port>" from the primary.
 */
import http from 'node:http';
import { GracefulServer } from 'graceful-restart';

const rollout = process.env.BENCH_ROLLOUT === 'rolling' ? 'rolling' : 'all';
const app = new GracefulServer({ workers: Number(process.argv[2] ?? 0), signals: true, controlSocket: process.env.BENCH_SOCKET, rollout });
await app.listen('http', http.createServer((_req, res) => res.end('hello\n')), { port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
await app.ready();
if (app.isPrimary) console.log(`ready ${String(app.heldAddress('http')?.port ?? '')}`);
