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
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ControlClient } from '../src/control/client.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
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

interface Service { child: ChildProcess; lines: string[]; ready: Promise<void>; redeploy(): Promise<void> }

type Kind = 'graceful' | 'reload' | 'cluster';

function start(kind: Kind, workers: number, sock: string): Service {
  const serve = [path.join(here, 'harness', `hello-${kind === 'reload' ? 'graceful' : kind}.js`), String(workers)];
  const child = kind !== 'cluster'
    ? spawn(process.execPath, [path.join(root, 'bin/graceful-restart.js'), 'run', '--no-register', '--', process.execPath, ...serve], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, BENCH_SOCKET: sock } })
    : spawn(process.execPath, serve, { stdio: ['ignore', 'pipe', 'ignore'] });
  const lines: string[] = [];
  const waiting: { re: RegExp; count: number; resolve(): void }[] = [];
  readline.createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiting.splice(0)) {
      if (lines.filter((x) => w.re.test(x)).length >= w.count) w.resolve();
      else waiting.push(w);
    }
  });
  const seen = (re: RegExp, count: number) => new Promise<void>((resolve) => {
    if (lines.filter((x) => re.test(x)).length >= count) resolve();
    else waiting.push({ re, count, resolve });
  });
  return {
    child,
    lines,
    ready: seen(/^ready /, 1),
    redeploy: kind !== 'cluster'
      ? async () => {
        const c = await ControlClient.connect(sock, 5_000);
        try {
          await c.request(kind === 'reload' ? 'reload' : 'redeploy', [], undefined, 60_000);
        } finally {
          c.close();
        }
      }
      : async () => {
        const before = lines.filter((l) => l === 'restarted').length;
        process.kill(child.pid!, 'SIGHUP');
        await seen(/^restarted$/, before + 1);
      },
  };
}

/** cost: CPU seconds of a service started, redeployed k times, and stopped. */
async function cost(kind: Kind, workers: number, k: number): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-cost-'));
  const before = childCpu();
  const s = start(kind, workers, path.join(dir, 'ctl.sock'));
  const exited = new Promise<void>((r) => s.child.once('exit', () => r()));
  try {
    await s.ready;
    for (let i = 0; i < k; i++) await s.redeploy();
  } finally {
    s.child.kill('SIGTERM');
    await exited;
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
