/**
 * listenAndServe: serve descriptors to every process that connects to a UNIX
 * socket, as gobwas/graceful's ListenAndServe does.
 */
import { EventEmitter } from 'node:events';
import { debuglog } from 'node:util';
import { addon, AGAIN, POLL_READABLE, type PeerCredentials, type Poller } from '../native.js';
import { invalidArgument } from '../errors.js';
import { clearStaleSocket, SocketFile } from '../socketpath.js';
import type { Meta } from '../meta.js';
import { HandoffConnection, type ConnectionOptions, type OutgoingFd } from './connection.js';

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
}

/**
 * HandoffServer: the socket listenAndServe listens on. Events: 'connection'
 * (peer), 'served' (peer), 'clientError' (error, peer); a client's failure
 * never throws.
 */
export class HandoffServer extends EventEmitter {
  private readonly poller: Poller;
  private readonly file: SocketFile;
  private readonly connections = new Set<HandoffConnection>();
  private closed = false;
  private idle: (() => void) | null = null;

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
      debug('hand-off server %s: poll status %d', this.path, status);
      return;
    }
    for (;;) {
      let fd: number;
      try {
        fd = addon.accept(this.fd);
      } catch (err) {
        // EMFILE and friends: the client stays queued; tell whoever listens.
        this.emit('clientError', err, null);
        return;
      }
      if (fd === AGAIN) return;
      void this.serve(new HandoffConnection(fd, this.options));
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
    } catch (err) {
      debug('hand-off server %s: client %j failed: %s', this.path, peer, (err as Error).message);
      if (this.listenerCount('clientError') > 0) this.emit('clientError', err, peer);
    } finally {
      conn.close();
      this.connections.delete(conn);
      if (this.connections.size === 0) this.idle?.();
    }
  }

  /** ref / unref: whether the listening socket keeps the event loop alive (it does by default). */
  ref(): this {
    this.poller.ref();
    return this;
  }

  unref(): this {
    this.poller.unref();
    return this;
  }

  /**
   * close stops accepting, removes the socket file (if it is still the one
   * bound here) and resolves once every client being served is done.
   */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
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
