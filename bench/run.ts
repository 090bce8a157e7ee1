/**
 * `npm run bench`: the fd-passing benchmark. Compiles bench/fdpass.c (the
 * plain C sendmsg/recvmsg baseline) into bench/out/, then measures, for C and
 * for this package, over an AF_UNIX stream socket between two processes
 * pinned with taskset to cores 0 and 1:
 *   1. messages/s carrying 1 descriptor + 32 bytes of meta;
 *   2. descriptors/s at 16 descriptors per message;
 *   3. round-trip latency (1 fd + meta each way), median and p99; and the
 *      floor under ours: the same round trip in Node, woken by its event loop
 *      and calling the addon straight (bench/floor.ts), without the package.
 * Each peer prints one JSON line on stdout, with the CPU time it spent per
 * descriptor (per round trip when pinging); this prints the table and the
 * goals, then a table of that CPU time, and the load average before and
 * after. Options: --seconds N (measured time per figure, default 2), --runs N
 * (C and ours alternate N times per figure; each cell is the median, default 1).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { META_JSON } from './common.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HERE = path.dirname(fileURLToPath(import.meta.url));
const C_BIN = path.join(ROOT, 'bench/out/fdpass');
const WARMUP_MS = 300;
const PEER_TIMEOUT_MS = 30_000;

const secondsArg = process.argv.indexOf('--seconds');
const DURATION_MS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) * 1000 : 2000;
if (!(DURATION_MS > 0 && DURATION_MS <= 10_000)) fail('--seconds takes a number of seconds up to 10');
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 1;
if (!(Number.isInteger(RUNS) && RUNS >= 1 && RUNS <= 9)) fail('--runs takes a whole number from 1 to 9');

/** Impl: how to start each peer of one implementation, given the socket path. */
interface Impl {
  send(sock: string, perMessage: number): string[];
  recv(sock: string): string[];
  ping(sock: string): string[];
  pong(sock: string): string[];
}

const W = String(WARMUP_MS);
const D = String(DURATION_MS);
const C: Impl = {
  send: (sock, n) => [C_BIN, 'send', sock, String(n), W, D, META_JSON],
  recv: (sock) => [C_BIN, 'recv', sock, W],
  ping: (sock) => [C_BIN, 'ping', sock, W, D, META_JSON],
  pong: (sock) => [C_BIN, 'pong', sock, META_JSON],
};
const node = (script: string, ...args: string[]) => [process.execPath, path.join(HERE, script), ...args];
const OURS: Impl = {
  send: (sock, n) => node('throughput.js', 'send', sock, String(n), W, D),
  recv: (sock) => node('throughput.js', 'recv', sock, W),
  ping: (sock) => node('latency.js', 'ping', sock, W, D),
  pong: (sock) => node('latency.js', 'pong', sock),
};

/** Node's floor for the round trip: the event loop and the addon, none of the package (bench/floor.ts). */
const FLOOR: Pick<Impl, 'ping' | 'pong'> = {
  ping: (sock) => node('floor.js', 'ping', sock, W, D),
  pong: (sock) => node('floor.js', 'pong', sock),
};

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(1);
}

function preflight(): void {
  if (spawnSync('taskset', ['-c', '0', 'true']).status !== 0) fail('`taskset` (util-linux) is needed to pin the peers to cores');
  if (spawnSync('taskset', ['-c', '1', 'true']).status !== 0) fail('this needs at least 2 CPU cores (taskset -c 1 failed)');
  fs.mkdirSync(path.dirname(C_BIN), { recursive: true });
  try {
    execFileSync('cc', ['-O2', '-o', C_BIN, path.join(ROOT, 'bench/fdpass.c')], { stdio: 'inherit' });
  } catch {
    fail('compiling bench/fdpass.c with `cc -O2` failed');
  }
}

/** loadAverage: the 1, 5 and 15 minute load averages, as uptime prints them. */
function loadAverage(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(', ');
}

/** Result: the JSON line of a peer (which fields depends on its mode). */
interface Result {
  fdsPerSecond?: number;
  seconds?: number;
  total?: number;
  roundTrips?: number;
  medianUs?: number;
  p99Us?: number;
  /** CPU time (user + system) per descriptor, or per round trip, over what the peer measured */
  cpuUsPerFd?: number;
  cpuUsPerRoundTrip?: number;
  error?: string;
  message?: string;
}

/** runPeer starts argv on core, resolving with the JSON line it prints. */
function runPeer(core: number, argv: string[]): { done: Promise<Result>; kill(): void } {
  const child = spawn('taskset', ['-c', String(core), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const done = new Promise<Result>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const line = out.trim().split('\n').pop() ?? '';
      const name = argv.slice(0, 3).map((a) => path.basename(a)).join(' ');
      if (code === 0 && line.startsWith('{')) resolve(JSON.parse(line) as Result);
      else reject(new Error(`${name} exited with ${signal ?? code}: ${err.trim()}`));
    });
  });
  return { done, kill: () => child.pid !== undefined && child.exitCode === null && child.kill('SIGKILL') };
}

/** pair runs a listening peer on core 0 and, once its socket exists, a connecting one on core 1. */
async function pair(listener: (sock: string) => string[], connector: (sock: string) => string[]): Promise<[Result, Result]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdbench-'));
  const sock = path.join(dir, 's.sock');
  const a = runPeer(0, listener(sock));
  let b: ReturnType<typeof runPeer> | null = null;
  const timer = setTimeout(() => {
    a.kill();
    b?.kill();
  }, PEER_TIMEOUT_MS);
  try {
    let exited = false;
    a.done.then(() => (exited = true), () => (exited = true));
    for (let t = 0; !fs.existsSync(sock); t++) {
      if (exited) await a.done.then(() => Promise.reject(new Error('the listening peer exited before anyone connected')));
      if (t > 5_000) throw new Error('the listening peer never created its socket');
      await new Promise((r) => setTimeout(r, 2));
    }
    b = runPeer(1, connector(sock));
    return await Promise.all([a.done, b.done]);
  } finally {
    clearTimeout(timer);
    a.kill();
    b?.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Figure: a measured value, or NaN with a note when a peer failed. */
interface Figure {
  value: number;
  note?: string;
}

/** median of the figures of several runs; a failed run makes the figure fail, with its note. */
function median(figures: Figure[]): Figure {
  const bad = figures.find((f) => f.note !== undefined || Number.isNaN(f.value));
  if (bad) return bad;
  const sorted = figures.map((f) => f.value).sort((a, b) => a - b);
  return { value: sorted[Math.floor(sorted.length / 2)]! };
}

function failed(role: string, r: Result): string | undefined {
  return r.error ? `the ${role} failed with ${r.error}: ${(r.message ?? '').split(/[;\n]/)[0]}` : undefined;
}

/** Rate: the descriptor rate, and the CPU each side spent per descriptor. */
interface Rate {
  rate: Figure;
  sendCpu: Figure;
  recvCpu: Figure;
}

async function rate(impl: Impl, perMessage: number): Promise<Rate> {
  const [sent, received] = await pair((s) => impl.send(s, perMessage), impl.recv);
  const note = failed('receiver', received) ?? failed('sender', sent);
  if (note) {
    const bad = { value: NaN, note: `${note} (after ${received.total} descriptors had been received and closed)` };
    return { rate: bad, sendCpu: bad, recvCpu: bad };
  }
  const ok = received.seconds! > 0;
  return {
    rate: { value: ok ? received.fdsPerSecond! : NaN },
    sendCpu: { value: sent.cpuUsPerFd ?? NaN },
    recvCpu: { value: ok ? received.cpuUsPerFd ?? NaN : NaN },
  };
}

async function roundTrip(impl: Pick<Impl, 'ping' | 'pong'>): Promise<{ median: Figure; p99: Figure; cpu: Figure }> {
  const [pinged, ponged] = await pair(impl.ping, impl.pong);
  const note = failed('pinging side', pinged) ?? failed('answering side', ponged);
  const ok = !note && pinged.roundTrips! > 0;
  return {
    median: { value: ok ? pinged.medianUs! : NaN, note },
    p99: { value: ok ? pinged.p99Us! : NaN, note },
    cpu: { value: ok ? pinged.cpuUsPerRoundTrip ?? NaN : NaN, note },
  };
}

interface Row {
  figure: string;
  c: Figure;
  ours: Figure;
  /** goal on ours/C, and whether more is better */
  goal?: { ratio: number; higher: boolean };
  unit: string;
}

function printTable(rows: Row[]): void {
  const notes: string[] = [];
  const fmt = (f: Figure, unit: string) => {
    let v = Number.isNaN(f.value) ? 'failed' : unit === 'us' ? f.value.toFixed(f.value < 10 ? 2 : 1)
      : Math.round(f.value).toLocaleString('en-US');
    if (f.note) {
      if (!notes.includes(f.note)) notes.push(f.note);
      v += ` [${notes.indexOf(f.note) + 1}]`;
    }
    return v;
  };
  const cells = rows.map((r) => {
    const ratio = r.ours.value / r.c.value;
    const goal = r.goal ? `${r.goal.higher ? '>=' : '<='} ${r.goal.ratio}` : '-';
    const ok = r.goal && !r.ours.note && !r.c.note && (r.goal.higher ? ratio >= r.goal.ratio : ratio <= r.goal.ratio);
    return [r.figure, fmt(r.c, r.unit), fmt(r.ours, r.unit), Number.isNaN(ratio) ? '-' : ratio.toFixed(2), goal,
      r.goal ? (ok ? 'met' : 'MISSED') : ''];
  });
  const goals = rows.some((r) => r.goal);
  const head = ['figure', 'C', 'ours', 'ours/C', 'goal', ''].slice(0, goals ? 6 : 4);
  if (!goals) for (const c of cells) c.length = 4;
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ').trimEnd();
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
  notes.forEach((n, i) => console.log(`[${i + 1}] ${n}`));
}

async function main(): Promise<void> {
  preflight();
  const load0 = loadAverage();
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  console.log(`fd passing over an AF_UNIX stream socket, 2 processes pinned to cores 0 and 1 (taskset)`);
  const nofile = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim();
  console.log(`${os.availableParallelism()} cores, ${cpu}; Linux ${os.release()}; Node ${process.version}; open-file limit ${nofile}`);
  console.log(`meta ${Buffer.byteLength(META_JSON)} bytes per descriptor; ${WARMUP_MS} ms warm-up + ${DURATION_MS} ms measured per figure` +
    (RUNS > 1 ? `; median of ${RUNS} runs, C and ours alternating` : '') + '\n');
  const rows: Row[] = [];
  const step = async <T>(label: string, f: () => Promise<T>): Promise<T> => {
    process.stderr.write(`  ${label}...\n`);
    return f();
  };
  // With --runs N, C and ours alternate N times per figure and each cell is
  // the median of its N values, so a disturbance hits both sides alike.
  const pairs = async <T>(labels: [string, string], c: () => Promise<T>, ours: () => Promise<T>): Promise<[T[], T[]]> => {
    const cs: T[] = [];
    const os: T[] = [];
    for (let i = 1; i <= RUNS; i++) {
      const n = RUNS > 1 ? ` (${i}/${RUNS})` : '';
      cs.push(await step(labels[0] + n, c));
      os.push(await step(labels[1] + n, ours));
    }
    return [cs, os];
  };
  const [c1, o1] = await pairs(['C, 1 fd per message', 'ours, 1 fd per message'], () => rate(C, 1), () => rate(OURS, 1));
  const rateOf = (rs: Rate[], k: keyof Rate) => median(rs.map((r) => r[k]));
  rows.push({ figure: 'messages/s, 1 fd + 32 B meta', c: rateOf(c1, 'rate'), ours: rateOf(o1, 'rate'), goal: { ratio: 0.9, higher: true }, unit: '/s' });
  const [c16, o16] = await pairs(['C, 16 fds per message', 'ours, 16 fds per message'], () => rate(C, 16), () => rate(OURS, 16));
  rows.push({ figure: 'descriptors/s, 16 per message', c: rateOf(c16, 'rate'), ours: rateOf(o16, 'rate'), goal: { ratio: 0.8, higher: true }, unit: '/s' });
  const [cr, or] = await pairs(['C, round trips', 'ours, round trips'], () => roundTrip(C), () => roundTrip(OURS));
  rows.push({
    figure: 'round trip median, us', c: median(cr.map((r) => r.median)), ours: median(or.map((r) => r.median)),
    goal: { ratio: 1.15, higher: false }, unit: 'us',
  });
  rows.push({ figure: 'round trip p99, us', c: median(cr.map((r) => r.p99)), ours: median(or.map((r) => r.p99)), unit: 'us' });
  // The floor runs right after, RUNS times; its cell stands in the "ours" column, against the same C.
  const floor: Awaited<ReturnType<typeof roundTrip>>[] = [];
  for (let i = 1; i <= RUNS; i++) floor.push(await step(`Node's floor, round trips${RUNS > 1 ? ` (${i}/${RUNS})` : ''}`, () => roundTrip(FLOOR)));
  rows.push({ figure: "round trip median, Node's floor", c: median(cr.map((r) => r.median)), ours: median(floor.map((r) => r.median)), unit: 'us' });
  console.log('');
  printTable(rows);
  // CPU time moves far less with other work on the machine than the rates do: it says what each side costs.
  console.log('\nCPU time (user + system) per descriptor, or per round trip, over the measured time, us:\n');
  printTable([
    { figure: 'sender, 1 fd per message', c: rateOf(c1, 'sendCpu'), ours: rateOf(o1, 'sendCpu'), unit: 'us' },
    { figure: 'receiver, 1 fd per message', c: rateOf(c1, 'recvCpu'), ours: rateOf(o1, 'recvCpu'), unit: 'us' },
    { figure: 'sender, 16 per message', c: rateOf(c16, 'sendCpu'), ours: rateOf(o16, 'sendCpu'), unit: 'us' },
    { figure: 'receiver, 16 per message', c: rateOf(c16, 'recvCpu'), ours: rateOf(o16, 'recvCpu'), unit: 'us' },
    { figure: 'pinging side, per round trip', c: median(cr.map((r) => r.cpu)), ours: median(or.map((r) => r.cpu)), unit: 'us' },
    { figure: "the same, Node's floor", c: median(cr.map((r) => r.cpu)), ours: median(floor.map((r) => r.cpu)), unit: 'us' },
  ]);
  console.log(`\nGoals: ours/C >= 0.9 for messages/s, >= 0.8 for descriptors/s, <= 1.15 for the median round trip.`);
  console.log("Node's floor: the same round trip with each side woken by Node's event loop and calling the addon straight (bench/floor.ts), none of the package; ours cannot be faster than it.");
  console.log(`Load average (1, 5, 15 min) before: ${load0}; after: ${loadAverage()} (other work on the machine moves every figure).`);
}

main().catch((err: Error) => fail(err.message));
