/**
 * Workers against node:cluster: the same hello-world app under the same wrk
 * load, 1, 2 and N (= available cores) workers, keep-alive and new
 * connections. Prints one JSON line per cell and a table.
 *
 *   node dist/bench/workers.js [SECONDS=5] [CONNECTIONS=50]
 *     wrk must be installed; everything listens on 127.0.0.1.
 *   node dist/bench/workers.js serve graceful|cluster N
 *     the app itself: prints "ready <port>" once every worker serves.
 */
import cluster from 'node:cluster';
import http from 'node:http';
import os from 'node:os';
import readline from 'node:readline';
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GracefulServer } from '../src/index.js';

const hello = (_req: http.IncomingMessage, res: http.ServerResponse) => res.end('hello\n');

async function serve(kind: string, n: number): Promise<void> {
  if (kind === 'graceful') {
    const app = new GracefulServer({ workers: n, signals: true });
    await app.listen('http', http.createServer(hello), { port: 0, host: '127.0.0.1' });
    await app.ready();
    if (app.isPrimary) console.log(`ready ${String(app.heldAddress('http')?.port)}`);
    return;
  }
  if (cluster.isPrimary) {
    let port = 0;
    let up = 0;
    for (let i = 0; i < n; i++) cluster.fork();
    cluster.on('listening', (_w, address) => {
      port = address.port;
      if (++up === n) console.log(`ready ${port}`);
    });
    process.on('SIGTERM', () => {
      for (const w of Object.values(cluster.workers ?? {})) w?.kill();
      process.exit(0);
    });
    return;
  }
  // In cluster workers, listen(0) shares one random port (node:cluster's default scheduling: the primary accepts and hands out).
  http.createServer(hello).listen(0, '127.0.0.1');
}

function wrk(port: number, seconds: number, connections: number, keepAlive: boolean): Promise<{ rps: number; errors: number }> {
  const args = ['-t2', `-c${connections}`, `-d${seconds}s`, ...(keepAlive ? [] : ['-H', 'Connection: close']), `http://127.0.0.1:${port}/`];
  return new Promise((resolve, reject) => {
    execFile('wrk', args, (err, stdout) => {
      if (err) return reject(err);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0);
      const m = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
      resolve({ rps, errors: (m ? m.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + non2xx });
    });
  });
}

async function cell(kind: string, n: number, seconds: number, connections: number): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [self, 'serve', kind, String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      readline.createInterface({ input: child.stdout! }).on('line', (l) => l.startsWith('ready ') && resolve(Number(l.split(' ')[1])));
      child.once('exit', () => reject(new Error(`${kind} ${n} exited before it was ready`)));
    });
    for (const keepAlive of [true, false]) {
      const r = await wrk(port, seconds, connections, keepAlive);
      console.log(JSON.stringify({ kind, workers: n, keepAlive, connections, seconds, ...r }));
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
  }
}

if (process.argv[2] === 'serve') {
  await serve(process.argv[3]!, Number(process.argv[4]));
} else {
  const seconds = Number(process.argv[2] ?? 5);
  const connections = Number(process.argv[3] ?? 50);
  const counts = [...new Set([1, 2, os.availableParallelism()])];
  for (const n of counts) {
    for (const kind of ['graceful', 'cluster']) await cell(kind, n, seconds, connections);
  }
}
