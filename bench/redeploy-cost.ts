/**
 * The CPU a redeploy costs, without load: every process of the service (the
 * new primary, its workers, the old ones while they drain and exit) counted
 * by the kernel, against node:cluster's rolling restart of as many workers;
 * and the same for `reload`, which replaces the workers alone (the primary
 * stays), as node:cluster's restart does.
 *
 * Each service runs as a child of this process and every process it starts
 * is reaped below it (ours under `graceful-restart run`, the subreaper that
 * reaps every generation; node:cluster's workers by their primary), so once
 * the service has exited, the CPU of all of them is in this process's
 * cutime + cstime (/proc/self/stat). A run with K redeploys less a run with
 * none, divided by K, is the cost of one redeploy; the trigger (a control
 * request from this process, SIGHUP for node:cluster) is not counted. The two
 * services are bench/harness/hello-graceful.ts (the package as users import
 * it) and hello-cluster.ts (node:cluster alone, nothing of this package).
 *
 *   node dist/bench/redeploy-cost.js [REDEPLOYS=10] [WORKERS=2]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startService, type Kind } from './harness/service.js';

const REDEPLOYS = Number(process.argv[2] ?? 10);
const WORKERS = Number(process.argv[3] ?? 2);
/** Clock ticks per second of /proc's times (USER_HZ, 100 on Linux). */
const HZ = 100;

/** childCpu: CPU seconds of every waited-for descendant of this process so far. */
function childCpu(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / HZ; // cutime, cstime (fields 16 and 17)
}

/** cost: CPU seconds of a service started, redeployed k times, and stopped. */
async function cost(kind: Kind, workers: number, k: number): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-cost-'));
  const before = childCpu();
  const s = startService(kind, workers, path.join(dir, 'ctl.sock'));
  try {
    await s.ready;
    for (let i = 0; i < k; i++) await s.redeploy();
  } finally {
    await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return childCpu() - before;
}

async function perRedeploy(kind: Kind, workers: number): Promise<number> {
  const base = await cost(kind, workers, 0);
  const full = await cost(kind, workers, REDEPLOYS);
  return (full - base) / REDEPLOYS;
}

const cpus = os.cpus();
console.log(`# CPU per redeploy, no load, ${REDEPLOYS} redeploys; ${cpus.length} x ${cpus[0]?.model ?? '?'}, Node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const n of [...new Set([1, WORKERS])]) {
  const cluster = await perRedeploy('cluster', n);
  const full = await perRedeploy('graceful', n);
  const reload = await perRedeploy('reload', n);
  const r = (x: number) => Math.round((x / cluster) * 100) / 100;
  console.log(JSON.stringify({ workers: n, cluster: Math.round(cluster * 1000) / 1000, redeploy: Math.round(full * 1000) / 1000, reload: Math.round(reload * 1000) / 1000, redeployRatio: r(full), reloadRatio: r(reload) }));
  console.log(`# ${n} worker(s): node:cluster ${cluster.toFixed(3)} CPU-s; redeploy (a new primary and its workers) ${full.toFixed(3)} = ${r(full)}x; `
    + `reload (new workers, the primary stays) ${reload.toFixed(3)} = ${r(reload)}x (goal <= 1.5: redeploy ${r(full) <= 1.5 ? 'PASS' : 'FAIL'}, reload ${r(reload) <= 1.5 ? 'PASS' : 'FAIL'})`);
}
