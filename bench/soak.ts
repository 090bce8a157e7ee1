/**
 * `npm run soak`: 200 redeploys of the example server in a row under
 * continuous HTTP load, looking for what only shows after many generations:
 * a failed request, a descriptor or memory leak handed from one generation
 * to the next, a slow step, a process left behind.
 *
 * It starts example/server.js on a free port of 127.0.0.1 (GRACEFUL_JSON_LOG=1,
 * its log file and control socket in a temporary directory) and runs two
 * loads the whole time (bench/harness/):
 *   - keep-alive: autocannon, 50 connections, its sent and answered requests
 *     counted per connection (autocannon 9 alone misses requests the server
 *     never answered);
 *   - a new connection per request: 10 loops of http.request (agent: false)
 *     counting every reset, refused connect, hang-up, timeout and non-2xx.
 * Nothing is retried. The next SIGHUP goes to the serving instance as soon as
 * the previous new instance is ready and at least 0.5 s passed since the last
 * SIGHUP, so an old instance may still be draining when the next redeploy
 * starts. At the end the load stops and the last generation gets SIGTERM.
 *
 * Printed: requests and errors per load; percentiles of trigger -> ready and
 * ready -> old process exited (both seen from here); the serving instance's
 * descriptors (/proc/<pid>/fd, split into TCP connections on the port and the
 * rest) and RSS (VmRSS) at the start and at the end, idle and under load, and
 * every 25 generations; and how many processes of this example other than the
 * serving one are still alive once the last redeploy is over.
 *
 * Bounded: no SIGHUP is sent after TRIGGER_DEADLINE_S, and a watchdog ends
 * the run (and the processes it started) after WATCHDOG_S.
 * Exits 1 if a request failed, a redeploy failed or did not fit, descriptors
 * grew by more than FD_SLACK, or a process of the example was left over.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EXAMPLE_SERVER, ExampleFleet, HOST, alive, freePort, type RedeployRecord, type StepEvent } from './harness/fleet.js';
import { CountingClient } from './harness/counting-client.js';
import { errorTotal, percentile, type LoadCounts } from './harness/counts.js';
import { keepAliveLoad, type KeepAliveReport } from './harness/loads.js';

const REDEPLOYS = 200;
const EVERY_MS = 500;
const KEEPALIVE_CONNECTIONS = 50;
const NEW_CONNECTION_LOOPS = 10;
const WARMUP_MS = 1500;
/** After the last redeploy: the load goes on this long before the end is measured. */
const SETTLE_MS = 1500;
/** Longest wait for a new instance to be ready. */
const READY_TIMEOUT_MS = 10_000;
const TRIGGER_DEADLINE_S = 160;
const WATCHDOG_S = 175;
/** Descriptors may differ by this much between start and end before it counts as growth. */
const FD_SLACK = 3;
const SAMPLE_EVERY = 25;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const out = (line = '') => process.stdout.write(`${line}\n`);
const f1 = (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(1) : String(Math.round(n))) : '-');
const pad = (s: string | number, n: number) => String(s).padStart(n);
const padEnd = (s: string | number, n: number) => String(s).padEnd(n);
/** max of many numbers (Math.max(...xs) overflows the stack on a long array). */
const max = (xs: number[]) => xs.reduce((m, x) => (x > m ? x : m), -Infinity);

function kinds(c: { errors: Record<string, number> }): string {
  const e = Object.entries(c.errors).filter(([, n]) => n > 0);
  return e.length ? e.map(([k, n]) => `${k} ${n}`).join(', ') : 'none';
}

/** What /proc says about one process. */
interface Sample {
  pid: number;
  generation: number;
  /** Every open descriptor. */
  fds: number;
  /** Of which TCP connections on the served port (they come and go with the load). */
  conns: number;
  /** The rest: listening socket, control socket, log file, pipes, epoll, ... (should not change). */
  other: number;
  /** The rest by kind (socket, pipe, anon_inode:[eventpoll], file, ...). */
  byKind: Record<string, number>;
  rssKb: number;
}

/** Inodes of the TCP sockets connected on `port` on this side (not listening). */
function connectionInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const local = cols[1]!;
      if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port && cols[3] !== '0A' && cols[9] !== '0') inodes.add(cols[9]!);
    }
  }
  return inodes;
}

function rssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** sample reads pid's descriptors and RSS; null when it is gone. */
function sample(pid: number, generation: number, port: number): Sample | null {
  let names: string[];
  try {
    names = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return null;
  }
  const conns = connectionInodes(port);
  const s: Sample = { pid, generation, fds: 0, conns: 0, other: 0, byKind: {}, rssKb: rssKb(pid) };
  for (const name of names) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${name}`);
    } catch {
      continue; // closed meanwhile
    }
    s.fds++;
    const sock = /^socket:\[(\d+)\]$/.exec(target);
    if (sock && conns.has(sock[1]!)) {
      s.conns++;
      continue;
    }
    s.other++;
    const kind = sock ? 'socket' : /^pipe:/.test(target) ? 'pipe' : target.startsWith('anon_inode:') ? target : target === '/dev/null' ? '/dev/null' : 'file';
    s.byKind[kind] = (s.byKind[kind] ?? 0) + 1;
  }
  return s;
}

const describe = (s: Sample | null) => (s
  ? `${s.fds} fds (${s.conns} TCP connections + ${s.other} others: ${Object.entries(s.byKind).sort().map(([k, n]) => `${k} ${n}`).join(', ')}), RSS ${s.rssKb} kB`
  : 'gone');

/** The processes of this example (its server.js, its control socket) now running, zombies excluded. */
function examplePids(controlSocket: string): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(EXAMPLE_SERVER)) continue;
      if (!fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`GRACEFUL_SOCKET=${controlSocket}`)) continue;
    } catch {
      continue; // gone, or not ours to read
    }
    if (alive(pid)) pids.push(pid);
  }
  return pids;
}

/** One redeploy as seen from here. */
interface Cycle {
  n: number;
  oldPid: number;
  newPid?: number;
  triggerAt: number;
  /** SIGHUP sent to the old instance's ready line read here, ms. */
  triggerToReady?: number;
  /** The ready line to the old pid gone, ms. */
  readyToExited?: number;
  record?: RedeployRecord;
  failed?: string;
}

/**
 * waitReady resolves once the instance `oldPid` says its successor is ready,
 * or that the redeploy failed, or says why it refused the SIGHUP, or at the
 * timeout. Listen before the SIGHUP goes.
 */
function waitReady(fleet: ExampleFleet, oldPid: number, timeoutMs: number): Promise<{ newPid?: number; at: number; failed?: string }> {
  return new Promise((resolve) => {
    const seenStderr = fleet.otherStderr.length;
    const finish = (r: { newPid?: number; at: number; failed?: string }) => {
      clearTimeout(timer);
      clearInterval(poll);
      fleet.off('step', onStep);
      resolve(r);
    };
    const onStep = (ev: StepEvent) => {
      if (ev.pid !== oldPid) return;
      if (ev.event === 'redeploy.ready') finish({ newPid: ev.newPid, at: performance.now() });
      else if (ev.event === 'redeploy.failed') finish({ at: performance.now(), failed: `${ev.code ?? 'failed'}: ${ev.msg ?? ''}` });
    };
    fleet.on('step', onStep);
    // A SIGHUP the instance refused is a plain log line ("SIGHUP: ..."), not a step.
    const poll = setInterval(() => {
      const refused = fleet.otherStderr.slice(seenStderr).find((l) => l.includes(`"pid":${oldPid},`) && l.includes('SIGHUP:'));
      if (refused) finish({ at: performance.now(), failed: `SIGHUP refused: ${refused}` });
    }, 20);
    const timer = setTimeout(() => finish({ at: performance.now(), failed: `no redeploy.ready within ${timeoutMs} ms` }), timeoutMs);
  });
}

function percentiles(xs: number[]): string {
  if (xs.length === 0) return 'no data';
  return `p50 ${f1(percentile(xs, 50))}  p90 ${f1(percentile(xs, 90))}  p99 ${f1(percentile(xs, 99))}  max ${f1(max(xs))}  (n=${xs.length})`;
}

async function main(): Promise<number> {
  const begun = performance.now();
  const port = await freePort();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graceful-soak-'));
  const controlSocket = path.join(tmp, 'app.sock');
  out(`soak: the example server on http://${HOST}:${port}/, ${REDEPLOYS} redeploys (SIGHUP) in a row, the next one as soon as the new instance is ready and ${EVERY_MS} ms passed since the last`);
  out(`  load the whole time: ${KEEPALIVE_CONNECTIONS} keep-alive connections (autocannon, requests counted per connection) and ` +
    `${NEW_CONNECTION_LOOPS} loops opening a new connection per request (http.request, agent: false); nothing is retried`);
  out(`  machine: ${os.availableParallelism()} cores, ${os.cpus()[0]?.model ?? '?'}; Linux ${os.release()}; Node ${process.version}; ` +
    `load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);

  const fleet = await ExampleFleet.start({ port, dir: tmp, echoStderr: true });
  const cycles: Cycle[] = [];
  const generationOf = new Map<number, number>([[fleet.current, 1]]);
  fleet.on('serving', (pid: number, gen: number) => generationOf.set(pid, gen));

  // Whatever happens, the run ends: the processes it started get SIGTERM, then SIGKILL.
  const started = () => new Set([...fleet.pids, ...cycles.map((c) => c.newPid).filter((p): p is number => p !== undefined)]);
  const abandon = async (why: string, code: number) => {
    process.stderr.write(`soak: ${why}: ending the processes it started\n`);
    const pids = [...started()].filter(alive);
    for (const pid of pids) try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    await sleep(3000);
    for (const pid of pids.filter(alive)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    fs.rmSync(tmp, { recursive: true, force: true });
    process.exit(code);
  };
  setTimeout(() => void abandon(`still running after ${WATCHDOG_S} s`, 2), WATCHDOG_S * 1000).unref();
  process.once('SIGINT', () => void abandon('interrupted', 130));
  process.once('SIGTERM', () => void abandon('terminated', 143));

  const idleStart = sample(fleet.current, 1, port);
  out(`  generation 1: pid ${fleet.current}, serving ${Math.round(fleet.startupMs)} ms after spawn; idle: ${describe(idleStart)}`);

  const ka = keepAliveLoad(port, KEEPALIVE_CONNECTIONS);
  const nk = new CountingClient(port, NEW_CONNECTION_LOOPS);
  nk.start();
  const loadStarted = performance.now();
  await sleep(WARMUP_MS);
  const loadStart = sample(fleet.current, 1, port);
  out(`  under load after ${WARMUP_MS} ms: ${describe(loadStart)}`);
  out();

  const samples: Sample[] = loadStart ? [loadStart] : [];
  const finishing: Promise<void>[] = [];
  let lastTrigger = -Infinity;
  let stoppedEarly = '';
  for (let n = 1; n <= REDEPLOYS; n++) {
    const wait = lastTrigger + EVERY_MS - performance.now();
    if (wait > 0) await sleep(wait);
    if ((performance.now() - loadStarted) / 1000 > TRIGGER_DEADLINE_S) {
      stoppedEarly = `only ${n - 1} redeploys fitted in ${TRIGGER_DEADLINE_S} s`;
      break;
    }
    const oldPid = fleet.current;
    if (n % SAMPLE_EVERY === 1 && n > 1) {
      const s = sample(oldPid, generationOf.get(oldPid) ?? n, port);
      if (s) samples.push(s);
    }
    const cycle: Cycle = { n, oldPid, triggerAt: performance.now() };
    cycles.push(cycle);
    const ready = waitReady(fleet, oldPid, READY_TIMEOUT_MS);
    lastTrigger = performance.now();
    cycle.triggerAt = lastTrigger;
    // redeploy() sends the SIGHUP and follows the old instance until its process is gone.
    const whole = fleet.redeploy(READY_TIMEOUT_MS + 10_000);
    const r = await ready;
    cycle.newPid = r.newPid;
    if (r.failed) {
      cycle.failed = r.failed;
      stoppedEarly = `redeploy ${n} failed: ${r.failed}`;
      break;
    }
    cycle.triggerToReady = r.at - cycle.triggerAt;
    if (r.newPid !== undefined) generationOf.set(r.newPid, n + 1);
    finishing.push(whole.then((rec) => {
      cycle.record = rec;
      if (rec.failed) cycle.failed = rec.failed;
      else if (rec.oldExitedMs !== undefined) cycle.readyToExited = rec.oldExitedMs - cycle.triggerToReady!;
    }));
    if (n % SAMPLE_EVERY === 0) {
      const ttr = cycles.map((c) => c.triggerToReady).filter((x): x is number => x !== undefined);
      out(`  redeploy ${pad(n, 3)}/${REDEPLOYS} at ${pad(((performance.now() - loadStarted) / 1000).toFixed(1), 5)} s: pid ${oldPid} -> ${r.newPid}; ` +
        `trigger -> ready p50 ${f1(percentile(ttr, 50))} ms, max ${f1(max(ttr))} ms; new-connection errors so far ${errorTotal(nk.counts) + nk.counts.non2xx}`);
    }
  }
  // Every old instance done and gone (or its redeploy timed out).
  await Promise.all(finishing);
  const lastReadyAt = performance.now();
  const running = examplePids(controlSocket);
  const othersAlive = running.filter((p) => p !== fleet.current);
  const trackedAlive = [...started()].filter((p) => p !== fleet.current && alive(p));
  await sleep(Math.max(0, SETTLE_MS - (performance.now() - lastReadyAt)));
  const currentGen = generationOf.get(fleet.current) ?? cycles.length + 1;
  const loadEnd = sample(fleet.current, currentGen, port);
  if (loadEnd) samples.push(loadEnd);

  let keepAlive: KeepAliveReport;
  let perRequest: LoadCounts;
  try {
    [keepAlive, perRequest] = await Promise.all([ka.stop(), nk.stop()]);
  } catch (err) {
    await fleet.stop();
    throw err;
  }
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  // Idle: wait for the server to close the connections the load left.
  let idleEnd = sample(fleet.current, currentGen, port);
  for (let i = 0; i < 100 && idleEnd && idleEnd.conns > 0; i++) {
    await sleep(20);
    idleEnd = sample(fleet.current, currentGen, port);
  }
  const lastPid = fleet.current;
  const leftover = await fleet.stop();
  const afterStop = examplePids(controlSocket);
  const log = fs.readFileSync(path.join(tmp, 'app.log'), 'utf8');
  fs.rmSync(tmp, { recursive: true, force: true });

  // The loads.
  out();
  out(`load (${loadSeconds.toFixed(1)} s)                      sent        ok   non-2xx    errors  latency p99 / max ms  (error kinds)`);
  const row = (name: string, c: LoadCounts) =>
    out(`${padEnd(name, 34)} ${pad(c.sent, 8)} ${pad(c.ok, 9)} ${pad(c.non2xx, 9)} ${pad(errorTotal(c), 9)}  ${pad(`${f1(percentile(c.latencies, 99))} / ${f1(max(c.latencies))}`, 20)}  (${kinds(c)})`);
  row(`keep-alive, autocannon, ${KEEPALIVE_CONNECTIONS} conns`, keepAlive);
  row(`new connection per request, ${NEW_CONNECTION_LOOPS} loops`, perRequest);
  const ac = keepAlive.autocannon;
  const accounted = keepAlive.ok + keepAlive.non2xx + ac.mismatches + keepAlive.unanswered + keepAlive.unansweredAtEnd;
  out(`keep-alive, counted per connection: sent ${keepAlive.sent} = answered ${keepAlive.ok + keepAlive.non2xx + ac.mismatches} + unanswered ${keepAlive.unanswered}` +
    ` + unanswered at the end ${keepAlive.unansweredAtEnd}${accounted === keepAlive.sent ? '' : `  MISMATCH: the parts add up to ${accounted}`}; ` +
    `${keepAlive.reconnects} reconnects, ${keepAlive.closedAfterAnswer} after a Connection: close answer`);
  out(`autocannon's own counters: sent ${ac.sent}, completed ${ac.completed}, errors ${ac.errors}, timeouts ${ac.timeouts}, non-2xx ${ac.non2xx}, mismatches ${ac.mismatches}`);
  const sentMismatch = Math.abs(keepAlive.sent - accounted) + Math.abs(ac.sent - keepAlive.sent);
  const unexplained = Math.max(0, ac.errors - keepAlive.unanswered - keepAlive.unansweredAtEnd);

  // The redeploys.
  const done = cycles.filter((c) => !c.failed && c.readyToExited !== undefined);
  const failed = cycles.filter((c) => c.failed);
  out();
  out(`redeploys: ${cycles.length} triggered, ${done.length} completed (new instance ready, old process gone), ${failed.length} failed` +
    (stoppedEarly ? `; STOPPED: ${stoppedEarly}` : ''));
  for (const c of failed) out(`  redeploy ${c.n} (pid ${c.oldPid} -> ${c.newPid ?? '?'}) FAILED: ${c.failed}`);
  const ttr = done.map((c) => c.triggerToReady!);
  const rte = done.map((c) => c.readyToExited!);
  out(`  trigger -> ready, ms:      ${percentiles(ttr)}`);
  out(`  ready -> old exited, ms:   ${percentiles(rte)}`);
  const logReady = done.map((c) => c.record!.readyMs!).filter((x) => x !== undefined);
  const logDone = done.map((c) => c.record!.doneMs! - c.record!.readyMs!).filter(Number.isFinite);
  out(`  (old instance's own log: SIGHUP -> ready ${percentiles(logReady)}; ready -> done ${percentiles(logDone)})`);
  const slowest = [...done].sort((a, b) => b.triggerToReady! - a.triggerToReady!).slice(0, 3);
  out(`  slowest trigger -> ready: ${slowest.map((c) => `#${c.n} ${f1(c.triggerToReady!)} ms (spawned after ${c.record?.spawnedMs ?? '-'} ms)`).join(', ')}`);
  const slowExit = [...done].sort((a, b) => b.readyToExited! - a.readyToExited!).slice(0, 3);
  out(`  slowest ready -> old exited: ${slowExit.map((c) => `#${c.n} ${f1(c.readyToExited!)} ms (${c.record?.connections ?? '-'} connections, ${c.record?.forced ?? '-'} forced)`).join(', ')}`);
  const forced = done.reduce((n, c) => n + (c.record?.forced ?? 0), 0);
  out(`  connections open when draining began: median ${f1(percentile(done.map((c) => c.record?.connections ?? 0), 50))}; forced closed in all: ${forced}`);
  const span = cycles.length > 1 ? (cycles[cycles.length - 1]!.triggerAt - cycles[0]!.triggerAt) / (cycles.length - 1) : NaN;
  out(`  one redeploy every ${f1(span)} ms on average`);

  // Descriptors and memory.
  out();
  out('serving instance, start and end:');
  out(`  idle, start (generation 1, pid ${idleStart?.pid}):          ${describe(idleStart)}`);
  out(`  idle, end (generation ${currentGen}, pid ${idleEnd?.pid}):        ${describe(idleEnd)}`);
  out(`  under load, start (generation 1, pid ${loadStart?.pid}):    ${describe(loadStart)}`);
  out(`  under load, end (generation ${currentGen}, pid ${loadEnd?.pid}):  ${describe(loadEnd)}`);
  out(`  every ${SAMPLE_EVERY} generations, under load, when it gets its SIGHUP:`);
  out(`    generation      pid   fds  connections  others  RSS kB`);
  for (const s of samples) out(`    ${pad(s.generation, 10)} ${pad(s.pid, 8)} ${pad(s.fds, 5)} ${pad(s.conns, 12)} ${pad(s.other, 7)} ${pad(s.rssKb, 7)}`);
  const fdGrowthIdle = idleStart && idleEnd ? idleEnd.fds - idleStart.fds : NaN;
  const others = samples.map((s) => s.other);
  const fdGrowthOthers = others.length > 1 ? others[others.length - 1]! - others[0]! : NaN;
  out(`  descriptors, end - start: idle ${fdGrowthIdle >= 0 ? '+' : ''}${fdGrowthIdle}; not counting TCP connections, under load ${fdGrowthOthers >= 0 ? '+' : ''}${fdGrowthOthers}` +
    ` (min ${Math.min(...others)}, max ${Math.max(...others)} over the samples)`);
  const rss = samples.map((s) => s.rssKb);
  out(`  RSS, end - start: idle ${idleStart && idleEnd ? idleEnd.rssKb - idleStart.rssKb : '-'} kB; under load ${loadStart && loadEnd ? loadEnd.rssKb - loadStart.rssKb : '-'} kB ` +
    `(min ${Math.min(...rss)}, max ${Math.max(...rss)} kB over the samples)`);

  // Processes.
  out();
  out(`processes of the example alive once the last redeploy was over, other than the serving pid ${lastPid}: ${othersAlive.length}` +
    (othersAlive.length ? ` (${othersAlive.join(', ')})` : '') +
    (trackedAlive.length !== othersAlive.length ? `; of the pids followed: ${trackedAlive.length} (${trackedAlive.join(', ')})` : '') +
    ` (from /proc: processes running ${EXAMPLE_SERVER.split(path.sep).slice(-2).join('/')} with this run's control socket, zombies excluded;` +
    ` the serving pid ${running.includes(lastPid) ? 'was' : 'was NOT'} among them)`);
  out(`after SIGTERM to pid ${lastPid}: ${afterStop.length ? `STILL RUNNING: ${afterStop.join(', ')}` : 'none left'}` +
    (leftover.length ? `; had to be ended afterwards: ${leftover.join(', ')}` : ''));
  const readyLines = (log.match(/ ready on port /g) ?? []).length;
  const haltedLines = (log.match(/ halted\n/g) ?? []).length;
  out(`log file shared by every generation: ${readyLines} "ready" and ${haltedLines} "halted" lines (expected ${done.length + 1} of each)`);
  if (fleet.otherStderr.length) out(`the example wrote ${fleet.otherStderr.length} other stderr line(s) (shown above with "example:")`);

  const failedRequests = errorTotal(keepAlive) + keepAlive.non2xx + errorTotal(perRequest) + perRequest.non2xx;
  const problems: string[] = [];
  if (failedRequests > 0) problems.push(`${failedRequests} failed request(s)`);
  if (sentMismatch > 0) problems.push(`keep-alive requests sent and counted differ by ${sentMismatch}`);
  if (unexplained > 0) problems.push(`${unexplained} autocannon error(s) not matched by a lost request`);
  if (done.length < REDEPLOYS) problems.push(`${REDEPLOYS - done.length} of ${REDEPLOYS} redeploys did not complete`);
  if (fdGrowthIdle > FD_SLACK || fdGrowthOthers > FD_SLACK || !Number.isFinite(fdGrowthIdle)) problems.push(`descriptors grew (idle ${fdGrowthIdle}, others under load ${fdGrowthOthers})`);
  if (!running.includes(lastPid)) problems.push('the process scan did not see the serving pid, so it cannot vouch for the others');
  if (othersAlive.length > 0 || trackedAlive.length > 0) problems.push(`${Math.max(othersAlive.length, trackedAlive.length)} old process(es) still alive after the last redeploy`);
  if (afterStop.length > 0 || leftover.length > 0) problems.push('processes left after SIGTERM');
  out();
  out(`${problems.length ? `FAIL: ${problems.join('; ')}` : `OK: 0 failed requests out of ${keepAlive.sent + perRequest.sent} across ${done.length} redeploys`} ` +
    `(${((performance.now() - begun) / 1000).toFixed(1)} s; load average now ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})`);
  return problems.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
