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
 * Then, where it goes: each process of one more run of each service
 * reports its own CPU at its exit (bench/harness/cpu-report.ts, preloaded),
 * and the medians per part (supervisor, primary, worker) are printed beside
 * `node -e 0`'s, which is Node's own start-up.
 *
 *   node dist/bench/redeploy-cost.js [REDEPLOYS=10] [WORKERS=2]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
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

/** exercise starts a service (its control socket in dir), redeploys it k times, and stops it. */
async function exercise(kind: Kind, workers: number, k: number, dir: string): Promise<void> {
  const s = startService(kind, workers, path.join(dir, 'ctl.sock'));
  try {
    await s.ready;
    for (let i = 0; i < k; i++) await s.redeploy();
  } finally {
    await s.stop();
  }
}

/** cost: CPU seconds of a service started, redeployed k times, and stopped. */
async function cost(kind: Kind, workers: number, k: number): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-cost-'));
  const before = childCpu();
  try {
    await exercise(kind, workers, k, dir);
  } finally {
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

type Part = Record<string, { n: number; medianMs: number }>;

/** collect runs f with every Node process started meanwhile reporting its CPU at its exit (see cpu-report.ts): the medians per part. */
async function collect(f: (dir: string) => Promise<void> | void): Promise<Part> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-parts-'));
  const report = path.join(dir, 'cpu.jsonl');
  const preload = `--import=${pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), 'harness/cpu-report.js')).href}`;
  const saved = { NODE_OPTIONS: process.env.NODE_OPTIONS, CPU_REPORT: process.env.CPU_REPORT };
  process.env.NODE_OPTIONS = `${saved.NODE_OPTIONS ?? ''} ${preload}`.trim();
  process.env.CPU_REPORT = report;
  try {
    await f(dir);
  } finally {
    for (const [key, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[key];
      else process.env[key] = v;
    }
  }
  const lines = fs.existsSync(report) ? fs.readFileSync(report, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { part: string; cpuMs: number }) : [];
  fs.rmSync(dir, { recursive: true, force: true });
  const out: Part = {};
  for (const part of [...new Set(lines.map((l) => l.part))]) {
    const v = lines.filter((l) => l.part === part).map((l) => l.cpuMs).sort((x, y) => x - y);
    out[part] = { n: v.length, medianMs: v[Math.floor(v.length / 2)]! };
  }
  return out;
}

const base = (await collect(() => {
  for (let i = 0; i < 5; i++) execFileSync(process.execPath, ['-e', '0']);
})).process;
console.log(`# where it goes: CPU ms of each process from its start to its exit (medians; n processes), through ${REDEPLOYS} redeploys of ${WORKERS} worker(s); node -e 0: ${base?.medianMs ?? '?'} ms`);
for (const kind of ['cluster', 'graceful', 'reload'] as const) {
  const p = await collect((dir) => exercise(kind, WORKERS, REDEPLOYS, dir));
  console.log(JSON.stringify({ kind, workers: WORKERS, redeploys: REDEPLOYS, nodeE0Ms: base?.medianMs, ...p }));
}
