/**
 * ConnectionTracker: follows the protocol state of every connection of one
 * server and, in a drain, closes each one only where no request can be lost.
 *
 * States, per accepted connection:
 * - `tls`: a TLS handshake under way (https, http2 over TLS, tls.Server);
 *   a request is coming: kept.
 * - `http1`: no request yet, headers arriving (bytes read since the last
 *   answer), a request or a `100-continue` pending, pipelined requests queued,
 *   or idle between requests. Only idle (nothing queued, nothing read since the
 *   last answer) for the grace window, counted from the drain's start at the
 *   earliest, is closed; otherwise the last queued
 *   response, written once the requests read with it are known, carries
 *   `Connection: close` and Node closes the connection after it.
 * - `h2`: an HTTP/2 session. It gets the graceful GOAWAY of RFC 9113 section
 *   6.8: a GOAWAY with the largest stream id, PING round trips, then the
 *   final GOAWAY with the last stream id processed; its streams finish.
 * - `upgraded`: handed to the application ('upgrade' or 'connect'). Never
 *   closed before its own deadline (`upgradedTimeout`, by default the
 *   shutdown timeout); the application is told (`onDrain`) and ends it its
 *   own way.
 * - `other`: any other protocol on a net.Server or tls.Server: the
 *   application's too (`onDrain`), closed at the shutdown timeout.
 * At the deadline whatever is still open is destroyed, and counted.
 */
import net from 'node:net';
import tls from 'node:tls';
import http from 'node:http';
import https from 'node:https';
import http2 from 'node:http2';
import { debuglog } from 'node:util';
import { invalidArgument } from '../errors.js';
import { Http2Sessions } from './goaway.js';

const debug = debuglog('graceful');


/** DrainOptions: what a listener does with the connections the library does not close itself. */
export interface DrainOptions {
  /**
   * onDrain is called when a drain of this listener starts, with its upgraded
   * connections (WebSocket, CONNECT, any `Upgrade:`) and its other-protocol
   * connections, then again with each connection upgraded while the drain
   * runs. The application ends them its own way (a WebSocket close 1012,
   * staggered); whatever is left open at the deadlines is destroyed.
   */
  onDrain?: (event: DrainEvent) => void;
  /**
   * ms an upgraded connection may stay open once a drain started (default: the
   * shutdown timeout). It may be longer than the shutdown timeout: the old
   * instance then lives until its last upgraded connection ends, or this limit.
   */
  upgradedTimeout?: number;
}

/** DrainEvent: what onDrain receives. */
export interface DrainEvent {
  /** The listener's name. */
  listener: string;
  /** Upgraded connections still open (the sockets 'upgrade' and 'connect' gave the application). */
  upgraded: net.Socket[];
  /** Connections of a protocol the library does not know (a plain net.Server or tls.Server). */
  connections: net.Socket[];
  /** When (ms since the epoch) upgraded connections still open are destroyed. */
  upgradedDeadline: number;
  /** When (ms since the epoch) every other connection still open is destroyed. */
  deadline: number;
}

type Kind = 'tls' | 'http1' | 'h2' | 'upgraded' | 'other';

interface Pending {
  res: http.ServerResponse;
  /** More requests were read in the same chunk after this one: its response must keep the connection. */
  followed: boolean;
}

interface Conn {
  kind: Kind;
  /** The accepted socket: what is counted and, at a deadline, destroyed. */
  raw: net.Socket;
  /** The socket the protocol runs on (the TLSSocket over TLS). */
  io: net.Socket;
  /** HTTP/1: responses not finished, in request order. */
  queue: Pending[];
  idleSince: number;
  /** io.bytesRead when it last became idle: more means a next request is arriving. */
  readMark: number;
  /** Requests seen in the chunk the parser is executing (reset on the next tick). */
  inChunk: number;
  /** Request heads ending in that chunk, counted at its first request of a drain. */
  chunkHeads: number;
  ending: boolean;
}

// The classes of the HTTP/2 servers are not exported: take them from instances (no socket is opened).
const Http2Server = Object.getPrototypeOf(http2.createServer()).constructor as typeof net.Server;
const Http2SecureServer = Object.getPrototypeOf(http2.createSecureServer()).constructor as typeof net.Server;

export class ConnectionTracker {
  private readonly conns = new Map<net.Socket, Conn>();
  /** Conn by the socket its protocol runs on (raw, or the TLSSocket). */
  private readonly byIo = new Map<net.Socket, Conn>();
  private readonly sessions = new Http2Sessions();
  private draining = false;
  private graceMs = 1000;
  private deadline = 0;
  private upgradedDeadline = 0;
  /** Called when a connection closes, while a drain waits: it ends as soon as the last one goes. */
  private changed: (() => void) | null = null;
  private cancel: (() => void) | null = null;
  private readonly detach: (() => void)[] = [];

  constructor(readonly server: net.Server, private readonly options: DrainOptions = {}, readonly name = '') {
    const t = options.upgradedTimeout;
    if (t !== undefined && !(Number.isFinite(t) && t >= 0)) {
      throw invalidArgument('listen', `upgradedTimeout must be a number of ms >= 0, got ${String(t)}`);
    }
    if (options.onDrain !== undefined && typeof options.onDrain !== 'function') {
      throw invalidArgument('listen', 'onDrain must be a function (it receives the upgraded connections when a drain starts)');
    }
    const isH2c = server instanceof Http2Server;
    const isTls = server instanceof tls.Server;
    const isHttp1 = server instanceof http.Server || server instanceof https.Server || server instanceof Http2SecureServer;
    const initial: Kind = isTls ? 'tls' : isH2c ? 'h2' : isHttp1 ? 'http1' : 'other';
    this.on('connection', (raw: net.Socket) => {
      const conn = this.conn(raw, raw, initial);
      raw.once('close', () => {
        this.conns.delete(raw);
        this.byIo.delete(conn.io);
        this.changed?.();
      });
    });
    if (isTls) {
      this.on('secureConnection', (socket: tls.TLSSocket) => {
        // The TLSSocket wraps the accepted socket (`_parent`); without it, it stands for itself.
        const raw = (socket as unknown as { _parent?: net.Socket })._parent ?? socket;
        let conn = this.conns.get(raw);
        if (!conn) {
          conn = this.conn(raw, socket, 'tls');
          socket.once('close', () => {
            this.conns.delete(raw);
            this.byIo.delete(socket);
            this.changed?.();
          });
        }
        conn.io = socket;
        this.byIo.set(socket, conn);
        conn.kind = socket.alpnProtocol === 'h2' ? 'h2' : isHttp1 ? 'http1' : 'other';
        conn.idleSince = Date.now();
        conn.readMark = socket.bytesRead;
        if (this.draining && conn.kind === 'other') this.tell([], [socket]);
      });
    }
    this.on('session', (session: http2.Http2Session) => {
      this.sessions.add(session);
      if (this.draining) this.sessions.goaway(session, this.graceMs);
    });
    // First in line, so the response is known before the application answers.
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => this.onRequest(req, res);
    this.on('request', onRequest, true);
    // Listening to these changes what Node does (an answered 100, an upgrade
    // refused): follow them only while the application listens too.
    this.shadow('checkContinue', onRequest);
    this.shadow('checkExpectation', onRequest);
    const onUpgrade = (_req: http.IncomingMessage, socket: net.Socket) => this.onUpgrade(socket);
    this.shadow('upgrade', onUpgrade);
    this.shadow('connect', onUpgrade);
  }

  /** count: open connections. */
  get count(): number {
    return this.conns.size;
  }

  /** counts: open connections by state, for status and logs. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.conns.values()) {
      const state = c.kind !== 'http1' ? c.kind : c.queue.length > 0 ? 'http1-busy' : c.io.bytesRead > c.readMark ? 'http1-arriving' : 'http1-idle';
      out[state] = (out[state] ?? 0) + 1;
    }
    return out;
  }

  private on(event: string, fn: (...args: never[]) => void, first = false): void {
    if (first) this.server.prependListener(event, fn as (...args: unknown[]) => void);
    else this.server.on(event, fn as (...args: unknown[]) => void);
    this.detach.push(() => this.server.off(event, fn as (...args: unknown[]) => void));
  }

  /** shadow listens to event before the application, and only while the application does. */
  private shadow(event: string, fn: (...args: never[]) => void): void {
    const server = this.server;
    const listener = fn as (...args: unknown[]) => void;
    let attached = false;
    const sync = () => {
      const theirs = server.listeners(event).filter((l) => l !== listener).length;
      if (theirs > 0 && !attached) {
        attached = true;
        server.prependListener(event, listener);
      } else if (theirs === 0 && attached) {
        attached = false;
        server.off(event, listener);
      }
    };
    // 'newListener' fires before the listener is added, 'removeListener' after it is gone.
    const onNew = (name: string | symbol) => {
      if (name === event) process.nextTick(sync);
    };
    const onRemoved = (name: string | symbol, l: unknown) => {
      if (name === event && l !== listener) sync();
    };
    server.on('newListener', onNew);
    server.on('removeListener', onRemoved);
    sync();
    this.detach.push(() => {
      server.off('newListener', onNew);
      server.off('removeListener', onRemoved);
      if (attached) server.off(event, listener);
    });
  }

  private conn(raw: net.Socket, io: net.Socket, kind: Kind): Conn {
    const conn: Conn = { kind, raw, io, queue: [], idleSince: Date.now(), readMark: io.bytesRead, inChunk: 0, chunkHeads: 0, ending: false };
    this.conns.set(raw, conn);
    this.byIo.set(io, conn);
    if (this.draining && kind === 'other') this.tell([], [io]);
    return conn;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.httpVersionMajor === 2) return; // the compatibility API over a session: GOAWAY handles it
    const conn = this.byIo.get(req.socket);
    if (!conn || conn.kind === 'upgraded') return;
    conn.kind = 'http1';
    // Requests read in one chunk are parsed one after the other before any
    // timer runs: a response written now, synchronously, must not close the
    // connection if more requests follow in the same chunk.
    if (conn.inChunk++ === 0) {
      conn.chunkHeads = this.draining ? headsInChunk(req.socket) : 0;
      process.nextTick(() => (conn.inChunk = 0));
    }
    const item: Pending = { res, followed: this.draining && conn.chunkHeads > conn.inChunk };
    conn.queue.push(item);
    const writeHead = res.writeHead;
    // Every way of answering goes through writeHead (write, end and implicit headers too).
    res.writeHead = ((...args: Parameters<typeof writeHead>) => {
      if (this.draining && !res.headersSent && conn.queue[conn.queue.length - 1] === item && !item.followed) {
        res.setHeader('Connection', 'close');
      }
      return writeHead.apply(res, args);
    }) as typeof writeHead;
    const done = () => {
      const i = conn.queue.indexOf(item);
      if (i < 0) return;
      conn.queue.splice(i, 1);
      if (conn.queue.length === 0) this.idle(conn);
    };
    res.once('finish', done);
    res.once('close', done);
    // A body still arriving after the answer is not a next request.
    req.once('end', () => {
      if (conn.queue.length === 0) this.idle(conn);
    });
  }

  private idle(conn: Conn): void {
    conn.idleSince = Date.now();
    conn.readMark = conn.io.bytesRead;
  }

  private onUpgrade(socket: net.Socket): void {
    const conn = this.byIo.get(socket);
    if (!conn) return;
    conn.kind = 'upgraded';
    conn.queue = [];
    if (this.draining) this.tell([socket], []);
  }

  private tell(upgraded: net.Socket[], connections: net.Socket[]): void {
    const hook = this.options.onDrain;
    if (!hook) return;
    try {
      hook({ listener: this.name, upgraded, connections, upgradedDeadline: this.upgradedDeadline, deadline: this.deadline });
    } catch (err) {
      debug('onDrain of "%s" threw: %s', this.name, (err as Error).message);
    }
  }

  /**
   * drain stops keep-alive on every connection and resolves once all are
   * closed, or at the deadlines after destroying the rest; it resolves with
   * how many it had to destroy.
   */
  drain(idleGraceMs: number, deadline: number): Promise<number> {
    const now = Date.now();
    this.draining = true;
    this.graceMs = idleGraceMs;
    this.deadline = deadline;
    this.upgradedDeadline = this.options.upgradedTimeout !== undefined ? now + this.options.upgradedTimeout : deadline;
    this.sessions.goawayAll(idleGraceMs);
    // The grace window starts with the drain at the earliest: a client that
    // has kept a connection idle for long may reuse it right now, and then
    // gets its answer with `Connection: close`.
    for (const c of this.conns.values()) c.idleSince = Math.max(c.idleSince, now);
    const upgraded: net.Socket[] = [];
    const other: net.Socket[] = [];
    for (const c of this.conns.values()) {
      if (c.kind === 'upgraded') upgraded.push(c.io);
      else if (c.kind === 'other') other.push(c.io);
    }
    this.tell(upgraded, other);
    return new Promise((resolve) => {
      let forced = 0;
      let restForced = false;
      let upgradedForced = false;
      const check = () => {
        const t = Date.now();
        for (const c of this.conns.values()) {
          if (c.kind !== 'http1' || c.ending || c.queue.length > 0) continue;
          if (c.io.bytesRead > c.readMark) continue; // a next request is arriving
          if (t - c.idleSince < idleGraceMs) continue;
          c.ending = true;
          c.io.end();
        }
        if (!restForced && t >= deadline) {
          restForced = true;
          forced += this.destroy((c) => c.kind !== 'upgraded', 'the shutdown timeout');
        }
        if (!upgradedForced && t >= this.upgradedDeadline) {
          upgradedForced = true;
          forced += this.destroy((c) => c.kind === 'upgraded', 'their upgradedTimeout');
        }
        if (this.conns.size === 0) finish();
      };
      // Decide after the poll phase, once everything that arrived has been read.
      const tick = () => setImmediate(check);
      const timer = setInterval(tick, Math.max(10, Math.min(100, idleGraceMs / 4)));
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        clearInterval(timer);
        this.changed = null;
        this.cancel = null;
        resolve(forced);
      };
      this.changed = () => {
        if (this.conns.size === 0) finish();
      };
      this.cancel = () => finish();
      check();
    });
  }

  private destroy(which: (c: Conn) => boolean, why: string): number {
    let n = 0;
    const byState: Record<string, number> = {};
    for (const c of [...this.conns.values()]) {
      if (!which(c)) continue;
      n++;
      byState[c.kind] = (byState[c.kind] ?? 0) + 1;
      c.raw.destroy();
      if (c.io !== c.raw) c.io.destroy();
    }
    if (n > 0) debug('%s: destroyed %d connection(s) still open at %s: %j', this.name, n, why, byState);
    return n;
  }

  /** reset ends a drain (a drain under way resolves at once): connections keep alive again. */
  reset(): void {
    this.draining = false;
    const cancel = this.cancel;
    this.cancel = null;
    cancel?.();
  }

  /** dispose stops tracking. */
  dispose(): void {
    for (const d of this.detach.splice(0)) d();
  }
}

const HEADERS_END = Buffer.from('\r\n\r\n');

/**
 * headsInChunk counts the ends of request heads (CRLFCRLF) in the chunk the
 * parser is executing: more than the requests already emitted from it means
 * more follow. A body that contains CRLFCRLF counts too: the connection is
 * then left to the idle close, the safe side.
 */
function headsInChunk(socket: net.Socket): number {
  const parser = (socket as unknown as { parser?: { getCurrentBuffer?: () => Buffer } }).parser;
  let buf: Buffer | undefined;
  try {
    buf = parser?.getCurrentBuffer?.();
  } catch {
    return 0;
  }
  if (!buf) return 0;
  let n = 0;
  for (let i = buf.indexOf(HEADERS_END); i >= 0; i = buf.indexOf(HEADERS_END, i + 4)) n++;
  return n;
}
