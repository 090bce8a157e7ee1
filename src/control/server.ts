/**
 * ControlServer: the UNIX socket on which an administrator runs commands
 * inside the process, in plain text (`nc -U app.sock`) or JSON. Each
 * connection's SO_PEERCRED uid must be ours, root's, or allowed. Connections
 * are handed to the next instance at a redeploy and go on there.
 */
import net from 'node:net';
import { debuglog } from 'node:util';
import { addon, type PeerCredentials } from '../native.js';
import { errorCode, invalidArgument, UsageError } from '../errors.js';
import type { Meta } from '../meta.js';
import { fdOf, listenOnFd, socketFromFd } from '../fds.js';
import { clearStaleSocket, SocketFile } from '../socketpath.js';
import { closeAll, type OutgoingFd } from '../handoff/connection.js';
import { CommandRegistry, formatResult, type CommandContext } from './commands.js';
import { parseRequest, MAX_LINE_BYTES, type ControlRequest } from './parse.js';

const debug = debuglog('graceful');

export interface ControlServerOptions {
  /** File mode of the socket (default 0o600). */
  mode?: number;
  /** uids allowed besides ours and root. */
  allowUids?: number[];
  /** ms a connection may stay silent with no command running (default 300 s). */
  idleTimeout?: number;
  /** Most connections at once (default 64). */
  maxConnections?: number;
}

type Reply = Record<string, unknown>;

/** One client connection. */
class ControlConnection {
  private buffer = '';
  private queue: string[] = [];
  private busy = false;
  private closed = false;
  private readonly abort = new AbortController();
  /** Set while this connection runs `redeploy`: it is handed over, then finishes here. */
  handingOver = false;
  /** Paused for a hand-off: input stays in the kernel (and in `buffer`) for the next instance. */
  private paused = false;

  constructor(readonly socket: net.Socket, readonly peer: PeerCredentials, private readonly server: ControlServer) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => debug('control connection: %s', err.message));
    socket.on('close', () => this.onClose());
    socket.setTimeout(server.idleTimeout, () => this.onIdle());
  }

  get isBusy(): boolean {
    return this.busy;
  }

  get pending(): string {
    return [...this.queue.map((l) => `${l}\n`), this.buffer].join('');
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (;;) {
      const nl = this.buffer.indexOf('\n');
      if (nl < 0) break;
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      if (Buffer.byteLength(line) > MAX_LINE_BYTES) return this.refuse('ERR_GRACEFUL_LINE_TOO_LONG', `line too long: the limit is ${MAX_LINE_BYTES} bytes`);
      this.queue.push(line);
    }
    if (Buffer.byteLength(this.buffer) > MAX_LINE_BYTES) return this.refuse('ERR_GRACEFUL_LINE_TOO_LONG', `line too long: the limit is ${MAX_LINE_BYTES} bytes`);
    void this.pump();
  }

  /** feed replays input a predecessor had read but not run. */
  feed(pending: string): void {
    if (pending) this.onData(pending);
  }

  pause(): void {
    this.paused = true;
    this.socket.pause();
  }

  resume(): void {
    this.paused = false;
    this.socket.resume();
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.busy || this.paused || this.closed) return;
    const line = this.queue.shift();
    if (line === undefined) return;
    this.busy = true;
    this.socket.setTimeout(0);
    let oneshot = false;
    try {
      let req: ControlRequest | null;
      try {
        req = parseRequest(line);
      } catch (err) {
        this.reply((err as { json?: boolean }).json === true, undefined, err as Error);
        return;
      }
      if (!req) return;
      if (req.cmd === 'oneshot' && !req.json) {
        oneshot = true;
        if (req.args.length === 0) {
          this.reply(false, undefined, new UsageError('usage: oneshot <command> [args...]'));
          return;
        }
        req = { cmd: req.args[0]!, args: req.args.slice(1), json: false };
      }
      if (req.cmd === 'quit' || req.cmd === 'exit') {
        this.reply(req.json, req.id, null, null);
        this.closed = true;
        this.socket.end();
        return;
      }
      await this.run(req);
    } finally {
      this.busy = false;
      if (oneshot && !this.closed) {
        this.closed = true;
        this.socket.end();
      }
      if (this.handingOver) {
        // This connection ran `redeploy`: its reply is written; the new
        // instance serves it from now on, or, if the redeploy failed, we go on.
        this.handingOver = false;
        if (this.server.handedOver) this.release();
        else this.resume();
      }
      if (!this.closed) {
        this.socket.setTimeout(this.server.idleTimeout);
        void this.pump();
      }
    }
  }

  private async run(req: ControlRequest): Promise<void> {
    const write = (obj: Reply, text: string | null) => {
      if (this.closed || this.socket.destroyed) return;
      if (req.json) this.socket.write(`${JSON.stringify(req.id === undefined ? obj : { id: req.id, ...obj })}\n`);
      else if (text !== null) this.socket.write(`${text}\n`);
    };
    const ctx: CommandContext = {
      name: req.cmd,
      args: req.args,
      json: req.json,
      peer: this.peer,
      signal: this.abort.signal,
      write: (line) => write({ event: 'output', line }, line),
      event: (event, text) => write(event, text),
      handover: () => {
        this.handingOver = true;
      },
    };
    try {
      const { command } = this.server.commands.get(req.cmd);
      const { minArgs = 0, maxArgs = Infinity } = command;
      if (req.args.length < minArgs || req.args.length > maxArgs) throw new UsageError(`usage: ${command.usage}`);
      const result = await command.run(ctx);
      if (!req.json) for (const line of formatResult(result)) write({}, line);
      this.reply(req.json, req.id, null, result);
    } catch (err) {
      this.reply(req.json, req.id, err as Error);
    }
  }

  private reply(json: boolean, id: string | number | undefined, err: Error | null, result?: unknown): void {
    if (this.socket.destroyed) return;
    let line: string;
    if (json) {
      const body: Reply = err
        ? { ok: false, error: { code: errorCode(err) ?? 'ERR_GRACEFUL_COMMAND_FAILED', message: err.message } }
        : { ok: true, result: result ?? null };
      line = JSON.stringify(id === undefined ? body : { id, ...body });
    } else {
      line = err ? `error: ${err.message.replace(/\n/g, ' ')}` : 'ok';
    }
    this.socket.write(`${line}\n`);
  }

  private refuse(code: string, message: string): void {
    debug('control connection refused: %s', message);
    this.queue = [];
    this.buffer = '';
    this.closed = true;
    this.socket.end(`error: ${message}\n`);
    void code;
  }

  private onIdle(): void {
    if (this.busy || this.closed) return;
    this.refuse('ERR_GRACEFUL_IDLE_TIMEOUT', `idle for ${this.server.idleTimeout} ms: closing`);
  }

  private onClose(): void {
    this.closed = true;
    this.abort.abort();
    this.server.forget(this);
  }

  /** release drops this process's copy without a FIN: the next instance keeps the connection. */
  release(): void {
    this.closed = true;
    this.abort.abort();
    this.socket.destroy();
  }
}

export class ControlServer {
  readonly commands = new CommandRegistry();
  readonly idleTimeout: number;
  private readonly server: net.Server;
  private readonly connections = new Set<ControlConnection>();
  private readonly allowUids: Set<number>;
  private readonly maxConnections: number;
  private file: SocketFile | null = null;
  private paused: ControlConnection[] = [];
  private spare: number | null = null;
  /** Set once a new instance took over the connections. */
  handedOver = false;

  constructor(readonly path: string, private readonly options: ControlServerOptions = {}) {
    this.idleTimeout = options.idleTimeout ?? 300_000;
    this.maxConnections = options.maxConnections ?? 64;
    this.allowUids = new Set([process.getuid?.() ?? 0, 0, ...(options.allowUids ?? [])]);
    const mode = options.mode ?? 0o600;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw invalidArgument('controlSocket', `mode must be a file mode such as 0o600, got ${String(mode)}`);
    this.server = net.createServer((socket) => this.accept(socket));
    this.server.on('error', (err) => debug('control server: %s', err.message));
  }

  /** listen binds the socket (replacing a stale file, refusing a live one) or listens on an inherited fd. */
  async listen(inheritedFd?: number): Promise<void> {
    if (inheritedFd !== undefined) {
      await listenOnFd(this.server, inheritedFd);
    } else {
      clearStaleSocket(this.path, 'controlSocket');
      await listenOnFd(this.server, addon.listen(this.path, this.options.mode ?? 0o600, 64)); // it owns the fd, even on failure
    }
    this.file = new SocketFile(this.path);
  }

  private accept(socket: net.Socket, pending = ''): ControlConnection | null {
    let peer: PeerCredentials;
    try {
      peer = addon.peercred(fdOf(socket));
    } catch (err) {
      socket.destroy();
      debug('control: no peer credentials: %s', (err as Error).message);
      return null;
    }
    if (!this.allowUids.has(peer.uid)) {
      socket.end(`error: permission denied: uid ${peer.uid} may not use this socket (the server runs as uid ${process.getuid?.()}; allow it with controlAllowUids)\n`);
      debug('control: refused uid %d (pid %d)', peer.uid, peer.pid);
      return null;
    }
    if (this.connections.size >= this.maxConnections) {
      socket.end(`error: too many connections (${this.maxConnections}): try again later\n`);
      return null;
    }
    const conn = new ControlConnection(socket, peer, this);
    this.connections.add(conn);
    conn.feed(pending);
    return conn;
  }

  forget(conn: ControlConnection): void {
    this.connections.delete(conn);
  }

  /** connectionCount: open control connections. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * handoff pauses every connection with no command running (and the one
   * running `redeploy`) and lists them, with the listener, for a new instance.
   */
  handoff(): OutgoingFd[] {
    const out: OutgoingFd[] = [{ fd: fdOf(this.server), meta: { name: 'control', kind: 'control' } }];
    this.paused = [];
    this.closeDups();
    for (const conn of this.connections) {
      if (conn.isBusy && !conn.handingOver) continue; // a streaming command stays here to its end
      // A duplicate is sent: a client may close its connection (a health probe
      // does, right after its reply) while the hand-off is under way, and the
      // socket's own descriptor goes with it. The new instance then reads EOF.
      let fd: number;
      try {
        fd = addon.dup(fdOf(conn.socket));
      } catch {
        continue; // closed already
      }
      this.dups.push(fd);
      conn.pause();
      this.paused.push(conn);
      const meta: Meta = { kind: 'control-conn', pending: conn.pending };
      out.push({ fd, meta });
    }
    return out;
  }

  private dups: number[] = [];

  private closeDups(): void {
    closeAll(this.dups.splice(0));
  }

  /** handoffFailed resumes what handoff paused (the `redeploy` connection resumes after its reply). */
  handoffFailed(): void {
    this.closeDups();
    for (const conn of this.paused.splice(0)) if (!conn.handingOver) conn.resume();
  }

  /**
   * handoffDone drops this process's copies of the connections the new
   * instance now serves, and stops accepting: new clients reach the new
   * instance. A duplicate of the listening socket is kept for takeBack().
   */
  handoffDone(): void {
    this.handedOver = true;
    this.closeDups();
    for (const conn of this.paused.splice(0)) if (!conn.handingOver) conn.release();
    if (this.server.listening) {
      this.spare = addon.dup(fdOf(this.server));
      this.server.close();
    }
  }

  /** takeBack accepts again (the new instance died): on the kept duplicate. */
  async takeBack(): Promise<void> {
    this.handedOver = false;
    const spare = this.spare;
    this.spare = null;
    if (spare !== null) await listenOnFd(this.server, spare); // it owns the fd, even on failure
  }

  /** adopt takes a connection handed over by a predecessor; it starts reading at start(). */
  adopt(fd: number, pending: string): void {
    let socket: net.Socket;
    try {
      socket = socketFromFd(fd);
    } catch (err) {
      closeAll([fd]);
      throw err;
    }
    socket.pause();
    const conn = this.accept(socket, '');
    if (conn) {
      conn.pause();
      conn.feed(pending);
      this.adopted.push(conn);
    }
  }

  private adopted: ControlConnection[] = [];

  /** start lets adopted connections run their commands. */
  start(): void {
    for (const conn of this.adopted.splice(0)) conn.resume();
  }

  /** close stops accepting; with release the socket file goes too (no successor wants it). Connections close. */
  close(release: boolean): void {
    this.closeDups();
    if (this.spare !== null) addon.close(this.spare);
    this.spare = null;
    if (this.server.listening) this.server.close();
    if (release) this.file?.remove();
    for (const conn of this.connections) conn.socket.end();
  }
}
