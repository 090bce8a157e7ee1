/**
 * The hand-over benchmark (last part of `npm run bench`): what clients of a
 * keep-alive HTTP/1.1 service see during 10 redeploys, with connection
 * hand-over on and off, next to the same load without a redeploy.
 *
 * Load: 50 clients, each a Node http.Agent with one keep-alive connection
 * (maxSockets 1), sending one request, then another 10 ms after the answer;
 * each agent counts the connections it opens. Printed per run: redeploys
 * done, requests answered, failed requests (an error or a status other than
 * 200; nothing is retried), connections the clients had to open again (every
 * open after each client's first), and p50 / p99 latency. Bounded: about 25 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort, HOST, waitGone } from './harness/fleet.js';
import { median, percentile } from './harness/counts.js';

const CLIENTS = 50;
const REDEPLOYS = 10;
/** ms a client waits after an answer before its next request: the traffic shape, not a wait for an event. */
const THINK_MS = 10;
/** ms of load in the run without a redeploy, and before the first and after the last redeploy. */
const BASELINE_MS = 4000;
const SETTLE_MS = 500;
/** ms of the warm-up run, not shown. */
const WARMUP_MS = 2000;
const REQUEST_TIMEOUT_MS = 5000;
const APP = path.join(path.dirname(fileURLToPath(import.meta.url)), 'handover-app.js');

const out = (line = '') => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface RunResult {
  redeploys: number;
  requests: number;
  failed: number;
  errors: Record<string, number>;
  reopened: number;
  latencies: number[];
}

/** One keep-alive client: its own agent with one connection, counting what it opens. */
class Client {
  opens = 0;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  constructor(private readonly port: number, private readonly result: RunResult) {
    const create = this.agent.createConnection.bind(this.agent) as (o: object, cb?: unknown) => net.Socket;
    (this.agent as unknown as { createConnection: typeof create }).createConnection = (o, cb) => {
      this.opens++;
      return create(o, cb);
    };
  }

  async run(running: () => boolean): Promise<void> {
    while (running()) {
      const t0 = performance.now();
      try {
        const status = await this.get();
        if (status === 200) {
          this.result.requests++;
          this.result.latencies.push(performance.now() - t0);
        } else {
          this.fail(`status ${status}`);
        }
      } catch (err) {
        this.fail((err as NodeJS.ErrnoException).code ?? (err as Error).message);
      }
      await sleep(THINK_MS);
    }
    this.agent.destroy();
  }

  private fail(kind: string): void {
    this.result.failed++;
    this.result.errors[kind] = (this.result.errors[kind] ?? 0) + 1;
  }

  private get(): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: HOST, port: this.port, path: '/', agent: this.agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
    });
  }
}

/** The app and its generations: their "serving" lines come through the first one's stdout. */
class Service {
  current = 0;
  private readonly child: ChildProcess;
  private readonly pids: number[] = [];
  private waiter: ((pid: number) => void) | null = null;

  constructor(port: number, handOver: boolean) {
    this.child = spawn(process.execPath, [APP], { env: { ...process.env, PORT: String(port), HANDOVER: handOver ? '1' : '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    // The library's step lines (redeploy: spawned, ready, ...) are not shown; anything else is.
    readline.createInterface({ input: this.child.stderr! }).on('line', (line) => {
      if (!/^graceful\[\d+\]: redeploy: /.test(line)) process.stderr.write(`  app: ${line}\n`);
    });
    readline.createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const m = /^serving (\d+) /.exec(line);
      if (!m) return;
      this.pids.push(Number(m[1]));
      this.waiter?.(Number(m[1]));
    });
  }

  /** serving resolves with the pid of the next generation that says it serves. */
  serving(): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no new generation served within 20 s')), 20_000);
      this.waiter = (pid) => {
        clearTimeout(timer);
        this.waiter = null;
        this.current = pid;
        resolve(pid);
      };
    });
  }

  /** redeploy: SIGHUP to the serving pid; resolves once the new one serves and the old one is gone. */
  async redeploy(): Promise<void> {
    const old = this.current;
    const next = this.serving();
    process.kill(old, 'SIGHUP');
    await next;
    if (!(await waitGone(old, 15_000, 5))) throw new Error(`pid ${old} still runs 15 s after its successor served`);
  }

  /** stop ends every generation this benchmark started, by pid. */
  async stop(): Promise<void> {
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        continue; // gone already
      }
      if (!(await waitGone(pid, 5_000, 5))) process.kill(pid, 'SIGKILL');
    }
  }
}

async function run(handOver: boolean | null, baselineMs = BASELINE_MS): Promise<RunResult> {
  const port = await freePort();
  const service = new Service(port, handOver === true);
  const result: RunResult = { redeploys: 0, requests: 0, failed: 0, errors: {}, reopened: 0, latencies: [] };
  try {
    await service.serving();
    let running = true;
    const clients = Array.from({ length: CLIENTS }, () => new Client(port, result));
    const loops = clients.map((c) => c.run(() => running));
    if (handOver === null) {
      await sleep(baselineMs); // the length of the run: load with no redeploy
    } else {
      await sleep(SETTLE_MS); // every client connected and in its stride
      for (let i = 0; i < REDEPLOYS; i++) {
        await service.redeploy();
        result.redeploys++;
      }
      await sleep(SETTLE_MS); // the last drain's clients back in their stride
    }
    running = false;
    await Promise.all(loops);
    result.reopened = clients.reduce((n, c) => n + Math.max(0, c.opens - 1), 0);
    return result;
  } finally {
    await service.stop();
  }
}

async function main(): Promise<void> {
  const begun = performance.now();
  out(`hand-over benchmark: ${REDEPLOYS} redeploys (SIGHUP) under ${CLIENTS} keep-alive clients, connection hand-over on and off, and no redeploy`);
  out(`${os.availableParallelism()} cores (nproc), ${os.cpus()[0]?.model ?? '?'}; Linux ${os.release()} (uname -r); Node ${process.version}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  out(`  each client: http.Agent keepAlive, maxSockets 1, next request ${THINK_MS} ms after each answer; nothing retried`);
  // A first run warms up (the first one measured was always the slowest); its figures are dropped.
  await run(null, WARMUP_MS);
  const baseline = await run(null);
  const on = await run(true);
  const off = await run(false);
  out();
  const col = (s: string | number) => String(s).padStart(18);
  out(`${''.padEnd(34)}${col('no redeploy')}${col('handOver on')}${col('handOver off')}`);
  const row = (label: string, f: (r: RunResult) => string | number) => out(`${label.padEnd(34)}${[baseline, on, off].map((r) => col(f(r))).join('')}`);
  const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
  row('redeploys', (r) => r.redeploys);
  row('requests answered', (r) => r.requests);
  row('failed requests', (r) => r.failed);
  row('connections opened again', (r) => r.reopened);
  row('p50 latency, ms', (r) => ms(median(r.latencies)));
  row('p99 latency, ms', (r) => ms(percentile(r.latencies, 99)));
  for (const [name, r] of [['no redeploy', baseline], ['handOver on', on], ['handOver off', off]] as const) {
    if (r.failed > 0) out(`  failures, ${name}: ${Object.entries(r.errors).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  }
  out(`goal: 0 connections opened again and 0 failed requests with handOver on: ${on.reopened === 0 && on.failed === 0 ? 'met' : 'MISSED'}`);
  out(`load average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  out(`benchmark took ${((performance.now() - begun) / 1000).toFixed(1)} s`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench/handover: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
