/**
 * Workers against node:cluster: the same hello-world app under the same wrk
 * load, 1, 2 and N (= available cores) workers, keep-alive and new
 * connections; then redeploys under keep-alive load for both (ours: the
 * control command redeploy; node:cluster: the usual rolling restart, a new
 * worker forked and listening before the old one is disconnected).
 * Prints one JSON line per cell: requests per second, failed requests, p99.
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
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import path from 'node:path';
import { GracefulServer } from '../src/index.js';
import { ControlClient } from '../src/control/client.js';
import { wrk } from './harness/wrk.js';

const hello = (_req: http.IncomingMessage, res: http.ServerResponse) => res.end('hello\n');

async function serve(kind: string, n: number): Promise<void> {
  if (kind === 'graceful') {
    const app = new GracefulServer({ workers: n, signals: true, controlSocket: process.env.BENCH_SOCKET });
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
    // The rolling restart node:cluster users write: a new worker listening, then the old one disconnected.
    process.on('SIGHUP', () => {
      void (async () => {
        for (const old of Object.values(cluster.workers ?? {})) {
          const fresh = cluster.fork();
          await new Promise((r) => fresh.once('listening', r));
          const gone = new Promise((r) => old!.once('exit', r));
          old!.disconnect();
          await gone;
        }
        console.log('restarted');
      })();
    });
    return;
  }
  // In cluster workers, listen(0) shares one random port (node:cluster's default scheduling: the primary accepts and hands out).
  http.createServer(hello).listen(0, '127.0.0.1');
}

function startApp(kind: string, n: number, env: NodeJS.ProcessEnv = {}): { child: ReturnType<typeof spawn>; port: Promise<number>; lines: string[] } {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [self, 'serve', kind, String(n)], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const lines: string[] = [];
  const port = new Promise<number>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      lines.push(l);
      if (l.startsWith('ready ')) resolve(Number(l.split(' ')[1]));
    });
    child.once('exit', () => reject(new Error(`${kind} ${n} exited before it was ready`)));
  });
  return { child, port, lines };
}

async function cell(kind: string, n: number, seconds: number, connections: number): Promise<void> {
  const { child, port: ready } = startApp(kind, n);
  try {
    const port = await ready;
    for (const keepAlive of [true, false]) {
      const r = await wrk(port, seconds, connections, keepAlive);
      console.log(JSON.stringify({ kind, workers: n, keepAlive, connections, seconds, ...r }));
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
  }
}

/** redeployCell: wrk keep-alive load for `seconds` while the service is redeployed `times` times, one after another. */
async function redeployCell(kind: string, n: number, seconds: number, connections: number, times: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-workers-'));
  const sock = path.join(dir, 'ctl.sock');
  const { child, port: ready, lines } = startApp(kind, n, { BENCH_SOCKET: sock });
  let primary = child.pid!;
  try {
    const port = await ready;
    const load = wrk(port, seconds, connections, true);
    let done = 0;
    const started = Date.now();
    while (done < times && Date.now() - started < (seconds - 1) * 1000) {
      if (kind === 'graceful') {
        const c = await ControlClient.connect(sock, 5000);
        try {
          primary = ((await c.request('redeploy', [], undefined, 60_000)) as { pid: number }).pid;
        } finally {
          c.close();
        }
      } else {
        const before = lines.filter((l) => l === 'restarted').length;
        process.kill(child.pid!, 'SIGHUP');
        while (lines.filter((l) => l === 'restarted').length === before) await new Promise((r) => setTimeout(r, 20)); // the bench's own pacing
      }
      done++;
    }
    const r = await load;
    console.log(JSON.stringify({ kind, workers: n, redeploys: done, keepAlive: true, connections, seconds, ...r }));
  } finally {
    try {
      process.kill(primary, 'SIGTERM');
    } catch {
      // gone
    }
    if (primary === child.pid) await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    fs.rmSync(dir, { recursive: true, force: true });
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
  const n = os.availableParallelism();
  for (const kind of ['graceful', 'cluster']) await redeployCell(kind, n, 4 * seconds, connections, 9);
}
