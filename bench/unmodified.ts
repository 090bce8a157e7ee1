/**
 * An unmodified app redeployed under load, four ways in one run: this
 * package's `graceful-restart run --workers N` (a redeploy, and a reload of
 * the workers alone, through its control socket), PM2's cluster mode with `pm2 reload`, and node:cluster's rolling
 * restart (a new worker listening before the old one is disconnected). The
 * app is the same hello-world `http` server, which imports nothing of either.
 * wrk keep-alive and then `Connection: close` load for SECONDS while the
 * service is reloaded REDEPLOYS times, one after another. Prints one JSON
 * line per cell (requests, failed requests, p99) and a table.
 *
 *   node dist/bench/unmodified.js [SECONDS=20] [REDEPLOYS=9] [WORKERS=2] [CONNECTIONS=50]
 *
 * PM2 (pm2@7) is installed from the npm registry into a temporary directory;
 * without the registry its cells are skipped. wrk must be installed.
 * Everything listens on 127.0.0.1.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlClient } from '../src/control/client.js';
import { wrk } from './harness/wrk.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const [SECONDS, REDEPLOYS, WORKERS, CONNECTIONS] = [20, 9, 2, 50].map((d, i) => Number(process.argv[2 + i] ?? d)) as [number, number, number, number];

const HELLO = `const http = require('node:http');
http.createServer((req, res) => res.end('hello\\n')).listen(Number(process.env.PORT), '127.0.0.1');
`;
const CLUSTER = `const cluster = require('node:cluster');
if (!cluster.isPrimary) { require('./hello.cjs'); return; }
const n = Number(process.env.WORKERS);
for (let i = 0; i < n; i++) cluster.fork();
let up = 0;
cluster.on('listening', () => { if (++up === n) console.log('ready'); });
process.on('SIGTERM', () => { for (const w of Object.values(cluster.workers)) w.kill(); process.exit(0); });
process.on('SIGHUP', async () => {
  for (const old of Object.values(cluster.workers)) {
    const fresh = cluster.fork();
    await new Promise((r) => fresh.once('listening', r));
    const gone = new Promise((r) => old.once('exit', r));
    old.disconnect();
    await gone;
  }
  console.log('restarted');
});
`;

interface Result { kind: string; keepAlive: boolean; redeploys: number; requests: number; errors: number; rps: number; p99ms: number }

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, cwd, timeout: 180_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    }).on('error', reject);
  });
}

/** answers: the port answers an HTTP request within the time (the bench's own pacing, 50 ms between tries). */
async function answers(port: number, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => c.end('GET / HTTP/1.0\r\n\r\n'));
      let got = '';
      c.on('data', (d) => { got += d.toString(); }).on('close', () => resolve(got.startsWith('HTTP/1.1 200'))).on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing answers on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
}

/** underLoad runs wrk for SECONDS while reload() is called REDEPLOYS times, one after another. */
async function underLoad(kind: string, port: number, keepAlive: boolean, reload: () => Promise<void>): Promise<Result> {
  const load = wrk(port, SECONDS, CONNECTIONS, keepAlive);
  let redeploys = 0;
  const started = Date.now();
  const pace = ((SECONDS - 2) * 1000) / REDEPLOYS;
  while (redeploys < REDEPLOYS && Date.now() - started < (SECONDS - 1) * 1000) {
    const at = started + redeploys * pace;
    if (Date.now() < at) await new Promise((r) => setTimeout(r, at - Date.now()));
    await reload();
    redeploys++;
  }
  const r = await load;
  return { kind, keepAlive, redeploys, requests: r.requests, errors: r.errors, rps: r.rps, p99ms: r.p99ms };
}

async function graceful(dir: string, keepAlive: boolean, how: 'redeploy' | 'reload' = 'redeploy'): Promise<Result> {
  const port = await freePort();
  const sock = path.join(dir, `g${port}.sock`);
  const child = spawn(process.execPath, [path.join(root, 'bin/graceful-restart.js'), 'run', '-s', sock, '--workers', String(WORKERS), '--', 'node', 'hello.cjs'],
    { cwd: dir, stdio: 'ignore', env: { ...process.env, PORT: String(port) } });
  try {
    await answers(port);
    return await underLoad(`graceful-restart run, ${how}`, port, keepAlive, async () => {
      const c = await ControlClient.connect(sock, 5_000);
      try {
        await c.request(how, [], undefined, 60_000);
      } finally {
        c.close();
      }
    });
  } finally {
    child.kill('SIGTERM');
    await exited(child);
  }
}

async function nodeCluster(dir: string, keepAlive: boolean): Promise<Result> {
  const port = await freePort();
  const child = spawn(process.execPath, ['cluster.cjs'], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, PORT: String(port), WORKERS: String(WORKERS) } });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => { text += d.toString(); });
  try {
    await answers(port);
    return await underLoad('node:cluster rolling restart', port, keepAlive, async () => {
      const before = text.split('restarted').length;
      process.kill(child.pid!, 'SIGHUP');
      while (text.split('restarted').length === before) await new Promise((r) => setTimeout(r, 20));
    });
  } finally {
    child.kill('SIGTERM');
    await exited(child);
  }
}

async function pm2Cluster(pm2: { bin: string; env: NodeJS.ProcessEnv }, dir: string, keepAlive: boolean): Promise<Result> {
  const port = await freePort();
  const env = { ...pm2.env, PORT: String(port) };
  const start = await run(pm2.bin, ['start', 'hello.cjs', '-i', String(WORKERS), '--name', 'bench'], env, dir);
  if (start.code !== 0) throw new Error(`pm2 start failed: ${start.stderr}`);
  try {
    await answers(port);
    return await underLoad('PM2 cluster reload', port, keepAlive, async () => {
      const r = await run(pm2.bin, ['reload', 'bench'], env, dir);
      if (r.code !== 0) throw new Error(`pm2 reload failed: ${r.stderr}`);
    });
  } finally {
    await run(pm2.bin, ['delete', 'bench'], env, dir);
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-unmodified-'));
  fs.writeFileSync(path.join(dir, 'hello.cjs'), HELLO);
  fs.writeFileSync(path.join(dir, 'cluster.cjs'), CLUSTER);
  const cpus = os.cpus();
  console.log(`# an unmodified app, ${WORKERS} workers, ${REDEPLOYS} reloads in ${SECONDS} s under wrk (${CONNECTIONS} connections); ${cpus.length} x ${cpus[0]?.model ?? '?'}, Node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  let pm2: { bin: string; env: NodeJS.ProcessEnv } | null = null;
  const install = await run('npm', ['install', '--prefix', path.join(dir, 'pm2'), '--no-audit', '--no-fund', '--ignore-scripts', 'pm2@7']);
  if (install.code === 0) pm2 = { bin: path.join(dir, 'pm2/node_modules/.bin/pm2'), env: { ...process.env, PM2_HOME: path.join(dir, '.pm2') } };
  else console.log(`# PM2 skipped: npm install pm2@7 failed: ${install.stderr.trim().split('\n').pop()}`);
  const results: Result[] = [];
  try {
    for (const keepAlive of [true, false]) {
      const reload = (d: string, k: boolean) => graceful(d, k, 'reload');
      for (const cell of [graceful, reload, nodeCluster, ...(pm2 ? [(d: string, k: boolean) => pm2Cluster(pm2!, d, k)] : [])]) {
        const r = await cell(dir, keepAlive);
        console.log(JSON.stringify(r));
        results.push(r);
      }
    }
  } finally {
    if (pm2) await run(pm2.bin, ['kill'], pm2.env);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log('\n| load | way | reloads | requests | failed | req/s | p99 ms |\n|---|---|---|---|---|---|---|');
  for (const r of results) console.log(`| ${r.keepAlive ? 'keep-alive' : 'new connection'} | ${r.kind} | ${r.redeploys} | ${r.requests} | ${r.errors} | ${Math.round(r.rps)} | ${r.p99ms} |`);
}

await main();
