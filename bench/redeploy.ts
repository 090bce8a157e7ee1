/**
 * The redeploy benchmark (second half of `npm run bench`): the example server
 * (dist/example/server.js) replaced 10 times under HTTP load, first by a
 * graceful redeploy (SIGHUP: the new instance inherits the listening socket,
 * the old one drains), then by a naive restart (SIGTERM, wait for the exit,
 * start a new process on the same port), measured the same way:
 *   - 50 keep-alive connections and 10 connections opening a new connection
 *     per request, at the same time, for LOAD_S seconds each;
 *   - requests, errors and p99 latency of each load;
 *   - the median time of each redeploy step, from the old instance's JSON log
 *     (GRACEFUL_JSON_LOG=1) and from outside: trigger to spawned, spawn to
 *     ready, ready to the old process gone;
 *   - the example's own start-up time (spawn to serving, started standalone
 *     a few times), and spawn-to-ready minus that: what a redeploy adds.
 * A run with no restart at all, under the same load, gives the baseline.
 * Load: wrk when installed (`wrk --latency`; -H 'Connection: close' for a new
 * connection per request), else autocannon with its requests counted per
 * connection plus a counting http.request client (bench/harness/).
 * Prints figures and ratios; asserts nothing. About 55 s in all.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ExampleFleet, HOST, freePort, waitGone, type RedeployRecord } from './harness/fleet.js';
import { CountingClient } from './harness/counting-client.js';
import { errorTotal, median, percentile } from './harness/counts.js';
import { keepAliveLoad } from './harness/loads.js';

const RESTARTS = 10;
const KEEPALIVE_CONNECTIONS = 50;
const NEW_CONNECTION_CONNECTIONS = 10;
const LOAD_S = 15;
const FIRST_AT_MS = 2000;
const EVERY_MS = 1200;
const STARTUP_RUNS = 7;
const TIMEOUT_S = 5;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const out = (line = '') => process.stdout.write(`${line}\n`);
const ms = (n: number) => (Number.isFinite(n) ? `${n < 10 ? n.toFixed(1) : Math.round(n)}` : '-');
const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(a / b < 10 ? 2 : 0)}x` : a > 0 ? 'n/a (graceful 0)' : 'both 0');

/** One load's outcome, whichever tool measured it. */
interface LoadResult {
  requests: number;
  errors: number;
  /** What the errors were. */
  detail: string;
  p99: number;
}

interface Load {
  stop(): Promise<LoadResult>;
}

const wrkPath = (() => {
  const r = spawnSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
})();

function toMs(value: string, unit: string): number {
  const v = Number(value);
  return unit === 'us' ? v / 1000 : unit === 's' ? v * 1000 : unit === 'm' ? v * 60_000 : v;
}

/** parseWrk reads wrk --latency output. */
function parseWrk(text: string): LoadResult {
  const requests = Number(/(\d+) requests in /.exec(text)?.[1] ?? NaN);
  const p = /^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(text);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const [connect, read, write, timeout] = sock ? sock.slice(1).map(Number) : [0, 0, 0, 0];
  return {
    requests,
    errors: connect! + read! + write! + timeout! + non2xx,
    detail: `connect ${connect}, read ${read}, write ${write}, timeout ${timeout}, non-2xx ${non2xx}`,
    p99: p ? toMs(p[1]!, p[2]!) : NaN,
  };
}

function wrk(port: number, connections: number, newConnectionEach: boolean): Load {
  const args = ['-t1', `-c${connections}`, `-d${LOAD_S}s`, '--latency', '--timeout', `${TIMEOUT_S}s`];
  if (newConnectionEach) args.push('-H', 'Connection: close');
  args.push(`http://${HOST}:${port}/`);
  const child = spawn(wrkPath!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (text += d));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return {
    stop: async () => {
      await exited;
      const r = parseWrk(text);
      if (!Number.isFinite(r.requests)) throw new Error(`could not read wrk's output:\n${text}`);
      return r;
    },
  };
}

function nodeLoads(port: number): [Load, Load] {
  const ka = keepAliveLoad(port, KEEPALIVE_CONNECTIONS, TIMEOUT_S);
  const nk = new CountingClient(port, NEW_CONNECTION_CONNECTIONS, TIMEOUT_S * 1000);
  nk.start();
  const kinds = (e: Record<string, number>) => Object.entries(e).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  const ends = sleep(LOAD_S * 1000);
  return [
    {
      stop: async () => {
        await ends;
        const r = await ka.stop();
        const errors = errorTotal(r) + r.non2xx;
        return { requests: r.ok + r.non2xx, errors, detail: `${kinds(r.errors)}, non-2xx ${r.non2xx}`, p99: percentile(r.latencies, 99) };
      },
    },
    {
      stop: async () => {
        await ends;
        const r = await nk.stop();
        return { requests: r.ok + r.non2xx, errors: errorTotal(r) + r.non2xx, detail: `${kinds(r.errors)}, non-2xx ${r.non2xx}`, p99: percentile(r.latencies, 99) };
      },
    },
  ];
}

function startLoads(port: number): [Load, Load] {
  if (wrkPath) return [wrk(port, KEEPALIVE_CONNECTIONS, false), wrk(port, NEW_CONNECTION_CONNECTIONS, true)];
  return nodeLoads(port);
}

/** What a naive restart did, seen from outside. */
interface NaiveRecord {
  /** SIGTERM to the old process gone. */
  stopMs: number;
  /** Spawn of the new process to its "serving" line. */
  startMs: number;
  /** SIGTERM to the new one serving: the port had no listener for most of it. */
  gapMs: number;
}

/** Runs `step` RESTARTS times on a schedule while the loads run; resolves with the loads' results. */
async function underLoad<T>(port: number, step: ((i: number) => Promise<T>) | null): Promise<{ steps: T[]; keepAlive: LoadResult; perRequest: LoadResult }> {
  const t0 = performance.now();
  const [ka, nk] = startLoads(port);
  const steps: T[] = [];
  for (let i = 0; step && i < RESTARTS; i++) {
    const wait = t0 + FIRST_AT_MS + i * EVERY_MS - performance.now();
    if (wait > 0) await sleep(wait);
    if (performance.now() - t0 > (LOAD_S - 1) * 1000) {
      out(`  (only ${i} restarts fitted in the ${LOAD_S} s of load)`);
      break;
    }
    steps.push(await step(i));
  }
  const [keepAlive, perRequest] = await Promise.all([ka.stop(), nk.stop()]);
  return { steps, keepAlive, perRequest };
}

async function main(): Promise<void> {
  const begun = performance.now();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graceful-bench-'));
  const fleets: ExampleFleet[] = [];
  const start = async (port: number) => {
    const dir = fs.mkdtempSync(path.join(tmp, 'run-'));
    const f = await ExampleFleet.start({ port, dir, echoStderr: true });
    fleets.push(f);
    return f;
  };
  const stopAll = async () => {
    for (const f of fleets.splice(0)) await f.stop();
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));

  out(`redeploy benchmark: the example server replaced ${RESTARTS} times under load, graceful redeploy vs naive restart`);
  out(`${os.availableParallelism()} cores, ${os.cpus()[0]?.model ?? '?'}; Linux ${os.release()}; Node ${process.version}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const wrkVersion = wrkPath ? (spawnSync(wrkPath, ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '').split(' Copyright')[0] : '';
  out(wrkPath
    ? `load: ${wrkVersion} (1 thread per load; --latency for p99; -H 'Connection: close' for a new connection per request; --timeout ${TIMEOUT_S}s)`
    : 'load: wrk not found (install it for its honest counts: apt-get install wrk); using autocannon 9 with its requests counted per connection, and a counting http.request client (agent: false)');
  out(`  ${KEEPALIVE_CONNECTIONS} keep-alive connections and ${NEW_CONNECTION_CONNECTIONS} new-connection-per-request connections at once, ${LOAD_S} s per side; restarts every ${EVERY_MS / 1000} s from ${FIRST_AT_MS / 1000} s`);
  out();

  try {
    // 1-2. The example's own start-up, standalone and idle, and redeploys
    // without load (the same start-up plus the hand-off), interleaved so
    // that both see the same machine.
    const startups: number[] = [];
    const idle: RedeployRecord[] = [];
    let fleet = await start(await freePort());
    for (let i = 0; i < STARTUP_RUNS; i++) {
      const alone = await start(await freePort());
      startups.push(alone.startupMs);
      await alone.stop();
      idle.push(await fleet.redeploy());
    }
    await stopAll();
    out(`start-up of the example, standalone (spawn to serving), ${STARTUP_RUNS} runs: ${startups.map(ms).join(', ')} ms; median ${ms(median(startups))}`);
    const idleReady = idle.filter((r) => !r.failed).map((r) => r.readyMs! - r.spawnedMs!);
    out(`spawn to ready of a redeploy without load, ${STARTUP_RUNS} runs: ${idleReady.map(ms).join(', ')} ms; median ${ms(median(idleReady))}` +
      (idle.some((r) => r.failed) ? `; FAILED: ${idle.filter((r) => r.failed).map((r) => r.failed).join('; ')}` : ''));

    // 3. The same load with no restart: the baseline.
    out(`baseline: the load, no restart ...`);
    let port = await freePort();
    await start(port);
    const baseline = await underLoad(port, null);
    await stopAll();

    // 4. Graceful redeploys under load.
    out(`graceful: ${RESTARTS} redeploys under load ...`);
    port = await freePort();
    fleet = await start(port);
    const graceful = await underLoad(port, () => fleet.redeploy());
    await stopAll();

    // 5. Naive restarts under load.
    out(`naive: ${RESTARTS} restarts (SIGTERM, wait for the exit, start anew on the same port) under load ...`);
    port = await freePort();
    let current = await start(port);
    const naive = await underLoad<NaiveRecord>(port, async () => {
      const t0 = performance.now();
      process.kill(current.current, 'SIGTERM');
      await waitGone(current.current, 15_000);
      const t1 = performance.now();
      current = await start(port);
      const t2 = performance.now();
      return { stopMs: t1 - t0, startMs: t2 - t1, gapMs: t2 - t0 };
    });
    await stopAll();

    // Results.
    const g = graceful.steps.filter((r) => !r.failed);
    out();
    const col = (s: string, w = 20) => s.padStart(w);
    out(`${''.padEnd(30)}${col('no restart')}${col('graceful (SIGHUP)')}${col('naive (stop, start)')}${col('naive / graceful')}`);
    const row = (label: string, cells: string[]) => out(`${label.padEnd(30)}${cells.map((c) => col(c)).join('')}`);
    for (const [name, z, a, b] of [
      [`keep-alive, ${KEEPALIVE_CONNECTIONS} connections`, baseline.keepAlive, graceful.keepAlive, naive.keepAlive],
      [`new connection per request, ${NEW_CONNECTION_CONNECTIONS}`, baseline.perRequest, graceful.perRequest, naive.perRequest],
    ] as const) {
      out(name);
      row('  requests answered', [String(z.requests), String(a.requests), String(b.requests), ratio(b.requests, a.requests)]);
      row('  errors', [String(z.errors), String(a.errors), String(b.errors), ratio(b.errors, a.errors)]);
      row('  p99 latency, ms', [ms(z.p99), ms(a.p99), ms(b.p99), ratio(b.p99, a.p99)]);
      out(`    errors, no restart: ${z.detail}`);
      out(`    errors, graceful:   ${a.detail}`);
      out(`    errors, naive:      ${b.detail}`);
    }
    if (wrkPath) out(`(wrk counts a refused connect as a write error, a reset as a read error)`);
    out(`restarts done: graceful ${graceful.steps.length} (${graceful.steps.length - g.length} failed${graceful.steps.filter((r) => r.failed).map((r) => `: ${r.failed}`).join('')}), naive ${naive.steps.length}`);

    const med = (xs: (number | undefined)[]) => median(xs.filter((x): x is number => x !== undefined && Number.isFinite(x)));
    const spawnToReady = med(g.map((r) => r.readyMs! - r.spawnedMs!));
    out();
    out(`graceful redeploy steps under load, median of ${g.length} (old instance's log, ms since it got SIGHUP; old exit seen from here):`);
    out(`  SIGHUP to spawned ${ms(med(g.map((r) => r.spawnedMs)))}; spawn to ready ${ms(spawnToReady)}; ready to draining ${ms(med(g.map((r) => r.drainingMs! - r.readyMs!)))}; ` +
      `ready to done ${ms(med(g.map((r) => r.doneMs! - r.readyMs!)))}; ready to old exited ${ms(med(g.map((r) => r.oldExitedMs! - r.readyMs!)))}; ` +
      `SIGHUP to old exited ${ms(med(g.map((r) => r.oldExitedMs)))}`);
    out(`  per redeploy, spawn to ready: ${g.map((r) => ms(r.readyMs! - r.spawnedMs!)).join(', ')}`);
    out(`  per redeploy, ready to old exited: ${g.map((r) => ms(r.oldExitedMs! - r.readyMs!)).join(', ')}; connections drained: ${g.map((r) => r.connections ?? '-').join(', ')}; forced closed: ${g.reduce((n, r) => n + (r.forced ?? 0), 0)}`);
    out(`naive restart steps under load, median of ${naive.steps.length}: SIGTERM to exited ${ms(med(naive.steps.map((r) => r.stopMs)))}; ` +
      `spawn to serving ${ms(med(naive.steps.map((r) => r.startMs)))}; no listener for about ${ms(med(naive.steps.map((r) => r.gapMs)))} ms each time`);

    const startup = median(startups);
    const idleOver = median(idleReady) - startup;
    const loadOver = spawnToReady - startup;
    out();
    out(`what a redeploy adds to the start-up (goal: within 50 ms):`);
    out(`  without load: spawn to ready ${ms(median(idleReady))} - standalone start-up ${ms(startup)} = ${ms(idleOver)} ms${idleOver <= 50 ? '' : '  (over the goal)'}`);
    out(`  without load, from the trigger: SIGHUP to ready ${ms(median(idle.filter((r) => !r.failed).map((r) => r.readyMs!)))} - standalone start-up ${ms(startup)} = ` +
      `${ms(median(idle.filter((r) => !r.failed).map((r) => r.readyMs!)) - startup)} ms (includes the fork, which spawn-to-ready does not)`);
    out(`  under load:   spawn to ready ${ms(spawnToReady)} - standalone start-up ${ms(startup)} = ${ms(loadOver)} ms (start-up competes with the load for the cores here)`);
    out(`  naive start-up under the same load, for comparison: ${ms(med(naive.steps.map((r) => r.startMs)))} ms`);
    out();
    out(`benchmark took ${((performance.now() - begun) / 1000).toFixed(1)} s`);
  } finally {
    await stopAll();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench/redeploy: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
