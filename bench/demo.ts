/**
 * `npm run demo`: redeploy the example server 10 times under real HTTP load
 * and count every request that failed.
 *
 * It starts example/server.js on a free port of 127.0.0.1 (GRACEFUL_JSON_LOG=1,
 * its LOG_FILE and control socket in a temporary directory), then runs two
 * loads at once:
 *   - keep-alive: autocannon, 50 connections, with its sent and answered
 *     requests counted per connection (autocannon 9 alone misses requests
 *     the server never answered);
 *   - a new connection per request: 10 loops of http.request with agent:
 *     false, counting every ECONNRESET, EPIPE, refused connect, hang-up,
 *     timeout and non-2xx, never retrying;
 *   - HTTP/2 (h2c, H2_PORT): 10 sessions x 10 streams with node:http2, a
 *     refused or reset stream counted as a failure, never retried;
 *   - WebSocket: 20 clients each sending a message every 50 ms and counting
 *     the echoes, reconnecting when the old instance closes them with 1012;
 * sends SIGHUP to the serving pid 10 times (each time once the previous
 * redeploy is done), stops the load, ends the last generation with SIGTERM,
 * and prints what each load saw and how long each redeploy step took.
 * Exits 1 if a single request failed or a redeploy did not complete.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ExampleFleet, HOST, freePort, type RedeployRecord } from './harness/fleet.js';
import { CountingClient } from './harness/counting-client.js';
import { errorTotal, median, type LoadCounts } from './harness/counts.js';
import { http2Load, keepAliveLoad, wsLoad, type KeepAliveReport, type WebSocketCounts } from './harness/loads.js';

const REDEPLOYS = 10;
const KEEPALIVE_CONNECTIONS = 50;
const NEW_CONNECTION_LOOPS = 10;
const H2_SESSIONS = 10;
const H2_STREAMS = 10;
const WS_CLIENTS = 20;
const WARMUP_MS = 1500;
const PAUSE_MS = 600;
const TAIL_MS = 1000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const out = (line = '') => process.stdout.write(`${line}\n`);
const fmt = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '-' : String(Math.round(n)));
const pad = (s: string | number, n: number) => String(s).padStart(n);
const padEnd = (s: string | number, n: number) => String(s).padEnd(n);

function kinds(c: { errors: Record<string, number> }): string {
  const e = Object.entries(c.errors).filter(([, n]) => n > 0);
  return e.length ? e.map(([k, n]) => `${k} ${n}`).join(', ') : 'none';
}

async function main(): Promise<number> {
  const started = performance.now();
  const port = await freePort();
  const h2Port = await freePort();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graceful-demo-'));
  const logFile = path.join(tmp, 'app.log');
  out(`graceful-restart demo: the example server on http://${HOST}:${port}/, ${REDEPLOYS} redeploys (SIGHUP) under load:`);
  out(`  ${KEEPALIVE_CONNECTIONS} keep-alive connections (autocannon), ${NEW_CONNECTION_LOOPS} loops opening a new connection per request,`);
  out(`  ${H2_SESSIONS} HTTP/2 sessions x ${H2_STREAMS} streams (h2c, port ${h2Port}) and ${WS_CLIENTS} WebSockets`);

  const fleet = await ExampleFleet.start({ port, dir: tmp, echoStderr: true, env: { H2_PORT: String(h2Port) } });
  const interrupted = () => {
    void fleet.stop().then(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  const records: RedeployRecord[] = [];
  let keepAlive: KeepAliveReport | undefined;
  let perRequest: LoadCounts | undefined;
  let h2: LoadCounts | undefined;
  let ws: WebSocketCounts | undefined;
  let leftover: number[] = [];
  const firstPid = fleet.current;
  try {
    out(`  generation 1: pid ${firstPid}, serving ${Math.round(fleet.startupMs)} ms after spawn`);
    const ka = keepAliveLoad(port, KEEPALIVE_CONNECTIONS);
    const nk = new CountingClient(port, NEW_CONNECTION_LOOPS);
    nk.start();
    const h2Load = http2Load(h2Port, H2_SESSIONS, H2_STREAMS);
    const wsl = wsLoad(port, WS_CLIENTS);
    await sleep(WARMUP_MS);
    for (let i = 1; i <= REDEPLOYS; i++) {
      const rec = await fleet.redeploy();
      records.push(rec);
      out(`  redeploy ${pad(i, 2)}: pid ${rec.oldPid} -> ${rec.newPid ?? '?'}` +
        (rec.failed ? `  FAILED: ${rec.failed}` : `  ready after ${rec.readyMs} ms, old one done after ${rec.doneMs} ms`));
      if (rec.failed && !rec.readyMs) break;
      await sleep(PAUSE_MS);
    }
    await sleep(TAIL_MS);
    [keepAlive, perRequest, h2, ws] = await Promise.all([ka.stop(), nk.stop(), h2Load.stop(), wsl.stop()]);
  } finally {
    leftover = await fleet.stop();
  }
  const lastPid = fleet.current;
  const log = fs.readFileSync(logFile, 'utf8');
  fs.rmSync(tmp, { recursive: true, force: true });

  // The loads.
  out();
  out('load                                  sent        ok   non-2xx    errors  (kinds)');
  const row = (name: string, c: LoadCounts, errors: number) =>
    out(`${padEnd(name, 34)} ${pad(c.sent, 8)} ${pad(c.ok, 9)} ${pad(c.non2xx, 9)} ${pad(errors, 9)}  (${kinds(c)})`);
  row(`keep-alive, autocannon, ${KEEPALIVE_CONNECTIONS} conns`, keepAlive, errorTotal(keepAlive));
  row(`new connection per request, ${NEW_CONNECTION_LOOPS} loops`, perRequest, errorTotal(perRequest));
  row(`HTTP/2 h2c, ${H2_SESSIONS} sessions x ${H2_STREAMS} streams`, h2!, errorTotal(h2!));
  row(`WebSocket messages, ${WS_CLIENTS} clients`, ws!, errorTotal(ws!));
  out(`WebSocket closes by code: ${Object.entries(ws!.closes).map(([c, n]) => `${c}: ${n}`).join(', ') || 'none'}` +
    ` (1012: the old instance's "service restart"); ${ws!.crossedClose} message(s) crossed a 1012 close frame and were not echoed`);
  const ac = keepAlive.autocannon;
  const accounted = keepAlive.ok + keepAlive.non2xx + ac.mismatches + keepAlive.unanswered + keepAlive.unansweredAtEnd;
  out();
  out(`autocannon's own counters: sent ${ac.sent}, completed ${ac.completed}, errors ${ac.errors}, timeouts ${ac.timeouts}, ` +
    `non-2xx ${ac.non2xx}, body mismatches ${ac.mismatches}, request-iterator resets ${ac.resets}`);
  out(`counted per connection:    sent ${keepAlive.sent} = answered ${keepAlive.ok + keepAlive.non2xx + ac.mismatches} + unanswered ${keepAlive.unanswered}` +
    ` + unanswered at the end ${keepAlive.unansweredAtEnd} (in flight at the end answered within ${Math.round(keepAlive.endWaitMs)} ms)` +
    (accounted === keepAlive.sent ? '' : `  MISMATCH: the parts add up to ${accounted}`));
  out(`                           ${keepAlive.reconnects} reconnects, ${keepAlive.closedAfterAnswer} of them after the server answered with Connection: close (draining)`);
  const sentMismatch = Math.abs(keepAlive.sent - accounted) + Math.abs(ac.sent - keepAlive.sent);
  // autocannon's own error counters should all be explained by requests we saw lost.
  const unexplained = Math.max(0, ac.errors - keepAlive.unanswered - keepAlive.unansweredAtEnd);

  const pids = [...new Set([...keepAlive.byPid.keys(), ...perRequest.byPid.keys()])].sort((a, b) => a - b);
  out(`responses came from ${pids.length} pids: ${pids.map((p) => `${p}: ${(keepAlive!.byPid.get(p) ?? 0) + (perRequest!.byPid.get(p) ?? 0)}`).join(', ')}`);

  // The redeploys.
  out();
  out('redeploy  old pid  new pid   spawned    ready  draining     done  old exited  connections  forced   (ms since SIGHUP; connections open when draining began)');
  records.forEach((r, i) => out(
    `${pad(i + 1, 8)} ${pad(r.oldPid, 8)} ${pad(r.newPid ?? '-', 8)} ${pad(fmt(r.spawnedMs), 9)} ${pad(fmt(r.readyMs), 8)} ${pad(fmt(r.drainingMs), 9)} ` +
    `${pad(fmt(r.doneMs), 8)} ${pad(fmt(r.oldExitedMs), 11)} ${pad(fmt(r.connections), 12)} ${pad(fmt(r.forced), 7)}${r.failed ? `   FAILED: ${r.failed}` : ''}`,
  ));
  const ok = records.filter((r) => !r.failed);
  const med = (f: (r: RedeployRecord) => number | undefined) => fmt(median(ok.map(f).filter((x): x is number => x !== undefined)));
  out(`median: spawned ${med((r) => r.spawnedMs)}, spawn to ready ${med((r) => r.readyMs! - r.spawnedMs!)}, ready to done ${med((r) => r.doneMs! - r.readyMs!)}, ` +
    `ready to old exited ${med((r) => r.oldExitedMs! - r.readyMs!)} (old exit seen from here)`);

  // Processes and the shared log file.
  const readyLines = (log.match(/ ready on port /g) ?? []).length;
  const haltedLines = (log.match(/ halted\n/g) ?? []).length;
  out();
  out(`processes: ${fleet.pids.size} generations served (pids ${[...fleet.pids].join(', ')}); the last one, pid ${lastPid}, ended by SIGTERM; ` +
    (leftover.length ? `STILL RUNNING and ended afterwards: ${leftover.join(', ')}` : 'none left running'));
  out(`log file shared by every generation: ${readyLines} "ready" lines, ${haltedLines} "halted" lines (expected ${records.length + 1} of each)`);
  if (fleet.otherStderr.length) out(`the example wrote ${fleet.otherStderr.length} other stderr line(s) (shown above with "example:")`);

  const failedRequests = errorTotal(keepAlive) + keepAlive.non2xx + errorTotal(perRequest) + perRequest.non2xx +
    errorTotal(h2!) + h2!.non2xx + errorTotal(ws!);
  const failedRedeploys = records.filter((r) => r.failed).length + (REDEPLOYS - records.length);
  const problems: string[] = [];
  if (failedRequests > 0) problems.push(`${failedRequests} failed request(s)`);
  if (sentMismatch > 0) problems.push(`keep-alive requests sent and counted differ by ${sentMismatch}`);
  if (unexplained > 0) problems.push(`${unexplained} autocannon error(s) not matched by a lost request`);
  if (failedRedeploys > 0) problems.push(`${failedRedeploys} redeploy(s) did not complete`);
  if (leftover.length > 0) problems.push(`${leftover.length} process(es) of the example still running at the end`);
  if (readyLines !== records.length + 1 || haltedLines !== records.length + 1) problems.push('the shared log file misses lines');
  out();
  out(`${problems.length ? `FAIL: ${problems.join('; ')}` : `OK: 0 failed requests out of ${keepAlive.sent + perRequest.sent + h2!.sent + ws!.sent} across ${records.length} redeploys`} ` +
    `(${((performance.now() - started) / 1000).toFixed(1)} s)`);
  return problems.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
