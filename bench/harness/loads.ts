/**
 * Load generators that count every failure: keepAliveLoad (autocannon's
 * programmatic API, with its sent and received requests counted per
 * connection, since autocannon 9 itself does not count a request the server
 * never answered), http2Load (h2c sessions) and wsLoad (WebSocket echo).
 */
import http2 from 'node:http2';
import type net from 'node:net';
import autocannon from 'autocannon';
import WebSocket from 'ws';
import { HOST } from './fleet.js';
import { BODY, type LoadCounts } from './counts.js';

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
