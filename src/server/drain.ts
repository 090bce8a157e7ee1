/**
 * ConnectionTracker: knows the open connections of one server and closes
 * them without racing a client. Draining, for HTTP/1:
 * - a request that arrives, or a response not yet started, gets
 *   `Connection: close`, so Node closes the connection once it is answered;
 * - a connection with nothing in flight is closed only after it has been idle
 *   for the grace window: a client that just got an answer may already be
 *   sending its next request on it;
 * HTTP/2 sessions get GOAWAY (session.close()) and finish their streams. Other
 * protocols are left to the application ('draining' event) until the deadline,
 * when whatever is still open is destroyed and counted.
 */
import type net from 'node:net';
import http from 'node:http';
import type http2 from 'node:http2';

interface HttpState {
  inflight: Set<http.ServerResponse>;
  idleSince: number;
}

export class ConnectionTracker {
  /** Raw connections, as accepted: what is counted and, at the deadline, destroyed. */
  private readonly sockets = new Set<net.Socket>();
  /** The socket each HTTP/1 request arrives on (a TLSSocket for https). */
  private readonly http = new Map<net.Socket, HttpState>();
  private readonly sessions = new Set<http2.Http2Session>();
  private draining = false;
  /** Called when a connection closes, while a drain waits: it ends as soon as the last one goes. */
  private changed: (() => void) | null = null;
  private cancel: (() => void) | null = null;
  private readonly detach: (() => void)[] = [];

  constructor(readonly server: net.Server) {
    // On plain HTTP/1 the accepted socket carries the requests: it is idle
    // from the start. (Over TLS they arrive on a TLSSocket, known at its
    // first request; HTTP/2 sessions drain by GOAWAY.)
    const plainHttp = server instanceof http.Server;
    const onConnection = (socket: net.Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => {
        this.sockets.delete(socket);
        this.changed?.();
      });
      if (plainHttp) this.httpState(socket);
    };
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => this.onRequest(req, res);
    const onSession = (session: http2.Http2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      if (this.draining) session.close();
    };
    server.on('connection', onConnection);
    // First in line, so the header is set before the application answers.
    server.prependListener('request', onRequest);
    server.on('session', onSession);
    this.detach.push(() => {
      server.off('connection', onConnection);
      server.off('request', onRequest);
      server.off('session', onSession);
    });
  }

  /** count: open connections. */
  get count(): number {
    return this.sockets.size;
  }

  private httpState(socket: net.Socket): HttpState {
    let state = this.http.get(socket);
    if (!state) {
      state = { inflight: new Set(), idleSince: Date.now() };
      this.http.set(socket, state);
      socket.once('close', () => this.http.delete(socket));
    }
    return state;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    if ((req as { httpVersionMajor?: number }).httpVersionMajor === 2) return; // compat API: session handles it
    const st = this.httpState(req.socket);
    st.inflight.add(res);
    if (this.draining) closeAfter(res);
    const done = () => {
      if (st.inflight.delete(res)) st.idleSince = Date.now();
    };
    res.once('finish', done);
    res.once('close', done);
  }

  /**
   * drain stops keep-alive on every connection and resolves once all are
   * closed, or at the deadline after destroying the rest; it resolves with
   * how many it had to destroy.
   */
  drain(idleGraceMs: number, deadline: number): Promise<number> {
    this.draining = true;
    for (const state of this.http.values()) for (const res of state.inflight) closeAfter(res);
    for (const session of this.sessions) session.close();
    return new Promise((resolve) => {
      const tick = () => {
        const now = Date.now();
        for (const [socket, state] of this.http) {
          if (state.inflight.size === 0 && now - state.idleSince >= idleGraceMs) socket.end();
        }
        if (this.sockets.size === 0) {
          finish(0);
        } else if (now >= deadline) {
          const n = this.sockets.size;
          for (const socket of this.sockets) socket.destroy();
          finish(n);
        }
      };
      const timer = setInterval(tick, Math.max(10, Math.min(100, idleGraceMs / 4)));
      let finished = false;
      const finish = (forced: number) => {
        if (finished) return;
        finished = true;
        clearInterval(timer);
        this.changed = null;
        this.cancel = null;
        resolve(forced);
      };
      this.changed = () => {
        if (this.sockets.size === 0) finish(0);
      };
      this.cancel = () => finish(0);
      tick();
    });
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

function closeAfter(res: http.ServerResponse): void {
  if (!res.headersSent) res.setHeader('Connection', 'close');
}
