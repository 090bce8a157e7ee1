/**
 * Unmodified applications under `graceful-restart run`, met by clients other
 * than HTTP/1.1 request loops: a node:http2 client on h2c, WebSocket clients
 * (ws), pipelined HTTP/1.1 requests on a raw socket, each across redeploys;
 * and a second uid, which may steer neither the supervisor's control socket
 * nor the application's (`<sock>.app`). Every load is bounded by count and
 * time; 127.0.0.1 only.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { until } from '../helpers.js';
import { OTHER_UID, otherUidCase, otherUidCli, otherUidEnv, sharedDir } from '../helpers/other-uid.js';
import { pidIn, RunApp, stopAll } from './unmodified.js';

/** started waits until app (started with wait: false) has listened and said it is ready. */
async function started(app: RunApp): Promise<void> {
  await app.sup.next(/listening on/);
  await until(async () => (await app.health()).code === 0, 20_000, 'the application to be ready');
}

/** redeploy redeploys app through the supervisor's control socket and resolves with the new pid. */
async function redeploy(app: RunApp): Promise<number> {
  const r = await app.control('redeploy');
  expect(r.code, r.stdout + r.stderr).to.equal(0);
  return Number(/^done: pid (\d+) is serving$/m.exec(r.stdout)![1]);
}

/**
 * H2Load: loops sharing one node:http2 client session, one stream at a time
 * each, until stop() or max streams. Nothing is retried: every stream opened
 * must be answered 200 with its own path. A session that got a GOAWAY is
 * closed by Node (no new stream may start on it): the next stream opens a new
 * session, as HTTP/2 clients do; that refusal happens before any stream exists.
 */
class H2Load {
  streams = 0;
  sessions = 0;
  readonly failed: string[] = [];
  /** The paths of the streams closed with REFUSED_STREAM. */
  readonly refused: string[] = [];
  readonly pids = new Set<number>();
  private started = 0;
  private running = true;
  private session: http2.ClientHttp2Session | undefined;
  private readonly loops: Promise<void>[] = [];

  constructor(private readonly port: number, concurrency: number, private readonly max: number) {
    for (let i = 0; i < concurrency; i++) this.loops.push(this.loop());
  }

  private current(): http2.ClientHttp2Session {
    if (this.session === undefined || this.session.closed || this.session.destroyed) {
      const s = http2.connect(`http://127.0.0.1:${this.port}`);
      s.on('error', (err) => this.failed.push(`session: ${err.message}`));
      this.session = s;
      this.sessions++;
    }
    return this.session;
  }

  private async loop(): Promise<void> {
    while (this.running && this.started < this.max) {
      const n = this.started++;
      const where = `/${n}?delay=${n % 4 === 0 ? 30 : 0}`; // some streams still in flight when a GOAWAY comes
      let req: http2.ClientHttp2Stream;
      try {
        req = this.current().request({ ':path': where });
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== 'ERR_HTTP2_GOAWAY_SESSION' && code !== 'ERR_HTTP2_INVALID_SESSION') this.failed.push(`request ${n}: ${(err as Error).message}`);
        this.session = undefined; // no stream was opened: the next one goes on a new session
        this.started--;
        continue;
      }
      try {
        const body = await new Promise<string>((resolve, reject) => {
          let status = 0;
          let b = '';
          req.setEncoding('utf8');
          req.on('response', (h) => (status = Number(h[':status'])));
          req.on('data', (c: string) => (b += c));
          req.on('end', () => (status === 200 ? resolve(b) : reject(new Error(`status ${status}`))));
          req.on('error', reject);
          req.setTimeout(10_000, () => req.close(http2.constants.NGHTTP2_CANCEL));
          req.on('close', () => reject(new Error(`stream closed (rstCode ${req.rstCode}) before its end`)));
          req.end();
        });
        const m = /^h2c (\d+) (\S+)\n$/.exec(body);
        if (!m || m[2] !== where) throw new Error(`answer ${JSON.stringify(body)} to ${where}`);
        this.pids.add(Number(m[1]));
        this.streams++;
      } catch (err) {
        if (req.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) this.refused.push(where);
        else this.failed.push(`stream ${n}: ${(err as Error).message}`);
      }
    }
  }

  /** stop ends the loops after their current stream, then the session. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.session?.close();
  }
}

/**
 * WsClient: a WebSocket client that sends "c<id>-<n>" and waits for its answer
 * before the next message. When its connection closes it reconnects, and sends
 * again the one message left unanswered, if any (an abrupt close may have lost
 * it, or its answer): what is checked is that each message is answered exactly
 * once to the client, in order.
 */
class WsClient {
  readonly closes: { code: number; pid: number }[] = [];
  readonly answers = new Map<number, number>(); // n -> times answered
  readonly errors: string[] = [];
  resent = 0;
  pid = 0;
  private n = 0;
  private running = true;
  readonly done: Promise<void>;

  constructor(private readonly port: number, private readonly id: number, private readonly max: number) {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    let pending: number | null = null;
    while (this.running && this.n < this.max) {
      const ws = new WebSocket(`ws://127.0.0.1:${this.port}/`);
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      ws.on('error', (err) => this.errors.push(`connection: ${err.message}`));
      const opened = await Promise.race([new Promise<boolean>((r) => ws.once('open', () => r(true))), closed.then(() => false)]);
      if (!opened) {
        this.errors.push('a connection closed before it opened');
        continue;
      }
      let connPid = 0;
      for (;;) {
        if (pending === null) {
          if (!this.running || this.n >= this.max) break;
          pending = ++this.n;
        }
        const answered = new Promise<string>((r) => ws.once('message', (d) => r(String(d))));
        ws.send(`c${this.id}-${pending}`);
        const answer = await Promise.race([answered, closed.then(() => null)]);
        if (answer === null) break;
        const m = /^c(\d+)-(\d+) (\d+)$/.exec(answer);
        if (!m || Number(m[1]) !== this.id || Number(m[2]) !== pending) {
          this.errors.push(`answer ${JSON.stringify(answer)} to c${this.id}-${pending}`);
        } else {
          this.answers.set(pending, (this.answers.get(pending) ?? 0) + 1);
          connPid = this.pid = Number(m[3]);
        }
        pending = null;
      }
      if (ws.readyState === WebSocket.OPEN && (!this.running || this.n >= this.max)) {
        ws.close(1000);
        await closed;
        return;
      }
      this.closes.push({ code: await closed, pid: connPid });
      if (pending !== null) this.resent++;
    }
  }

  /** stop ends the client after its current message. */
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

describe('register: an unmodified app and its clients across redeploys', function () {
  this.timeout(60_000);
  afterEach(stopAll);

  it('HTTP/2 cleartext (node:http2): 8 streams at a time on a client session, 3 redeploys, no stream fails but those the client refuses itself, unsent', async () => {
    const app = await RunApp.start('h2c.mjs', { wait: false });
    await started(app);
    const load = new H2Load(app.port, 8, 50_000);
    const pids: number[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        await until(() => load.streams > 300 * (i + 1), 10_000, `streams before redeploy ${i + 1}`);
        pids.push(await redeploy(app));
        const after = load.streams;
        await until(() => load.pids.has(pids[i]!) && load.streams > after + 100, 10_000, `streams answered by pid ${pids[i]}`);
      }
    } finally {
      await load.stop();
    }
    expect(load.failed, load.failed.slice(0, 5).join('; ')).to.deep.equal([]);
    // Node's client refuses by itself a stream it queued but had not sent when it read a GOAWAY
    // (docs/redeploy.md: the server cannot rule it out under continuous load): no instance saw any.
    const seen = new Set(app.sup.stdout.filter((l) => l.startsWith('stream ')).map((l) => l.split(' ')[1]));
    expect(load.refused.filter((p) => seen.has(p)), 'refused streams that reached an instance').to.deep.equal([]);
    expect(load.refused.length, `refused streams: ${load.refused.join(' ')}`).to.be.at.most(15);
    for (const p of pids) expect(load.pids.has(p), `pid ${p} answered`).to.equal(true);
    expect(load.sessions, 'a new session after each GOAWAY').to.be.at.least(4);
  });

  it('WebSocket (ws): 4 clients, 3 redeploys, each message answered exactly once and in order; only old instances close connections', async () => {
    // The drain keeps the application's WebSockets open up to the shutdown timeout (1 s here), then closes them.
    const app = await RunApp.start('ws.mjs', { env: { GRACEFUL_SHUTDOWN_TIMEOUT: '1' } });
    const clients = [0, 1, 2, 3].map((id) => new WsClient(app.port, id, 100_000));
    const serving = [await app.pid()];
    try {
      for (let i = 0; i < 3; i++) {
        await until(() => clients.every((c) => c.answers.size > 50 * (i + 1)), 10_000, `messages before redeploy ${i + 1}`);
        serving.push(await redeploy(app));
        await until(() => clients.every((c) => c.pid === serving[i + 1]), 15_000, `every client to be answered by pid ${serving[i + 1]}`).catch((e: Error) => {
          throw new Error(`${e.message}: ${clients.map((c) => `client pid ${c.pid}, ${c.answers.size} answers, closes ${JSON.stringify(c.closes)}, ${c.errors.join('; ')}`).join(' | ')}`);
        });
      }
    } finally {
      await Promise.all(clients.map((c) => c.stop()));
    }
    for (const c of clients) {
      expect(c.errors, c.errors.slice(0, 5).join('; ')).to.deep.equal([]);
      const ns = [...c.answers.keys()];
      expect(ns, 'answered in order, none skipped').to.deep.equal(ns.map((_, k) => k + 1));
      expect([...c.answers.values()].filter((t) => t !== 1), 'answered more than once').to.deep.equal([]);
      // Each close came from an instance that was replaced, by the drain: 1006 (its upgradedTimeout; the app sends no close frame) or 1012.
      expect(c.closes.map((x) => x.pid).filter((p) => p === serving[3]), 'closes by the serving instance').to.deep.equal([]);
      for (const x of c.closes) expect([1006, 1012], `close code ${x.code}`).to.include(x.code);
      expect(c.resent, 'messages sent again').to.be.at.most(c.closes.length);
    }
  });

  it('pipelined HTTP/1.1 on a raw socket across a redeploy: every response complete and in order', async () => {
    const app = await RunApp.start('ws.mjs');
    const before = await app.pid();
    const BATCH = 8;
    let redeployed: number | null = null;
    const deploying = redeploy(app).then((p) => (redeployed = p));
    let batches = 0;
    let afterRedeploy = 0;
    let connections = 0;
    let closes = 0;
    const byNew = () => afterRedeploy >= 2;
    let sock: RawHttp | null = null;
    try {
      while (!byNew() && batches < 2_000) {
        if (sock === null || sock.closed) {
          sock = await RawHttp.connect(app.port);
          connections++;
        }
        const b = batches++;
        const paths = Array.from({ length: BATCH }, (_, r) => `/b${b}r${r}?delay=${r === 0 ? 20 : 0}`);
        sock.write(paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`).join(''));
        const got = await sock.responses(BATCH).catch((e: Error) => {
          throw new Error(`batch ${b} on connection ${connections} (redeployed: ${redeployed}): ${e.message}`);
        });
        expect(got.map((r) => r.status), `batch ${b}`).to.deep.equal(Array(BATCH).fill(200));
        expect(got.map((r) => r.body.split(' ')[2]!.trim()), `batch ${b}: answers in order`).to.deep.equal(paths);
        const pids = new Set(got.map((r) => pidIn(r.body.slice(3))));
        expect(pids.size, `batch ${b} answered by one process`).to.equal(1);
        // Only the last response of a batch may close the connection.
        expect(got.slice(0, -1).filter((r) => r.close), `batch ${b}: Connection: close before its last response`).to.deep.equal([]);
        if (redeployed !== null && pids.has(redeployed)) afterRedeploy++;
        if (got[BATCH - 1]!.close) {
          closes++;
          sock.destroy(); // no request after a Connection: close: the next batch goes on a new connection
          sock = null;
        }
      }
    } finally {
      sock?.destroy();
      await deploying;
    }
    expect(byNew(), `answered by the new pid ${redeployed} (old ${before})`).to.equal(true);
    expect(connections, 'a new connection after each Connection: close').to.equal(closes + 1);
  });

  it('a second uid can steer neither the supervisor\'s control socket nor the application\'s (<sock>.app)', async function () {
    otherUidCase(this);
    const app = await RunApp.start('ws.mjs', { dir: sharedDir(0o755) });
    const appSock = `${app.sock}.app`;
    expect(fs.existsSync(appSock), appSock).to.equal(true);
    const pid = await app.pid();
    const copy = otherUidCli();
    const as = (sock: string) => asOther(copy, ['-s', sock, 'redeploy']);
    // As made: the kernel refuses the connect (the sockets are 0600).
    for (const sock of [app.sock, appSock]) {
      const r = await as(sock);
      expect(r.stderr, sock).to.include(`cannot connect to ${sock}: EACCES: permission denied for uid ${OTHER_UID}`);
      expect(r.code, sock).to.equal(3);
    }
    // Reachable by everyone: the server's uid check refuses, with its code.
    for (const sock of [app.sock, appSock]) {
      fs.chmodSync(sock, 0o666);
      const r = await as(sock);
      expect(r.stderr, sock).to.include(`permission denied: uid ${OTHER_UID} may not use this socket`);
      expect(r.code, `${sock}: ${r.stderr}`).to.not.equal(0);
    }
    expect(await app.pid(), 'still the same instance').to.equal(pid);
    const h = await app.health();
    expect(h.code, h.stdout).to.equal(0);
  });
});

/** asOther runs the CLI copy as OTHER_UID. */
function asOther(copy: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [copy, ...args], {
      timeout: 30_000, uid: OTHER_UID, gid: OTHER_UID, env: otherUidEnv(), cwd: path.dirname(copy),
    }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
    child.stdin!.end();
  });
}

/** RawHttp: HTTP/1.1 on a plain TCP connection: what is written goes as is; responses are parsed as they come (Content-Length bodies). */
class RawHttp {
  closed = false;
  why = '';
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', (e) => { this.why = `error ${(e as Error).message}`; }); // seen as a close before the responses
    socket.on('end', () => { this.why = `end after ${this.buf.length} bytes unparsed`; });
  }

  static async connect(port: number): Promise<RawHttp> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new RawHttp(socket);
  }

  write(s: string): void {
    this.socket.write(s);
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** responses resolves with the next n responses, each complete; rejects if the connection closes first, or after 10 s. */
  async responses(n: number): Promise<{ status: number; body: string; close: boolean }[]> {
    const out: { status: number; body: string; close: boolean }[] = [];
    const deadline = Date.now() + 10_000;
    while (out.length < n) {
      const r = this.parse();
      if (r) {
        out.push(r);
        continue;
      }
      if (this.closed) throw new Error(`the connection closed after ${out.length} of ${n} responses (${this.why})`);
      if (Date.now() > deadline) throw new Error(`${out.length} of ${n} responses in 10 s`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 1_000).unref(); // a bound on the wait, then the deadline is checked
      });
      this.wake = null;
    }
    return out;
  }

  private parse(): { status: number; body: string; close: boolean } | null {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const head = this.buf.subarray(0, end).toString('latin1').split('\r\n');
    const length = Number(/^content-length:\s*(\d+)$/im.exec(head.join('\n'))?.[1] ?? NaN);
    if (!Number.isInteger(length)) throw new Error(`a response without Content-Length: ${head.join(' | ')}`);
    if (this.buf.length < end + 4 + length) return null;
    const body = this.buf.subarray(end + 4, end + 4 + length).toString('utf8');
    this.buf = this.buf.subarray(end + 4 + length);
    return { status: Number(head[0]!.split(' ')[1]), body, close: /^connection:\s*close$/im.test(head.join('\n')) };
  }
}
