/**
 * What the demo (example/demo.ts) and the redeploy benchmark
 * (bench/redeploy.ts) share: the example server run as real child processes,
 * its redeploy log read back, and two load generators that count every
 * failure.
 *
 * - ExampleFleet starts example/server.js, follows every generation through
 *   its stdout ("pid N (generation G) serving on ...") and the JSON lines the
 *   old instance writes on stderr (GRACEFUL_JSON_LOG=1), redeploys it with
 *   SIGHUP and ends it with SIGTERM, only ever signalling pids it saw start.
 * - CountingClient: one new connection per request (http.request, agent:
 *   false), never retried; every ECONNRESET, EPIPE, refused connect, hang-up,
 *   timeout, non-2xx or unexpected body counts as a failure.
 * - keepAliveLoad: autocannon's programmatic API, with its sent and received
 *   requests counted per connection, since autocannon 9 itself does not count
 *   a request the server never answered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import WebSocket from 'ws';

/** The compiled example server, next to this file in dist/example/. */
export const EXAMPLE_SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'server.js');
export const HOST = '127.0.0.1';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** freePort asks the kernel for a port on 127.0.0.1 that nothing listens on. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** alive tells whether pid is a running process (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
}

/** waitGone resolves with true once pid is gone, false at the timeout. */
export async function waitGone(pid: number, timeoutMs: number, pollMs = 2): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (alive(pid)) {
    if (performance.now() > deadline) return false;
    await sleep(pollMs);
  }
  return true;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** One JSON log line of the old instance about a redeploy step. */
export interface StepEvent {
  event: 'redeploy.spawned' | 'redeploy.ready' | 'redeploy.draining' | 'redeploy.done' | 'redeploy.failed';
  /** ms since the old instance got the trigger (its clock). */
  ms: number;
  /** The old instance. */
  pid: number;
  newPid?: number;
  connections?: number;
  forced?: number;
  code?: string;
  msg?: string;
}

/** What one redeploy did, from the old instance's log and from outside. */
export interface RedeployRecord {
  oldPid: number;
  newPid?: number;
  /** Step times from the old instance's log, ms since it got SIGHUP. */
  spawnedMs?: number;
  readyMs?: number;
  drainingMs?: number;
  doneMs?: number;
  /** Connections open on the old instance when it started draining, and how many it had to destroy. */
  connections?: number;
  forced?: number;
  /** Seen from here: ms from sending SIGHUP to the old pid being gone. */
  oldExitedMs?: number;
  failed?: string;
}

export interface FleetOptions {
  port: number;
  /**
   * A private directory: the example runs in it, and its log file (app.log)
   * and control socket (app.sock) are made there.
   */
  dir: string;
  pidFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Copy the example's plain stderr lines (not the JSON step lines) to ours. */
  echoStderr?: boolean;
}

/**
 * ExampleFleet: the example server and every generation that replaces it.
 * Generation 1 is our child; later ones are children of their predecessor
 * and write to the same stdout and stderr pipes (inherited, then handed over).
 */
export class ExampleFleet extends EventEmitter {
  /** Every pid of the example that ever said it serves. */
  readonly pids = new Set<number>();
  /** The pid that serves now (the newest ready one). */
  current = 0;
  readonly events: StepEvent[] = [];
  /** stderr lines that are not step events: warnings and errors of the example. */
  readonly otherStderr: string[] = [];
  readonly child: ChildProcess;
  /** ms from spawning generation 1 to its "serving on" line. */
  startupMs = NaN;

  private constructor(readonly options: FleetOptions) {
    super();
    const spawnedAt = performance.now();
    this.child = spawn(process.execPath, [EXAMPLE_SERVER], {
      cwd: options.dir,
      env: {
        ...process.env,
        ...options.env,
        PORT: String(options.port),
        HOST,
        LOG_FILE: path.join(options.dir, 'app.log'),
        GRACEFUL_SOCKET: path.join(options.dir, 'app.sock'),
        PID_FILE: options.pidFile ?? '',
        GRACEFUL_JSON_LOG: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    lines(this.child.stdout!, (line) => {
      const m = /^pid (\d+) \(generation (\d+)\) serving on/.exec(line);
      if (!m) return;
      const pid = Number(m[1]);
      if (this.pids.size === 0) this.startupMs = performance.now() - spawnedAt;
      this.pids.add(pid);
      this.emit('serving', pid, Number(m[2]));
    });
    lines(this.child.stderr!, (line) => {
      if (line.startsWith('{')) {
        try {
          const ev = JSON.parse(line) as StepEvent;
          if (typeof ev.event === 'string' && ev.event.startsWith('redeploy.')) {
            this.events.push(ev);
            this.emit('step', ev);
            return;
          }
        } catch {
          // not JSON after all: kept below
        }
      }
      this.otherStderr.push(line);
      if (options.echoStderr) process.stderr.write(`  example: ${line}\n`);
    });
  }

  /** start spawns generation 1 and resolves once it serves. */
  static async start(options: FleetOptions, timeoutMs = 10_000): Promise<ExampleFleet> {
    const fleet = new ExampleFleet(options);
    const pid = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the example did not serve within ${timeoutMs} ms; stderr: ${fleet.otherStderr.slice(-5).join(' | ')}`)), timeoutMs);
      fleet.child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the example exited (${signal ?? code}) before serving; stderr: ${fleet.otherStderr.slice(-5).join(' | ')}`));
      });
      fleet.once('serving', (p: number) => {
        clearTimeout(timer);
        resolve(p);
      });
    });
    fleet.current = pid;
    return fleet;
  }

  /**
   * redeploy sends SIGHUP to the serving pid and follows the old instance's
   * log until it is done and its process is gone (or failed, or timed out).
   * The serving pid becomes the ready event's newPid.
   */
  async redeploy(timeoutMs = 10_000): Promise<RedeployRecord> {
    const oldPid = this.current;
    const rec: RedeployRecord = { oldPid };
    const sentAt = performance.now();
    const finished = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        rec.failed ??= `no redeploy.done within ${timeoutMs} ms`;
        this.off('step', onStep);
        resolve();
      }, timeoutMs);
      const onStep = (ev: StepEvent) => {
        if (ev.pid !== oldPid) return;
        switch (ev.event) {
          case 'redeploy.spawned': rec.spawnedMs = ev.ms; rec.newPid = ev.newPid; break;
          case 'redeploy.ready': rec.readyMs = ev.ms; rec.newPid = ev.newPid; this.current = ev.newPid!; break;
          case 'redeploy.draining': rec.drainingMs = ev.ms; rec.connections = ev.connections; break;
          case 'redeploy.done': rec.doneMs = ev.ms; rec.forced = ev.forced; break;
          case 'redeploy.failed': rec.failed = `${ev.code ?? 'failed'}: ${ev.msg ?? ''}`; break;
        }
        if (ev.event === 'redeploy.done' || ev.event === 'redeploy.failed') {
          clearTimeout(timer);
          this.off('step', onStep);
          resolve();
        }
      };
      this.on('step', onStep);
    });
    process.kill(oldPid, 'SIGHUP');
    await finished;
    if (rec.doneMs !== undefined) {
      if (await waitGone(oldPid, 5_000)) rec.oldExitedMs = performance.now() - sentAt;
      else rec.failed ??= `pid ${oldPid} still running 5 s after redeploy.done`;
    }
    return rec;
  }

  /**
   * stop sends SIGTERM to the serving pid, waits for it to exit, then makes
   * sure no generation is left (SIGTERM, then SIGKILL, to pids we saw serve).
   * Resolves with the pids that had to be ended this way (should be none).
   */
  async stop(timeoutMs = 15_000): Promise<number[]> {
    const leftover: number[] = [];
    if (this.current && alive(this.current)) {
      process.kill(this.current, 'SIGTERM');
      await waitGone(this.current, timeoutMs, 10);
    }
    for (const pid of this.pids) {
      if (!alive(pid)) continue;
      leftover.push(pid);
      try {
        process.kill(pid, 'SIGTERM');
        if (!(await waitGone(pid, 3_000, 10))) process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined && alive(this.child.pid)) this.child.kill('SIGKILL');
    return leftover;
  }
}

function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) onLine(l);
  });
  stream.on('end', () => {
    if (partial) onLine(partial);
  });
}

/** Counts of one load. */
export interface LoadCounts {
  /** Requests sent (or, for autocannon, written on a connection). */
  sent: number;
  /** 2xx responses with the expected body. */
  ok: number;
  non2xx: number;
  /** Failures by kind (ECONNRESET, EPIPE, ECONNREFUSED, timeout, hang up, ...). */
  errors: Record<string, number>;
  /** Latencies of answered requests, ms. */
  latencies: number[];
  /** Responses per serving pid (from the body). */
  byPid: Map<number, number>;
}

export function errorTotal(c: { errors: Record<string, number> }): number {
  return Object.values(c.errors).reduce((a, b) => a + b, 0);
}

const BODY = /^hello from pid (\d+) \(generation \d+\)\n$/;

/**
 * CountingClient: `concurrency` loops, each sending one request at a time on
 * a new connection (agent: false, Connection: close) and counting what
 * happened to it. Nothing is retried.
 */
export class CountingClient {
  readonly counts: LoadCounts = { sent: 0, ok: 0, non2xx: 0, errors: {}, latencies: [], byPid: new Map() };
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly port: number, private readonly concurrency = 10, private readonly timeoutMs = 5_000) {}

  start(): void {
    this.running = true;
    for (let i = 0; i < this.concurrency; i++) {
      this.loops.push((async () => {
        while (this.running) await this.one();
      })());
    }
  }

  /** stop lets each loop finish its request in flight, then resolves with the counts. */
  async stop(): Promise<LoadCounts> {
    this.running = false;
    await Promise.all(this.loops);
    return this.counts;
  }

  private fail(kind: string): void {
    this.counts.errors[kind] = (this.counts.errors[kind] ?? 0) + 1;
  }

  private one(): Promise<void> {
    return new Promise((resolve) => {
      const started = performance.now();
      let settled = false;
      const settle = (what: () => void) => {
        if (settled) return;
        settled = true;
        what();
        resolve();
      };
      this.counts.sent++;
      const req = http.request({ host: HOST, port: this.port, path: '/', agent: false, headers: { connection: 'close' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => settle(() => {
          this.counts.latencies.push(performance.now() - started);
          const status = res.statusCode ?? 0;
          if (status < 200 || status > 299) return void this.counts.non2xx++;
          const m = BODY.exec(body);
          if (!m) return this.fail('unexpected body');
          this.counts.ok++;
          const pid = Number(m[1]);
          this.counts.byPid.set(pid, (this.counts.byPid.get(pid) ?? 0) + 1);
        }));
        res.on('aborted', () => settle(() => this.fail('response aborted')));
        res.on('error', (err: NodeJS.ErrnoException) => settle(() => this.fail(err.code ?? err.message)));
      });
      req.setTimeout(this.timeoutMs, () => {
        settle(() => this.fail('timeout'));
        req.destroy();
      });
      req.on('error', (err: NodeJS.ErrnoException) => settle(() => this.fail(err.code === 'ECONNRESET' && /hang up/.test(err.message) ? 'socket hang up' : err.code ?? err.message)));
      req.end();
    });
  }
}

/** What autocannon reported, and what we counted around it. */
export interface KeepAliveReport extends LoadCounts {
  /** autocannon's own figures. */
  autocannon: { sent: number; completed: number; errors: number; timeouts: number; non2xx: number; resets: number; mismatches: number; p99: number };
  /** Requests autocannon wrote that were never answered, though their connection ended (closed or reset) or timed out. */
  unanswered: number;
  /**
   * At the end no new request is sent and those in flight get up to
   * `endWaitMs` to be answered; those still unanswered then are failures.
   */
  unansweredAtEnd: number;
  endWaitMs: number;
  /** Connections the server closed after answering with `Connection: close` (a drain), and reconnects. */
  closedAfterAnswer: number;
  reconnects: number;
}

/** The parts of autocannon's per-connection client that the accounting below wraps. */
interface AcClient extends NodeJS.EventEmitter {
  conn: net.Socket;
  parser: { state: string; line: string; type: string; reinitialize(type: string): void };
  pipelinedRequests: { clear(): void };
  _connect(): void;
  _doRequest(): void;
  _destroyConnection(): void;
}

/**
 * keepAliveLoad runs autocannon against the example until stop() is called.
 *
 * autocannon 9 does not see a request fail when the server closes or resets
 * its connection before answering: it reconnects and sends anew, and the lost
 * request is in no counter. So each of its connections is followed here:
 * every request written, every response, and at each reconnect any request
 * still unanswered is a failure ('unanswered'), with the reason the
 * connection ended. It also ignores `Connection: close`: after such a
 * response it writes its next request on the connection the server is
 * closing. Conforming clients (Node's http.Agent, wrk, browsers) open a new
 * connection instead, and so does it here: its next request waits for the
 * reconnect. Its queue of pending requests and its parser are reset at each
 * reconnect, so a lost request does not shift the latency of later ones.
 */
export function keepAliveLoad(port: number, connections: number, timeoutSec = 5): { stop: () => Promise<KeepAliveReport> } {
  const report: KeepAliveReport = {
    sent: 0, ok: 0, non2xx: 0, errors: {}, latencies: [], byPid: new Map(), unanswered: 0, unansweredAtEnd: 0, endWaitMs: 0,
    closedAfterAnswer: 0, reconnects: 0,
    autocannon: { sent: 0, completed: 0, errors: 0, timeouts: 0, non2xx: 0, resets: 0, mismatches: 0, p99: NaN },
  };
  const fail = (kind: string, n = 1) => {
    if (n > 0) report.errors[kind] = (report.errors[kind] ?? 0) + n;
  };
  // autocannon checks a body right after emitting its response: the status is this one.
  let lastStatus = 0;
  const outstanding: (() => number)[] = [];
  const inFlight = () => outstanding.reduce((n, f) => n + f(), 0);
  let stopping = false;

  const setupClient = (c: autocannon.Client) => {
    const client = c as unknown as AcClient;
    let sent = 0;
    let answered = 0;
    let lastEnd = 'closed by the server';
    let closing: net.Socket | null = null;
    outstanding.push(() => sent - answered);
    client.on('request', () => {
      sent++;
      report.sent++;
    });
    client.on('headers', (info: { shouldKeepAlive?: boolean }) => {
      if (info.shouldKeepAlive === false) closing = client.conn;
    });
    client.on('response', (status: number) => {
      answered++;
      lastStatus = status;
    });
    client.on('connError', (err: NodeJS.ErrnoException) => {
      lastEnd = err.code ?? err.message;
    });
    // autocannon's timeout destroys the connection, then reconnects, then emits 'timeout'.
    const destroyConnection = client._destroyConnection.bind(client);
    client._destroyConnection = () => {
      lastEnd = 'timeout';
      destroyConnection();
    };
    const doRequest = client._doRequest.bind(client);
    client._doRequest = () => {
      if (closing !== null && closing === client.conn) return; // the server said Connection: close
      if (stopping) return;
      doRequest();
    };
    const connect = client._connect.bind(client);
    let first = true;
    client._connect = () => {
      if (!first) {
        report.reconnects++;
        const lost = sent - answered;
        if (lost > 0) {
          report.unanswered += lost;
          fail(lastEnd === 'timeout' ? 'timeout (unanswered)' : `unanswered: ${lastEnd}`, lost);
          answered = sent;
        } else if (closing === client.conn) {
          report.closedAfterAnswer++;
        }
        client.pipelinedRequests.clear();
        if (client.parser.state !== `${client.parser.type}_LINE` || client.parser.line !== '') client.parser.reinitialize(client.parser.type);
      }
      first = false;
      lastEnd = 'closed by the server';
      closing = null;
      connect();
    };
  };

  let finished!: (err: unknown, result: autocannon.Result) => void;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finished = (err, result) => (err ? reject(err) : resolve(result));
  });
  const instance = autocannon({
    url: `http://${HOST}:${port}/`,
    connections,
    duration: 3600,
    timeout: timeoutSec,
    setupClient,
    verifyBody: (body) => {
      if (lastStatus < 200 || lastStatus > 299) return true; // counted as non-2xx already
      const m = BODY.exec(String(body ?? ''));
      if (m) report.byPid.set(Number(m[1]), (report.byPid.get(Number(m[1])) ?? 0) + 1);
      return m !== null;
    },
  }, (err, result) => finished(err, result));
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    report.latencies.push(responseTime);
    if (statusCode >= 200 && statusCode <= 299) report.ok++;
    else report.non2xx++;
  });
  return {
    stop: async () => {
      // No new request from now on; those in flight get time to be answered
      // (less than autocannon's own timeout, which keeps running).
      stopping = true;
      const t0 = performance.now();
      const wait = Math.min(3000, timeoutSec * 600);
      while (inFlight() > 0 && performance.now() - t0 < wait) await new Promise((r) => setTimeout(r, 5));
      report.endWaitMs = performance.now() - t0;
      report.unansweredAtEnd = inFlight();
      fail('no answer when the load stopped', report.unansweredAtEnd);
      instance.stop();
      const r = await done;
      fail('unexpected body', r.mismatches);
      report.ok -= r.mismatches;
      report.autocannon = {
        sent: r.requests.sent, completed: r.requests.total, errors: r.errors, timeouts: r.timeouts, non2xx: r.non2xx,
        resets: r.resets, mismatches: r.mismatches, p99: r.latency.p99,
      };
      return report;
    },
  };
}

/**
 * http2Load: `sessions` HTTP/2 sessions (h2c), each with `streams` streams in
 * flight, each opening the next as it ends; a session told to go away is
 * replaced by a new one. Nothing is retried: a refused or reset stream is an
 * error (REFUSED_STREAM, ...).
 */
export function http2Load(port: number, sessions: number, streams: number): { stop: () => Promise<LoadCounts> } {
  const counts: LoadCounts = { sent: 0, ok: 0, non2xx: 0, errors: {}, latencies: [], byPid: new Map() };
  const fail = (kind: string) => (counts.errors[kind] = (counts.errors[kind] ?? 0) + 1);
  let running = true;
  const loops = [...Array(sessions).keys()].map(async () => {
    while (running) {
      const session = http2.connect(`http://${HOST}:${port}`);
      session.on('error', (err: Error & { code?: string }) => fail(`session ${err.code ?? err.message}`));
      await new Promise<void>((resolve) => {
        let slots = streams;
        const open = () => {
          if (!running || session.closed || session.destroyed) {
            if (--slots === 0) resolve();
            return;
          }
          const t0 = performance.now();
          const req = session.request({ ':path': '/' });
          counts.sent++;
          let status = 0;
          let body = '';
          req.setEncoding('utf8');
          req.on('response', (h) => (status = Number(h[':status'])));
          req.on('data', (d: string) => (body += d));
          req.on('error', () => undefined); // counted on 'close' by its code
          req.on('close', () => {
            if (req.rstCode) fail(req.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM ? 'REFUSED_STREAM' : `RST ${req.rstCode}`);
            else if (status < 200 || status > 299) counts.non2xx++;
            else {
              counts.ok++;
              counts.latencies.push(performance.now() - t0);
              const pid = Number(/pid (\d+)/.exec(body)?.[1]);
              counts.byPid.set(pid, (counts.byPid.get(pid) ?? 0) + 1);
            }
            open();
          });
          req.end();
        };
        for (let i = 0; i < streams; i++) open();
      });
      session.close();
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return counts;
    },
  };
}

/** WebSocketCounts: what wsLoad saw. */
export interface WebSocketCounts extends LoadCounts {
  /** Closes by code: 1012 (the server's "service restart") is the expected one. */
  closes: Record<string, number>;
  /** Messages sent as the server's 1012 close frame was on its way (the application's to resend). */
  crossedClose: number;
}

/**
 * wsLoad: `clients` WebSockets, each sending a message every `everyMs` and
 * expecting each echo; a client closed with 1012 reconnects. An error, any
 * other close code, or a message not echoed before another close is a failure;
 * messages that crossed a 1012 close frame are counted apart.
 */
export function wsLoad(port: number, clients: number, everyMs = 50): { stop: () => Promise<WebSocketCounts> } {
  const counts: WebSocketCounts = { sent: 0, ok: 0, non2xx: 0, errors: {}, latencies: [], byPid: new Map(), closes: {}, crossedClose: 0 };
  const fail = (kind: string, n = 1) => (counts.errors[kind] = (counts.errors[kind] ?? 0) + n);
  let running = true;
  const loops = [...Array(clients).keys()].map(async () => {
    while (running) {
      const ws = new WebSocket(`ws://${HOST}:${port}/`);
      const pending: number[] = [];
      let timer: NodeJS.Timeout | undefined;
      ws.on('open', () => {
        timer = setInterval(() => {
          if (ws.readyState !== WebSocket.OPEN) return;
          pending.push(performance.now());
          counts.sent++;
          ws.send('ping');
        }, everyMs);
      });
      ws.on('message', (m) => {
        const t0 = pending.shift();
        if (t0 === undefined) return fail('unexpected message');
        counts.ok++;
        counts.latencies.push(performance.now() - t0);
        const pid = Number(String(m).split(' ')[0]);
        counts.byPid.set(pid, (counts.byPid.get(pid) ?? 0) + 1);
      });
      ws.on('error', (err: Error & { code?: string }) => fail(err.code ?? err.message));
      await new Promise<void>((resolve) => {
        const stopCheck = setInterval(() => {
          if (!running) ws.close(1000);
        }, 50);
        ws.once('close', (code) => {
          clearInterval(stopCheck);
          clearInterval(timer);
          counts.closes[code] = (counts.closes[code] ?? 0) + 1;
          if (code !== 1012 && code !== 1000) fail(`close ${code}`);
          if (code === 1012) counts.crossedClose += pending.length;
          else if (pending.length) fail('not echoed', pending.length);
          resolve();
        });
      });
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return counts;
    },
  };
}
