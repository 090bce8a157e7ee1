/**
 * ConnectionTracker: follows the protocol state of every connection of one
 * server and, in a drain, closes each one only where no request can be lost.
 * Its parts are in drain/: the table of connections and their states
 * (conns.ts), HTTP/1 (http1.ts), HTTP/2 (goaway.ts), the deadlines
 * (deadlines.ts), the hand-over of idle connections (handover.ts) and the
 * options (options.ts).
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
import type net from 'node:net';
import type tls from 'node:tls';
import type http from 'node:http';
import type http2 from 'node:http2';
import { debuglog } from 'node:util';
import { isHttp2Server, loadedBuiltin } from '../node-builtins.js';
import { Http2Sessions } from './drain/goaway.js';
import { Connections, type Conn, type Kind } from './drain/conns.js';
import { endIfIdle, followRequest, markIdle, type Http1Drain } from './drain/http1.js';
import { DrainRun, drainLimits, type DrainLimits } from './drain/deadlines.js';
import { canMove, tryMove, type ConnectionMover } from './drain/handover.js';
import { checkDrainOptions, type DrainOptions, type MoveCounts } from './drain/options.js';
import type { HandOverOptions } from './socket-handover.js';
import { passSocket } from './socket-pass.js';
import type { ConnectionStates } from '../conn-states.js';

// The option types of a listener's drain, as the package entry point exports them.
export type { DrainOptions, DrainEvent } from './drain/options.js';

const debug = debuglog('graceful');

export class ConnectionTracker {
  private readonly conns = new Connections();
  private readonly sessions = new Http2Sessions();
  private draining = false;
  private limits: DrainLimits = { graceMs: 1000, deadline: 0, upgradedDeadline: 0 };
  /** The drain under way: it ends as soon as the last connection goes, or at reset(). */
  private run: DrainRun | null = null;
  private readonly detach: (() => void)[] = [];
  /** Plain HTTP/1 (http.Server): its connections can move. */
  private readonly movable: boolean;
  /** A tls.Server (https and HTTP/2 over TLS included). */
  private readonly isTls: boolean;
  private mover: ConnectionMover | null = null;
  /** Where the application's hand-overs (handOver()) go, during a redeploy's drain. */
  private socketMover: ConnectionMover | null = null;
  private readonly http1: Http1Drain = {
    draining: () => this.draining,
    mayMove: (c) => this.mayMove(c),
    idle: (c) => this.idle(c),
  };
  /** What became of the connections of every drain of this listener. */
  readonly moved: MoveCounts = { handedOver: 0, drained: 0, forced: 0 };
  /** Requests this listener received (HTTP/1 and HTTP/2 alike), for status. */
  requests = 0;

  /** The constructor checks options (ERR_GRACEFUL_INVALID_ARGUMENT) and follows server's connections from now on. */
  constructor(readonly server: net.Server, private readonly options: DrainOptions = {}, readonly name = '') {
    checkDrainOptions(options);
    // Node's server classes, from their modules if loaded: a server of a class never loaded is none of them.
    const [tlsModule, httpModule, httpsModule] = [loadedBuiltin('tls'), loadedBuiltin('http'), loadedBuiltin('https')];
    const isH2c = isHttp2Server(server, 'plain');
    const isTls = (this.isTls = tlsModule !== null && server instanceof tlsModule.Server);
    const isHttp1 = (httpModule !== null && server instanceof httpModule.Server) ||
      (httpsModule !== null && server instanceof httpsModule.Server) || isHttp2Server(server, 'secure');
    const initial: Kind = isTls ? 'tls' : isH2c ? 'h2' : isHttp1 ? 'http1' : 'other';
    this.movable = httpModule !== null && server instanceof httpModule.Server;
    this.on('connection', (raw: net.Socket) => this.track(raw, initial));
    if (isTls) {
      this.on('secureConnection', (socket: tls.TLSSocket) => {
        // The TLSSocket wraps the accepted socket (`_parent`); without it, it stands for itself.
        const raw = (socket as unknown as { _parent?: net.Socket })._parent ?? socket;
        let conn = this.conns.byAccepted(raw);
        if (!conn) {
          const own = (conn = this.add(raw, socket, 'tls'));
          socket.once('close', () => this.closed(own));
        }
        this.conns.setIo(conn, socket);
        conn.kind = socket.alpnProtocol === 'h2' ? 'h2' : isHttp1 ? 'http1' : 'other';
        markIdle(conn);
        if (this.draining && conn.kind === 'other') this.tell([], [socket]);
      });
    }
    this.on('session', (session: http2.Http2Session) => {
      this.sessions.add(session);
      if (this.draining) this.sessions.goaway(session, this.limits.graceMs);
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
    return this.conns.states(this.sessions.openStreams());
  }

  /** handsOverSockets: the application may hand this listener's upgraded or other-protocol connections over (the handOverSockets option). */
  get handsOverSockets(): boolean {
    return this.options.handOverSockets === true && !this.isTls;
  }

  private track(raw: net.Socket, kind: Kind): Conn {
    const conn = this.add(raw, raw, kind);
    raw.once('close', () => this.closed(conn));
    return conn;
  }

  /** add records a connection; one of another protocol accepted during a drain is given to onDrain at once. */
  private add(raw: net.Socket, io: net.Socket, kind: Kind): Conn {
    const conn = this.conns.add(raw, io, kind);
    if (this.draining && kind === 'other') this.tell([], [io]);
    return conn;
  }

  /** closed: conn closed; during a drain it counts as drained unless it was passed or destroyed. */
  private closed(conn: Conn): void {
    if (this.draining && !conn.moving && !conn.forced) this.moved.drained++;
    this.conns.remove(conn);
    this.run?.changed();
  }

  /** owns: socket is a connection of this listener (the accepted socket, or the one its protocol runs on). */
  owns(socket: net.Socket): boolean {
    return this.conns.has(socket);
  }

  /**
   * adoptSocket tracks socket, handed over by the predecessor with the
   * application's state, as a connection of this listener: upgraded on an
   * HTTP server, other on a plain net.Server.
   */
  adoptSocket(socket: net.Socket): 'upgraded' | 'other' {
    const kind = this.movable ? 'upgraded' : 'other';
    this.track(socket, kind);
    return kind;
  }

  /**
   * handOverSocket passes socket, a connection of this listener that the
   * application owns, to the new instance with state and head (see
   * socket-pass.ts for the checks and the codes), and counts it.
   */
  async handOverSocket(socket: net.Socket, state: unknown, options?: HandOverOptions): Promise<void> {
    const conn = this.conns.byProtocol(socket) ?? this.conns.byAccepted(socket);
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

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.requests++;
    if (req.httpVersionMajor === 2) return; // the compatibility API over a session: GOAWAY handles it
    const conn = this.conns.byProtocol(req.socket);
    if (!conn || conn.kind === 'upgraded') return;
    followRequest(conn, req, res, this.http1);
  }

  private idle(conn: Conn): void {
    markIdle(conn);
    // At once, before the client can send its next request on it (it needs our answer first).
    if (this.draining && this.mayMove(conn)) setImmediate(() => this.tryMove(conn));
  }

  /** mayMove: conn is one a drain passes to the new instance, once it is at a request boundary. */
  private mayMove(conn: Conn): boolean {
    return this.mover !== null && canMove(conn);
  }

  private tryMove(conn: Conn): void {
    if (this.mover) tryMove(conn, this.mover, this.name, this.moved);
  }

  private onUpgrade(socket: net.Socket): void {
    const conn = this.conns.byProtocol(socket);
    if (!conn) return;
    conn.kind = 'upgraded';
    conn.queue = [];
    if (this.draining) this.tell([socket], []);
  }

  private tell(upgraded: net.Socket[], connections: net.Socket[]): void {
    const hook = this.options.onDrain;
    if (!hook) return;
    try {
      hook({ listener: this.name, upgraded, connections, upgradedDeadline: this.limits.upgradedDeadline, deadline: this.limits.deadline });
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
    this.limits = drainLimits(now, idleGraceMs, deadline, this.options.upgradedTimeout);
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
    const run = new DrainRun(this.conns, this.limits, this.moved, this.name, (t) => this.sweep(t, idleGraceMs));
    this.run = run;
    return run.done;
  }

  /** sweep: each HTTP/1 connection with nothing queued is passed (if it may move) or, idle for graceMs, ended. */
  private sweep(now: number, graceMs: number): void {
    for (const c of this.conns.values()) {
      if (c.kind !== 'http1' || c.ending || c.queue.length > 0) continue;
      if (this.mayMove(c)) {
        this.tryMove(c);
        continue;
      }
      if (c.moving) continue;
      endIfIdle(c, now, graceMs);
    }
  }

  /** reset ends a drain (a drain under way resolves at once): connections keep alive again. */
  reset(): void {
    this.draining = false;
    this.mover = null;
    this.socketMover = null;
    const run = this.run;
    this.run = null;
    run?.cancel();
  }

  /** dispose stops tracking. */
  dispose(): void {
    for (const d of this.detach.splice(0)) d();
  }
}
