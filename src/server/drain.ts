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
 *
 * With `handOver` on a plain HTTP/1 listener and a new instance that takes
 * connections over (a ConnectionMover), an `http1` connection is not closed:
 * once it sits at a request boundary (nothing queued, nothing read since the
 * last answer, the parser between messages, nothing left to write) it stops
 * reading and is passed to the new instance; the last response before that
 * keeps the connection (no `Connection: close`). One that cannot be passed
 * drains as above.
 */
import net from 'node:net';
import tls from 'node:tls';
import http from 'node:http';
import https from 'node:https';
import http2 from 'node:http2';
import { debuglog } from 'node:util';
import { invalidArgument } from '../errors.js';
import { Http2Sessions } from './goaway.js';
import { handleOf } from './conn-handover.js';
import type { HandOverOptions } from './socket-handover.js';
import { passSocket } from './socket-pass.js';
import { emptyStates, type ConnectionStates } from '../conn-states.js';
import type { Meta } from '../meta.js';

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
  /**
   * handOver: at a redeploy, idle HTTP/1.1 keep-alive connections of this
   * listener move to the new instance instead of being closed (plain
   * `http.Server` only; TLS, HTTP/2 and upgraded connections drain). Default
   * false: connection-scoped state of the application (a per-connection
   * authentication, a `WeakMap` keyed by socket) does not move with it.
   */
  handOver?: boolean;
  /**
   * handOverSockets: at a redeploy, the application may hand this listener's
   * upgraded connections (WebSocket) or, on a plain net.Server, its
   * connections to the new instance with their state (`app.handOver()`),
   * which gets each with the 'adopt-socket' event. Default false.
   */
  handOverSockets?: boolean;
}

/**
 * ConnectionMover: what a drain passes connections to (the new instance).
 * pass resolves true once the new instance holds socket, false when it was
 * not passed (the socket is untouched: it drains).
 */
export interface ConnectionMover {
  accepts(listener: string): boolean;
  /** acceptsSockets: the new instance takes sockets the application hands over on this listener. */
  acceptsSockets(listener: string): boolean;
  readonly error: Error | null;
  readonly lastError?: Error | null;
  pass(socket: net.Socket, handle: NonNullable<ReturnType<typeof handleOf>>, meta: Meta): Promise<boolean>;
}

/** MoveCounts: what became of the connections of drains, for status and the redeploy events. */
export interface MoveCounts {
  /** Passed to the new instance. */
  handedOver: number;
  /** Closed by the drain where no request could be lost (or by the client). */
  drained: number;
  /** Destroyed at a deadline. */
  forced: number;
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
  /** Requests seen on it. */
  requests: number;
  /** io.bytesRead when it last became idle: more means a next request is arriving. */
  readMark: number;
  /** Requests seen in the chunk the parser is executing (reset on the next tick). */
  inChunk: number;
  /** Request heads ending in that chunk, counted at its first request of a drain. */
  chunkHeads: number;
  ending: boolean;
  /** Being passed to the new instance, or passed. */
  moving: boolean;
  /** A pass failed, or the connection cannot move: it drains. */
  stays: boolean;
  forced: boolean;
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
  /** Plain HTTP/1 (http.Server): its connections can move. */
  private readonly movable: boolean;
  private mover: ConnectionMover | null = null;
  /** Where the application's hand-overs (handOver()) go, during a redeploy's drain. */
  private socketMover: ConnectionMover | null = null;
  /** What became of the connections of every drain of this listener. */
  readonly moved: MoveCounts = { handedOver: 0, drained: 0, forced: 0 };
  /** Requests this listener received (HTTP/1 and HTTP/2 alike), for status. */
  requests = 0;

  constructor(readonly server: net.Server, private readonly options: DrainOptions = {}, readonly name = '') {
    const t = options.upgradedTimeout;
    if (t !== undefined && !(Number.isFinite(t) && t >= 0)) {
      throw invalidArgument('listen', `upgradedTimeout must be a number of ms >= 0, got ${String(t)}`);
    }
    if (options.handOver !== undefined && typeof options.handOver !== 'boolean') {
      throw invalidArgument('listen', `handOver must be true or false, got ${String(options.handOver)}`);
    }
    if (options.handOverSockets !== undefined && typeof options.handOverSockets !== 'boolean') {
      throw invalidArgument('listen', `handOverSockets must be true or false, got ${String(options.handOverSockets)}`);
    }
    if (options.onDrain !== undefined && typeof options.onDrain !== 'function') {
      throw invalidArgument('listen', 'onDrain must be a function (it receives the upgraded connections when a drain starts)');
    }
    const isH2c = server instanceof Http2Server;
    const isTls = server instanceof tls.Server;
    const isHttp1 = server instanceof http.Server || server instanceof https.Server || server instanceof Http2SecureServer;
    const initial: Kind = isTls ? 'tls' : isH2c ? 'h2' : isHttp1 ? 'http1' : 'other';
    this.movable = server instanceof http.Server;
    this.on('connection', (raw: net.Socket) => this.track(raw, initial));
    if (isTls) {
      this.on('secureConnection', (socket: tls.TLSSocket) => {
        // The TLSSocket wraps the accepted socket (`_parent`); without it, it stands for itself.
        const raw = (socket as unknown as { _parent?: net.Socket })._parent ?? socket;
        let conn = this.conns.get(raw);
        if (!conn) {
          const own = (conn = this.conn(raw, socket, 'tls'));
          socket.once('close', () => {
            if (this.draining && !own.forced) this.moved.drained++;
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

  /** handsOver: this listener moves its idle HTTP/1 connections to a new instance (the handOver option, on a plain HTTP/1 server). */
  get handsOver(): boolean {
    return this.movable && this.options.handOver === true;
  }

  /**
   * setMover: from now on a drain passes this listener's idle HTTP/1
   * connections to mover (null: it closes them again, as after a take-back).
   */
  setMover(mover: ConnectionMover | null): void {
    this.mover = this.handsOver && mover?.accepts(this.name) ? mover : null;
    this.socketMover = this.handsOverSockets && mover?.acceptsSockets(this.name) ? mover : null;
    if (this.mover && this.draining) for (const c of this.conns.values()) this.tryMove(c);
  }

  /** isDraining: a drain of this listener is under way. */
  get isDraining(): boolean {
    return this.draining;
  }

  /** states: open connections by state, for status. */
  states(): ConnectionStates {
    const out = emptyStates();
    for (const c of this.conns.values()) out[stateOf(c)]++;
    out.http2Streams = this.sessions.openStreams();
    return out;
  }

  /** handsOverSockets: the application may hand this listener's upgraded or other-protocol connections over (the handOverSockets option). */
  get handsOverSockets(): boolean {
    return this.options.handOverSockets === true && !(this.server instanceof tls.Server);
  }

  private track(raw: net.Socket, kind: Kind): Conn {
    const conn = this.conn(raw, raw, kind);
    raw.once('close', () => {
      if (this.draining && !conn.moving && !conn.forced) this.moved.drained++;
      this.conns.delete(raw);
      this.byIo.delete(conn.io);
      this.changed?.();
    });
    return conn;
  }

  /** owns: socket is a connection of this listener (the accepted socket, or the one its protocol runs on). */
  owns(socket: net.Socket): boolean {
    return this.conns.has(socket) || this.byIo.has(socket);
  }

  /**
   * adoptSocket tracks socket, handed over by the predecessor with the
   * application's state, as a connection of this listener: upgraded on an
   * HTTP server, other on a plain net.Server.
   */
  adoptSocket(socket: net.Socket): 'upgraded' | 'other' {
    const kind = this.server instanceof http.Server ? 'upgraded' : 'other';
    this.track(socket, kind);
    return kind;
  }

  /**
   * handOverSocket passes socket, a connection of this listener that the
   * application owns, to the new instance with state and head (see
   * socket-pass.ts for the checks and the codes), and counts it.
   */
  async handOverSocket(socket: net.Socket, state: unknown, options?: HandOverOptions): Promise<void> {
    const conn = this.byIo.get(socket) ?? this.conns.get(socket);
    const listener = { name: this.name, handsOverSockets: this.handsOverSockets, mover: this.socketMover };
    // Synchronous up to the stop of the reading: passSocket awaits only after it.
    const passed = await passSocket(listener, conn, socket, state, options);
    if (passed && !conn!.forced) this.moved.handedOver++; // destroyed at the deadline meanwhile: counted there
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
    const conn: Conn = {
      kind, raw, io, queue: [], requests: 0, idleSince: Date.now(), readMark: io.bytesRead, inChunk: 0, chunkHeads: 0, ending: false,
      moving: false, stays: false, forced: false,
    };
    this.conns.set(raw, conn);
    this.byIo.set(io, conn);
    if (this.draining && kind === 'other') this.tell([], [io]);
    return conn;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.requests++;
    if (req.httpVersionMajor === 2) return; // the compatibility API over a session: GOAWAY handles it
    const conn = this.byIo.get(req.socket);
    if (!conn || conn.kind === 'upgraded') return;
    conn.kind = 'http1';
    conn.requests++;
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
      if (this.draining && !res.headersSent && conn.queue[conn.queue.length - 1] === item && !item.followed && !this.mayMove(conn)) {
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
    // At once, before the client can send its next request on it (it needs our answer first).
    if (this.draining && this.mayMove(conn)) setImmediate(() => this.tryMove(conn));
  }

  /** mayMove: conn is one a drain passes to the new instance, once it is at a request boundary. */
  private mayMove(conn: Conn): boolean {
    return this.mover !== null && conn.kind === 'http1' && conn.io === conn.raw && !conn.stays && !conn.ending;
  }

  /**
   * tryMove passes conn to the new instance if it is at a request boundary:
   * it stops reading first, then checks that nothing of a next request was
   * read into this process (bytes still in the kernel go with the socket),
   * that the parser is between messages and that nothing waits to be
   * written. Otherwise it reads on, and a later check tries again.
   */
  private tryMove(conn: Conn): void {
    const mover = this.mover;
    if (!mover || conn.moving || !this.mayMove(conn) || conn.queue.length > 0) return;
    const socket = conn.raw;
    const handle = handleOf(socket);
    const parser = (socket as unknown as { parser?: { incoming?: { complete?: boolean } | null } | null }).parser;
    if (!handle || !parser || socket.destroyed || socket.writableEnded || !socket.readable) {
      conn.stays = true; // closing, or no longer HTTP (upgraded): it drains
      return;
    }
    if (socket.bytesRead > conn.readMark) return; // a next request is arriving
    handle.readStop();
    const boundary = socket.bytesRead === conn.readMark && conn.queue.length === 0 && socket.readableLength === 0 &&
      !(parser.incoming && !parser.incoming.complete) && socket.writableLength === 0 && !(handle.writeQueueSize ?? 0);
    if (!boundary) {
      handle.readStart();
      return;
    }
    conn.moving = true;
    const meta: Meta = { listener: this.name, remoteAddress: socket.remoteAddress ?? null, remotePort: socket.remotePort ?? null };
    mover.pass(socket, handle, meta).then((passed) => {
      if (passed) {
        if (!conn.forced) this.moved.handedOver++; // destroyed at the deadline meanwhile: counted there
        return;
      }
      conn.moving = false;
      conn.stays = true;
      if (!socket.destroyed) handle.readStart();
    }, () => {
      conn.moving = false;
      conn.stays = true;
      if (!socket.destroyed) handle.readStart();
    });
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
          if (this.mayMove(c)) {
            this.tryMove(c);
            continue;
          }
          if (c.moving) continue;
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
      c.forced = true;
      this.moved.forced++;
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
    this.mover = null;
    this.socketMover = null;
    const cancel = this.cancel;
    this.cancel = null;
    cancel?.();
  }

  /** dispose stops tracking. */
  dispose(): void {
    for (const d of this.detach.splice(0)) d();
  }
}

/** stateOf: the ConnectionStates key a connection counts under. */
function stateOf(c: Conn): Exclude<keyof ConnectionStates, 'http2Streams'> {
  switch (c.kind) {
    case 'tls': return 'tlsHandshake';
    case 'h2': return 'http2';
    case 'upgraded': return 'upgraded';
    case 'other': return 'other';
    case 'http1':
      if (c.moving) return 'handingOver';
      if (c.queue.length > 1) return 'pipelined';
      if (c.queue.length === 1) return 'request';
      if (c.io.bytesRead > c.readMark) return 'headers';
      return c.io !== c.raw && c.requests === 0 ? 'tlsBeforeRequest' : 'idle';
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
