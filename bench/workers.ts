/**
 * Workers against node:cluster: the same hello-world app under the same wrk
 * load, 1, 2 and N (= available cores) workers, keep-alive and new
 * connections; then N workers under load while the service is replaced 9
 * times back to back: ours by a `redeploy` (a new primary and its workers)
 * and by a `reload` (new workers, the primary stays), node:cluster by the
 * usual rolling restart (a new worker forked and listening before the old one
 * is disconnected). The services are those of bench/harness/service.ts.
 * Prints one JSON line per cell (requests per second, failed requests, p99),
 * then, per load, each of ours against node:cluster with the goals: as many
 * requests, a p99 no higher, 0 failed.
 *
 *   node dist/bench/workers.js [SECONDS=5] [CONNECTIONS=50]
 *     wrk must be installed; everything listens on 127.0.0.1.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startService, type Kind } from './harness/service.js';
import { wrk } from './harness/wrk.js';

type Result = Awaited<ReturnType<typeof wrk>> & { redeploys: number };

async function withService<T>(kind: Kind, n: number, f: (port: number, redeploy: () => Promise<void>) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-workers-'));
  const s = startService(kind, n, path.join(dir, 'ctl.sock'));
  try {
    return await f(await s.ready, s.redeploy);
  } finally {
    await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** cell: the steady state, keep-alive then new connections. */
async function cell(kind: Kind, n: number, seconds: number, connections: number): Promise<void> {
  await withService(kind, n, async (port) => {
    for (const keepAlive of [true, false]) {
      const r = await wrk(port, seconds, connections, keepAlive);
      console.log(JSON.stringify({ kind, workers: n, keepAlive, connections, seconds, ...r }));
    }
  });
}

/** redeployCell: wrk load for `seconds` while the service is replaced up to `times` times, one after another. */
async function redeployCell(kind: Kind, n: number, seconds: number, connections: number, keepAlive: boolean, times: number): Promise<Result> {
  return withService(kind, n, async (port, redeploy) => {
    const load = wrk(port, seconds, connections, keepAlive);
    let done = 0;
    const started = Date.now();
    while (done < times && Date.now() - started < (seconds - 1) * 1000) {
      await redeploy();
      done++;
    }
    const r = await load;
    console.log(JSON.stringify({ kind, workers: n, redeploys: done, keepAlive, connections, seconds, ...r }));
    return { ...r, redeploys: done };
  });
}

const seconds = Number(process.argv[2] ?? 5);
const connections = Number(process.argv[3] ?? 50);
const cpus = os.cpus();
console.log(`# workers against node:cluster; ${cpus.length} x ${cpus[0]?.model ?? '?'}, Node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const counts = [...new Set([1, 2, os.availableParallelism()])];
for (const n of counts) {
  for (const kind of ['graceful', 'cluster'] as const) await cell(kind, n, seconds, connections);
}
const n = os.availableParallelism();
for (const keepAlive of [true, false]) {
  const r = {} as Record<Kind, Result>;
  for (const kind of ['cluster', 'graceful', 'reload'] as const) r[kind] = await redeployCell(kind, n, 4 * seconds, connections, keepAlive, 9);
  for (const kind of ['graceful', 'reload'] as const) {
    const ratio = Math.round((r[kind].rps / r.cluster.rps) * 100) / 100;
    const pass = ratio >= 1 && r[kind].p99ms <= r.cluster.p99ms && r[kind].errors === 0;
    console.log(`# ${n} workers, ${r[kind].redeploys} ${kind === 'graceful' ? 'redeploys' : 'reloads'} (node:cluster ${r.cluster.redeploys} restarts) under ${keepAlive ? 'keep-alive' : 'new-connection'} load: `
      + `${ratio}x node:cluster's requests, p99 ${r[kind].p99ms} ms against ${r.cluster.p99ms} ms, ${r[kind].errors} failed (node:cluster ${r.cluster.errors}) `
      + `(goal: at least as many, p99 no higher, 0 failed: ${pass ? 'PASS' : 'FAIL'})`);
  }
}
