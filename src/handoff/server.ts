/**
 * listenAndServe: serve descriptors to every process that connects to a UNIX
 * socket, as gobwas/graceful's ListenAndServe does.
 */
import { EventEmitter } from 'node:events';
import { debuglog } from 'node:util';
import { addon, AGAIN, POLL_READABLE, type PeerCredentials, type Poller } from '../native.js';
import { errorCode, HandoffFailedError, invalidArgument } from '../errors.js';
import { clearStaleSocket, SocketFile } from '../socketpath.js';
import type { Meta } from '../meta.js';
import { HandoffConnection, type ConnectionOptions, type OutgoingFd } from './connection.js';
import { awaitConfirmation } from './confirm.js';

const debug = debuglog('graceful');

/** HandoffResponse: what a handler writes descriptors to, for one client. */
export class HandoffResponse {
  private queued: OutgoingFd[] = [];

  constructor(readonly connection: HandoffConnection) {}

  /** peer: SO_PEERCRED of the client (pid, uid, gid). */
  peer(): PeerCredentials {
    return this.connection.peer();
  }

  /** send queues fd with its meta; the fd must stay open until flush() resolves. */
  send(fd: number, meta?: Meta | Uint8Array | null): void {
    if (!Number.isInteger(fd) || fd < 0) throw invalidArgument('send', `fd must be a non-negative integer, got ${String(fd)}`);
    this.queued.push({ fd, meta });
  }

  /** flush writes what send() queued, in as few messages as fit. */
  flush(): Promise<void> {
    const items = this.queued;
    this.queued = [];
    return this.connection.send(items);
  }
}

/** Handler: serves one client, queueing descriptors on the response. */
export type Handler = (res: HandoffResponse) => void | Promise<void>;

export interface ListenAndServeOptions extends ConnectionOptions {
  /** File mode of the socket (default 0o600). */
  mode?: number;
  /** listen(2) backlog (default 64). */
  backlog?: number;
  /**
   * ms to wait, after a client's last descriptor, for its confirmation that
   * it took them (receive() sends one; see confirm.ts): 'confirmed' or
   * 'unconfirmed' follows 'served'. 0 (the default): none is asked for, as
   * gobwas/graceful. A client that does not confirm (a Go one, a program
   * that connected by mistake) is told by its close, not by the timeout.
   */
  confirm?: number;
}

/** First and longest pause of accepting after accept(2) failed for want of descriptors or memory. */
const ACCEPT_RETRY_MIN_MS = 10;
const ACCEPT_RETRY_MAX_MS = 1000;
/** accept(2) errors that concern one client only: accept the next one at once. */
const PER_CLIENT_ERRORS = new Set(['ECONNABORTED', 'EPROTO', 'EPERM']);

/**
 * HandoffServer: the socket listenAndServe listens on. Events: 'connection'
 * (peer), 'served' (peer), with the `confirm` option then 'confirmed' (peer:
 * the client said it took every descriptor) or 'unconfirmed' (peer: it
 * closed, sent something else, or said nothing in time), 'clientError'
 * (error, peer); a client's failure never throws.
 *
 * When accept(2) fails for a reason that is not the client's (EMFILE or
 * ENFILE: no descriptor free; ENOBUFS, ENOMEM), the client stays queued in
 * the backlog, and the readable poll would report it again at once, forever.
 * So the server stops polling, emits one 'clientError' (peer null) for the
 * episode, and tries again after a pause (10 ms, doubling up to 1 s) or as
 * soon as one of its own connections closes, whichever comes first. The
 * episode ends when a client is accepted. A poll error (POLLERR, which stops
 * the libuv handle) is handled the same way.
 */
export class HandoffServer extends EventEmitter {
  private readonly poller: Poller;
  private readonly file: SocketFile;
  private readonly connections = new Set<HandoffConnection>();
  private closed = false;
  private idle: (() => void) | null = null;
  private referenced = true;
  /** While accepting is paused: the timer of the next try. */
  private retry: NodeJS.Timeout | null = null;
  private retryDelay = 0;

  constructor(readonly path: string, readonly fd: number, private readonly handler: Handler,
    private readonly options: ListenAndServeOptions) {
    super();
    this.file = new SocketFile(path);
    this.poller = new addon.Poller(fd, (status) => this.onReadable(status));
    this.poller.start(POLL_READABLE);
  }

  private onReadable(status: number): void {
    if (this.closed) return;
    if (status < 0) {
      // libuv stopped the handle: accept what waits (accept(2) may say why), and poll again after a pause.
      debug('hand-off server %s: poll status %d', this.path, status);
      if (this.acceptAll()) {
        this.pause(new HandoffFailedError(`poll reported an error (status ${status}) on the hand-off server socket ${this.path}: accepting again shortly`));
      }
      return;
    }
    this.acceptAll();
  }

  /** acceptAll accepts every client waiting; false when it had to pause. */
  private acceptAll(): boolean {
    for (;;) {
      // A handler may close the server while it is served (one client only): accept no more.
      if (this.closed) return true;
      let fd: number;
      try {
        fd = addon.accept(this.fd);
      } catch (err) {
        if (PER_CLIENT_ERRORS.has(errorCode(err) ?? '')) {
          debug('hand-off server %s: accept: %s', this.path, (err as Error).message);
          continue;
        }
        this.pause(err as Error);
        return false;
      }
      if (fd === AGAIN) return true;
      this.retryDelay = 0;
      void this.serve(new HandoffConnection(fd, this.options.confirm ? { ...this.options, applicationData: true } : this.options));
    }
  }

  /** pause stops polling until a retry timer fires or a connection closes; one 'clientError' per episode. */
  private pause(err: Error): void {
    if (this.retry || this.closed) return;
    const first = this.retryDelay === 0;
    this.retryDelay = first ? ACCEPT_RETRY_MIN_MS : Math.min(this.retryDelay * 2, ACCEPT_RETRY_MAX_MS);
    debug('hand-off server %s: cannot accept (%s): trying again in %d ms', this.path, errorCode(err), this.retryDelay);
    this.poller.start(0);
    this.retry = setTimeout(() => this.resume(), this.retryDelay);
    if (!this.referenced) this.retry.unref();
    if (first) this.emit('clientError', err, null);
  }

  /** resume tries to accept again, and polls again unless it had to pause once more. */
  private resume(): void {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    if (this.closed) return;
    // The episode (and its backoff) ends at the next client accepted, not here: a poll error that
    // persists keeps backing off up to the longest pause, with no new 'clientError'.
    if (this.acceptAll()) {
      this.poller.start(POLL_READABLE);
      if (!this.referenced) this.poller.unref();
    }
  }

  private async serve(conn: HandoffConnection): Promise<void> {
    this.connections.add(conn);
    let peer: PeerCredentials | null = null;
    try {
      peer = conn.peer();
      this.emit('connection', peer);
      const res = new HandoffResponse(conn);
      await this.handler(res);
      await res.flush();
      this.emit('served', peer);
      if (this.options.confirm) this.emit(await awaitConfirmation(conn, this.options.confirm) ? 'confirmed' : 'unconfirmed', peer);
    } catch (err) {
      debug('hand-off server %s: client %j failed: %s', this.path, peer, (err as Error).message);
      if (this.listenerCount('clientError') > 0) this.emit('clientError', err, peer);
    } finally {
      conn.close();
      this.connections.delete(conn);
      if (this.retry) this.resume(); // a descriptor is free now
      if (this.connections.size === 0) this.idle?.();
    }
  }

  /** ref / unref: whether the listening socket keeps the event loop alive (it does by default). */
  ref(): this {
    this.referenced = true;
    this.poller.ref();
    this.retry?.ref();
    return this;
  }

  unref(): this {
    this.referenced = false;
    this.poller.unref();
    this.retry?.unref();
    return this;
  }

  /**
   * close stops accepting, removes the socket file (if it is still the one
   * bound here) and resolves once every client being served is done.
   */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      if (this.retry) clearTimeout(this.retry);
      this.retry = null;
      this.poller.close();
      addon.close(this.fd);
      this.file.remove();
    }
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const prev = this.idle;
      this.idle = () => {
        prev?.();
        resolve();
      };
    });
  }
}

/**
 * listenAndServe listens on the UNIX socket at path and calls handler for
 * every client; what the handler queued is flushed and the connection closed
 * when it returns. A stale socket file is replaced; a live one, or a path
 * that is not a socket, throws. Throws synchronously; never crashes on a bad
 * client.
 */
export function listenAndServe(path: string, handler: Handler, options: ListenAndServeOptions = {}): HandoffServer {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('listenAndServe', 'path must be a non-empty string');
  if (typeof handler !== 'function') throw invalidArgument('listenAndServe', 'handler must be a function');
  const mode = options.mode ?? 0o600;
  if (options.confirm !== undefined && !(Number.isFinite(options.confirm) && options.confirm >= 0)) {
    throw invalidArgument('listenAndServe', `confirm must be a number of ms (0: none), got ${String(options.confirm)}`);
  }
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw invalidArgument('listenAndServe', `mode must be a file mode such as 0o600, got ${String(mode)}`);
  clearStaleSocket(path, 'listenAndServe');
  const fd = addon.listen(path, mode, options.backlog ?? 64);
  try {
    return new HandoffServer(path, fd, handler, options);
  } catch (err) {
    addon.close(fd);
    throw err;
  }
}
