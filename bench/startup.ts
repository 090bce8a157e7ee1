/**
 * The start-up benchmark (part of `npm run bench`): what it costs to start
 * with this package, against `node -e 0` in the same run, on this machine.
 *   - `node -e 0`: wall time from spawn to exit, and the CPU time of the process;
 *   - `import('graceful-restart')` and `import('graceful-restart/handoff')`
 *     (the bundle, dist/bundle/, that the package's exports name), and the
 *     compiled modules unbundled (dist/src/index.js), in a fresh ES module process each:
 *     the time of the `await import()` alone (process.hrtime around it), the
 *     built-in modules it loaded (process.moduleLoadList), and the wall and CPU
 *     time of the whole process;
 *   - a single instance's start: the import, `new GracefulServer()` (which
 *     loads the engine and the control socket, left out of the import) and
 *     `ready()` with no listener, each timed alone, and the whole process;
 *   - one CLI command (`graceful-restart -s <socket> status`) against the live
 *     control socket of a GracefulServer run by this process: wall and CPU.
 * Each figure is the median of RUNS fresh processes, run one after another
 * (one kind after the other in each round, so that a busy moment hits all of
 * them alike). The CPU time of a process is its own process.cpuUsage() at
 * exit, written by a preloaded CommonJS probe (--require) that every measured
 * process gets, `node -e 0` included. Prints the figures, the ratios and the
 * goal lines, with the spread of the import's time (its quartiles) next to
 * its median; exits 0 whatever they say (STARTUP_STRICT=1: exits 1 when a goal
 * fails). STARTUP_RUNS sets the number of runs (default 15); STARTUP_ROOT
 * names another checkout (built) whose import and CLI to measure instead of
 * this one's, e.g. the main branch's, for a before/after in one sitting.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { GracefulServer } from '../src/index.js';

const RUNS = Number(process.env.STARTUP_RUNS ?? 15);
/** The goal of issue 24: the library's import at most this many ms. */
const IMPORT_GOAL_MS = 25;

const root = path.resolve(process.env.STARTUP_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..'));
const bin = path.join(root, 'bin/graceful-restart.js');
const out = (line = '') => process.stdout.write(`${line}\n`);

/** One measured process: wall ms from spawn to exit, CPU ms (user + system), and what the script itself printed. */
interface Sample { wallMs: number; cpuMs: number; userMs: number; systemMs: number; printed: string; code: number | null }

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'startup-bench-'));
const probe = path.join(dir, 'probe.cjs');
fs.writeFileSync(probe, [
  "'use strict';",
  '// Writes this process\'s CPU time at exit to the file STARTUP_PROBE names.',
  "const fs = require('fs');",
  "process.on('exit', () => { const u = process.cpuUsage(); fs.writeFileSync(process.env.STARTUP_PROBE, JSON.stringify(u)); });",
  '',
].join('\n'));

/**
 * importScript: an ES module program that imports url, timing the `await
 * import()` alone, and prints { ms, builtins } (built-ins the import loaded).
 */
function importScript(url: string): string {
  return [
    'const before = new Set(process.moduleLoadList);',
    'const t = process.hrtime.bigint();',
    `await import(${JSON.stringify(url)});`,
    'const ms = Number(process.hrtime.bigint() - t) / 1e6;',
    "const builtins = process.moduleLoadList.filter((m) => !before.has(m) && m.startsWith('NativeModule ') && !m.startsWith('NativeModule internal/')).map((m) => m.slice(13));",
    'console.log(JSON.stringify({ ms, builtins }));',
  ].join('\n');
}

/**
 * serverScript: an ES module program that imports url, then makes a
 * GracefulServer and readies it (no listener, no control socket), timing
 * each step, and prints { ms, constructMs, readyMs }.
 */
function serverScript(url: string): string {
  return [
    'let t = process.hrtime.bigint();',
    'const lap = () => { const now = process.hrtime.bigint(); const ms = Number(now - t) / 1e6; t = now; return ms; };',
    `const { GracefulServer } = await import(${JSON.stringify(url)});`,
    'const ms = lap();',
    'const app = new GracefulServer({ exitProcess: false, signals: false });',
    'const constructMs = lap();',
    'await app.ready();',
    'const readyMs = lap();',
    'await app.telinit(0);',
    'console.log(JSON.stringify({ ms, constructMs, readyMs }));',
  ].join('\n');
}

let probeCount = 0;
/** measure runs node with args (after the probe) and resolves with its sample. */
function measure(args: string[]): Promise<Sample> {
  const file = path.join(dir, `cpu-${probeCount++}.json`);
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, ['--require', probe, ...args], {
      cwd: root, env: { ...process.env, STARTUP_PROBE: file }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let printed = '';
    let errors = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { printed += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { errors += s; });
    child.on('error', reject);
    child.on('close', (code) => {
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      if (code !== 0) {
        reject(new Error(`node ${args.join(' ').slice(0, 80)} exited ${code}: ${errors.trim()}`));
        return;
      }
      const cpu = JSON.parse(fs.readFileSync(file, 'utf8')) as { user: number; system: number };
      fs.rmSync(file);
      resolve({ wallMs, cpuMs: (cpu.user + cpu.system) / 1000, userMs: cpu.user / 1000, systemMs: cpu.system / 1000, printed, code });
    });
  });
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** quartiles: the first and third quartile of values, as `q1-q3`, the spread beside a median. */
function quartiles(values: number[]): string {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))]!;
  return `${at(0.25).toFixed(1)}-${at(0.75).toFixed(1)}`;
}

const f1 = (n: number) => n.toFixed(1);
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

/**
 * staticModules counts the package's own modules that importing file loads:
 * its static import graph (import and export ... from of relative paths),
 * which is what an import evaluates before it resolves.
 */
function staticModules(file: string): number {
  const seen = new Set<string>();
  const walk = (f: string) => {
    if (seen.has(f)) return;
    seen.add(f);
    const text = fs.readFileSync(f, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(?:[^;]*?\s+from\s+)?['"](\.[^'"]+)['"]/gm)) {
      walk(path.resolve(path.dirname(f), m[1]!));
    }
  };
  walk(file);
  return seen.size;
}

async function main(): Promise<void> {
  out('# Start-up: node itself, the library\'s import, one CLI command');
  out(`machine: ${os.availableParallelism()} cores, ${os.cpus()[0]?.model ?? '?'}; Linux ${os.release()}; Node ${process.version}; ` +
    `load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; ${RUNS} runs of each, medians; ${root}`);

  const bundled = (name: string) => (fs.existsSync(path.join(root, 'dist/bundle', name)) ? path.join(root, 'dist/bundle', name) : path.join(root, 'dist/src', name));
  const index = bundled('index.js');
  const handoff = bundled('handoff.js');
  const compiled = path.join(root, 'dist/src/index.js');
  const socket = path.join(dir, 'app.sock');
  const app = new GracefulServer({ controlSocket: socket, exitProcess: false, signals: false });
  await app.ready();

  const kinds = {
    node: ['-e', '0'],
    index: ['--input-type=module', '-e', importScript(pathToFileURL(index).href)],
    handoff: ['--input-type=module', '-e', importScript(pathToFileURL(handoff).href)],
    compiled: ['--input-type=module', '-e', importScript(pathToFileURL(compiled).href)],
    server: ['--input-type=module', '-e', serverScript(pathToFileURL(index).href)],
    cli: [bin, '-s', socket, 'status'],
  } as const;
  const samples: Record<keyof typeof kinds, Sample[]> = { node: [], index: [], handoff: [], compiled: [], server: [], cli: [] };
  try {
    for (let i = 0; i < RUNS; i++) {
      for (const kind of Object.keys(kinds) as (keyof typeof kinds)[]) samples[kind].push(await measure([...kinds[kind]]));
    }
  } finally {
    await app.telinit(0).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const wall = (k: keyof typeof kinds) => median(samples[k].map((s) => s.wallMs));
  const cpu = (k: keyof typeof kinds) => median(samples[k].map((s) => s.cpuMs));
  const imported = (k: 'index' | 'handoff' | 'compiled') => samples[k].map((s) => JSON.parse(s.printed) as { ms: number; builtins: string[] });
  const importMs = (k: 'index' | 'handoff' | 'compiled') => median(imported(k).map((r) => r.ms));
  const builtins = (k: 'index' | 'handoff' | 'compiled') => imported(k)[0]!.builtins;
  const started = samples.server.map((s) => JSON.parse(s.printed) as { ms: number; constructMs: number; readyMs: number });

  out();
  out('| | wall ms | CPU ms (quartiles) | import ms, hrtime (quartiles) | own modules | built-ins it loads |');
  out('|---|---|---|---|---|---|');
  out(`| node -e 0 | ${f1(wall('node'))} | ${f1(cpu('node'))} (${quartiles(samples.node.map((s) => s.cpuMs))}) | | | |`);
  for (const [k, name, file] of [['index', "import('graceful-restart')", index], ['handoff', "import('graceful-restart/handoff')", handoff], ['compiled', 'import of dist/src/index.js, not bundled', compiled]] as const) {
    out(`| ${name} | ${f1(wall(k))} | ${f1(cpu(k))} (${quartiles(samples[k].map((s) => s.cpuMs))}) | ${f1(importMs(k))} (${quartiles(imported(k).map((r) => r.ms))}) | ` +
      `${staticModules(file)} | ${builtins(k).length}: ${builtins(k).join(' ')} |`);
  }
  out(`| import, new GracefulServer(), ready() | ${f1(wall('server'))} | ${f1(cpu('server'))} (${quartiles(samples.server.map((s) => s.cpuMs))}) | ` +
    `${f1(median(started.map((r) => r.ms)))} + ${f1(median(started.map((r) => r.constructMs)))} (new) + ${f1(median(started.map((r) => r.readyMs)))} (ready) | | |`);
  out(`| graceful-restart -s <socket> status | ${f1(wall('cli'))} | ${f1(cpu('cli'))} (${quartiles(samples.cli.map((s) => s.cpuMs))}) | | ${staticModules(path.join(root, 'dist/src/cli.js'))} (cli.js) | |`);
  out();
  out('Ratios to node -e 0 (wall, CPU); what each adds to it:');
  for (const [k, name] of [['index', 'library import'], ['handoff', 'hand-off import'], ['server', 'single instance up'], ['cli', 'CLI command']] as const) {
    out(`  ${name}: ${ratio(wall(k), wall('node'))} wall, ${ratio(cpu(k), cpu('node'))} CPU; ` +
      `+${f1(wall(k) - wall('node'))} ms wall, +${f1(cpu(k) - cpu('node'))} ms CPU`);
  }
  out();
  const pass = importMs('index') <= IMPORT_GOAL_MS;
  out(`goal: library import <= ${IMPORT_GOAL_MS} ms: ${f1(importMs('index'))} ms (node -e 0 takes ${f1(wall('node'))} ms): ${pass ? 'PASS' : 'FAIL'}`);
  if (!pass && process.env.STARTUP_STRICT === '1') process.exitCode = 1;
}

await main();
