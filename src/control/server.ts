/**
 * ControlServer: the UNIX socket on which an administrator runs commands
 * inside the process, in plain text (`nc -U app.sock`) or JSON. Each
 * connection's SO_PEERCRED uid must be ours, root's, or allowed. Connections
 * are handed to the next instance at a redeploy and go on there.
 *
 * It holds against a hostile or careless client: every accepted socket has an
 * 'error' listener from its first moment; a refused client gets a coded answer
 * and its descriptor is closed within a bound whatever it does; refusals in
 * flight, queued lines, unread output, idle time and the time a line may take
 * are all bounded; a few slots are kept for `status` probes.
 */
import net from 'node:net';
import { debuglog } from 'node:util';
import { addon, type PeerCredentials } from '../native.js';
import {
  IdleTimeoutError, LineTooLongError, PermissionDeniedError, SlowClientError, TooManyConnectionsError,
  errorCode, invalidArgument, UsageError,
} from '../errors.js';
import type { Meta } from '../meta.js';
import { fdOf, listenOnFd } from '../fds.js';
import { bindSocket, clearStaleSocket, SocketFile } from '../socketpath.js';
import { closeAll, type OutgoingFd } from '../handoff/connection.js';
import { CommandRegistry, formatResult, type CommandContext } from './commands.js';
import { OwnedFd, closeOwned } from '../owned-fd.js';
import { parseRequest, MAX_LINE_BYTES, type ControlRequest } from './parse.js';
import { renderEvent } from './render.js';

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
  /** Connections kept, beyond maxConnections, for `status` probes (default 4). */
  probeConnections?: number;
  /** Refused connections being answered at once; more are closed without an answer (default 16). */
  maxRefused?: number;
  /** ms a line may take from its first byte to its newline (default 10 s). */
  lineTimeout?: number;
  /** ms a client may leave its output unread before it is dropped (default 10 s). */
  writeTimeout?: number;
  /** Lines a connection may queue while a command runs; reading stops beyond (default 32). */
  maxQueuedLines?: number;
  /** Unread output a connection may hold before it is dropped (default 1 MiB). */
  maxOutputBytes?: number;
  /** Where the reasons for dropped connections go (default: NODE_DEBUG=graceful). */
  log?: (message: string) => void;
}

/** ControlLimits: the bounds of ControlServerOptions, as GracefulServer's controlLimits option takes them. */
export type ControlLimits = Pick<ControlServerOptions, 'maxConnections' | 'probeConnections' | 'maxRefused' | 'lineTimeout' |
  'writeTimeout' | 'maxQueuedLines' | 'maxOutputBytes'>;

/** Defaults of ControlServerOptions. */
export const CONTROL_DEFAULTS = {
  idleTimeout: 300_000,
  maxConnections: 64,
  probeConnections: 4,
  maxRefused: 16,
  lineTimeout: 10_000,
  writeTimeout: 10_000,
  maxQueuedLines: 32,
  maxOutputBytes: 1024 * 1024,
} as const;

/** ms a refused client has to send its first line (to learn its mode) and then to read the answer. */
const REFUSAL_WAIT = 500;
const REFUSAL_LINGER = 1_000;
/** ms a probe connection may stay silent. */
const PROBE_IDLE = 5_000;
/** The most base64 of unrun input a connection takes along at a hand-off (a meta must fit one message). */
const MAX_PENDING_META = 2048;
const NEWLINE = Buffer.from('\n');
/** Reading a connection stops while this much input waits, whatever the number of lines. */
const MAX_QUEUED_BYTES = 128 * 1024;
/** Commands a probe connection may run. */
const PROBE_COMMANDS = new Set(['status', 'health', 'help', 'quit', 'exit']);

type Reply = Record<string, unknown>;

interface Handle {
  reading?: boolean;
  readStop?(): number;
  readStart?(): number;
}

/** stopReading stops libuv reading the socket for real (socket.pause() alone does not). */
function stopReading(socket: net.Socket): void {
  socket.pause();
  const handle = (socket as unknown as { _handle?: Handle | null })._handle;
  if (handle?.reading && handle.readStop) {
    handle.reading = false; // so that resume() starts it again
    handle.readStop();
  }
}

/**
 * startReading undoes stopReading. The handle is started here, not by
 * resume(): after a read() that found nothing the stream believes a read is
 * under way and would never start the handle again.
 */
function startReading(socket: net.Socket): void {
  socket.resume();
  const handle = (socket as unknown as { _handle?: Handle | null })._handle;
  if (handle && !handle.reading && handle.readStart && !socket.destroyed) {
    handle.reading = true;
    const err = handle.readStart();
    if (err) socket.destroy();
  }
}

/** refusalLine is the answer to a refused client, in the mode its first line used. */
function refusalLine(json: boolean, code: string, message: string): string {
  return json ? `${JSON.stringify({ ok: false, error: { code, message } })}\n` : `error: ${message}\n`;
}

/** One client connection. */
class ControlConnection {
  /** Bytes of a line not yet ended. */
  private partial: Buffer = Buffer.alloc(0);
  /** Whole lines not run yet, as read (without their newline). */
  private queue: Buffer[] = [];
  private busy = false;
  closed = false;
  private readonly abort = new AbortController();
  /** Set while this connection runs `redeploy`: it is handed over, then finishes here. */
  handingOver = false;
  /** The line of the persistent command running, if one is (see Command.persistent). */
  persistentLine: string | null = null;
  /** Output of the running command is dropped: its connection is being handed over with it. */
  private muted = false;
  /** Adopted with a persistent command: the marker line goes before it runs again. */
  private announce = false;
  /** Paused for a hand-off: input stays in the kernel (and in `queue`) for the next instance. */
  private paused = false;
  /** Set once this process ran anything for the client: only then may it end the connection. */
  served = false;
  /** The mode of the last line, for unsolicited answers (a timeout). */
  private json = false;
  private lineTimer: NodeJS.Timeout | null = null;
  private writeTimer: NodeJS.Timeout | null = null;
  /** Set by release(): this process lets the connection go and must never shut it down. */
  private released = false;
  /** Resolves once everything written so far went to the kernel. */
  private flushed: Promise<void> = Promise.resolve();

  constructor(readonly socket: net.Socket, readonly peer: PeerCredentials, private readonly server: ControlServer, readonly probe: boolean, paused = false) {
    this.paused = paused;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.onClose());
    socket.on('drain', () => this.onDrain());
    socket.on('timeout', () => this.onIdle());
    if (!paused) this.armIdle();
  }

  /** armIdle starts the idle timer (never while paused: an adopted connection is not ours to close yet). */
  private armIdle(): void {
    this.socket.setTimeout(this.probe ? Math.min(PROBE_IDLE, this.server.opts.idleTimeout) : this.server.opts.idleTimeout);
  }

  get isBusy(): boolean {
    return this.busy;
  }

  /** hasQueued: lines read from the client wait to run here (not paused for a hand-off, not closed). */
  get hasQueued(): boolean {
    return !this.closed && !this.paused && !this.released && this.queue.length > 0;
  }

  /** pending: the bytes read from the client and not run yet, exactly. */
  get pending(): Buffer {
    return Buffer.concat([...this.queue.flatMap((l) => [l, NEWLINE]), this.partial]);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    let data = this.partial.length > 0 ? Buffer.concat([this.partial, chunk]) : chunk;
    for (;;) {
      const nl = data.indexOf(0x0a);
      if (nl < 0) break;
      if (nl > MAX_LINE_BYTES) return this.refuse(new LineTooLongError(`line too long: the limit is ${MAX_LINE_BYTES} bytes`));
      const line = Buffer.from(data.subarray(0, nl));
      data = data.subarray(nl + 1);
      this.json = line.toString('latin1').trimStart().startsWith('{');
      this.queue.push(line);
    }
    if (data.length > MAX_LINE_BYTES) return this.refuse(new LineTooLongError(`line too long: the limit is ${MAX_LINE_BYTES} bytes`));
    this.partial = Buffer.from(data);
    this.armLineTimer();
    if (this.queueFull()) this.stopInput();
    void this.pump();
  }

  /** armLineTimer bounds how long a started line may take (slowloris). */
  private armLineTimer(): void {
    if (this.partial.length === 0) {
      if (this.lineTimer) clearTimeout(this.lineTimer);
      this.lineTimer = null;
    } else if (!this.lineTimer && !this.paused) {
      const ms = this.server.opts.lineTimeout;
      this.lineTimer = setTimeout(() => {
        this.lineTimer = null;
        // Answered (best effort, coded in JSON mode), then closed within writeTimeout whatever the client does.
        this.refuse(new SlowClientError(`a line took longer than ${ms} ms to arrive: closing; send whole lines`));
      }, ms);
      this.lineTimer.unref();
    }
  }

  /** feed replays input a predecessor had read but not run; persist is the line of a persistent command it was running. */
  feed(pending: Buffer, persist?: string): void {
    if (persist !== undefined) {
      this.queue.push(Buffer.from(persist, 'utf8'));
      this.announce = true;
    }
    if (pending.length > 0) this.onData(pending);
  }

  /** mute drops the running command's output while the connection is handed over; unmute after a failed hand-off. */
  mute(on: boolean): void {
    this.muted = on;
  }

  /**
   * pause stops reading for a hand-off: libuv stops reading the descriptor,
   * and what Node had read already but not delivered joins `pending`, so the
   * next instance gets exactly the bytes this one did not run.
   */
  pause(): void {
    this.paused = true;
    this.socket.setTimeout(0);
    while (this.socket.read() !== null) { /* delivered to onData through 'data' */ }
    this.stopInput();
  }

  resume(): void {
    if (this.closed) return;
    this.paused = false;
    if (!this.busy) this.armIdle();
    this.maybeRead();
    void this.pump();
  }

  /** maybeRead reads again once the queue and the output have room. */
  private maybeRead(): void {
    if (this.closed || this.paused) return;
    if (!this.queueFull() && !this.socket.writableNeedDrain) {
      startReading(this.socket);
      this.armLineTimer();
    }
  }

  /** queueFull: maxQueuedLines wait, or MAX_QUEUED_BYTES of them (long lines). */
  private queueFull(): boolean {
    if (this.queue.length >= this.server.opts.maxQueuedLines) return true;
    let bytes = this.partial.length;
    for (const l of this.queue) bytes += l.length;
    return bytes >= MAX_QUEUED_BYTES;
  }

  /** stopInput stops reading; the line timer stops too, as a line cut by our own pause is not the client's delay. */
  private stopInput(): void {
    stopReading(this.socket);
    if (this.lineTimer) clearTimeout(this.lineTimer);
    this.lineTimer = null;
  }

  private async pump(): Promise<void> {
    if (this.busy || this.paused || this.closed) return;
    if (this.socket.writableNeedDrain) {
      this.stopInput(); // 'drain' pumps again
      return;
    }
    const raw = this.queue.shift();
    if (raw === undefined) return;
    const line = raw.toString('utf8');
    this.maybeRead();
    this.busy = true;
    this.served = true;
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
      if (this.probe && !PROBE_COMMANDS.has(req.cmd)) {
        this.refuse(new TooManyConnectionsError(
          `too many connections (${this.server.opts.maxConnections}): this one, kept for probes, runs only status and help; try again later`,
        ), req.json);
        return;
      }
      if (req.cmd === 'quit' || req.cmd === 'exit') {
        this.reply(req.json, req.id, null, null);
        this.end();
        return;
      }
      await this.run(req, line);
    } finally {
      this.busy = false;
      if (oneshot && !this.closed) this.end();
      if (this.handingOver) {
        // This connection ran `redeploy`: its reply is written; the new
        // instance serves it from now on, or, if the redeploy failed, we go on.
        this.handingOver = false;
        if (this.server.handedOver) this.release();
        else this.resume();
      }
      if (!this.closed) {
        if (!this.paused) this.armIdle();
        void this.pump();
      }
      this.server.progressed();
    }
  }

  /**
   * send writes text and tells whether the client keeps up: past
   * maxOutputBytes unread it is dropped; output unread for writeTimeout too.
   */
  private send(text: string): boolean {
    if (this.closed || this.socket.destroyed || !this.socket.writable) return false;
    let ok = false;
    this.flushed = new Promise((resolve) => {
      ok = this.socket.write(text, () => resolve()); // called once in the kernel, or with the error that ended it
    });
    if (this.socket.writableLength > this.server.opts.maxOutputBytes) {
      this.drop(new SlowClientError(`the client left ${this.socket.writableLength} bytes of output unread (the limit is ${this.server.opts.maxOutputBytes}): dropping it`));
      return false;
    }
    if (!ok && !this.writeTimer) {
      const ms = this.server.opts.writeTimeout;
      this.writeTimer = setTimeout(() => {
        this.writeTimer = null;
        this.drop(new SlowClientError(`the client read none of its output for ${ms} ms: dropping it`));
      }, ms);
      this.writeTimer.unref();
    }
    return ok;
  }

  private onDrain(): void {
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.writeTimer = null;
    this.drainWaiters.splice(0).forEach((w) => w());
    this.maybeRead();
    void this.pump();
  }

  private drainWaiters: (() => void)[] = [];

  /** drained resolves once the client read what was written, or left. */
  private drained(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private async run(req: ControlRequest, line: string): Promise<void> {
    const write = (obj: Reply, text: string | null): boolean => {
      if (this.muted) return !this.closed; // handed over with the command: the new instance writes from here on
      if (req.json) return this.send(`${JSON.stringify(req.id === undefined ? obj : { id: req.id, ...obj })}\n`);
      if (text !== null) return this.send(`${text}\n`);
      return !this.closed;
    };
    const ctx: CommandContext = {
      name: req.cmd,
      args: req.args,
      json: req.json,
      peer: this.peer,
      signal: this.abort.signal,
      write: (line) => write({ event: 'output', line }, line),
      event: (event, text) => write(event, text),
      drain: () => this.drained(),
      handover: () => {
        this.handingOver = true;
      },
    };
    if (this.announce) {
      this.announce = false;
      const served = { event: 'served', pid: process.pid };
      write(served, renderEvent(served));
    }
    try {
      const { command } = this.server.commands.get(req.cmd);
      const { minArgs = 0, maxArgs = Infinity } = command;
      if (req.args.length < minArgs || req.args.length > maxArgs) throw new UsageError(`usage: ${command.usage}`);
      this.persistentLine = command.persistent === true ? line : null;
      let result: unknown;
      try {
        result = await command.run(ctx);
      } finally {
        this.persistentLine = null;
      }
      if (!req.json) for (const line of formatResult(result)) write({}, line);
      this.reply(req.json, req.id, null, result);
    } catch (err) {
      this.reply(req.json, req.id, err as Error);
    }
  }

  private reply(json: boolean, id: string | number | undefined, err: Error | null, result?: unknown): void {
    // A persistent command that ends while handed over is answered by the new instance, which runs it again.
    if (this.muted) return;
    let line: string;
    if (json) {
      const body: Reply = err
        ? { ok: false, error: { code: errorCode(err) ?? 'ERR_GRACEFUL_COMMAND_FAILED', message: err.message } }
        : { ok: true, result: result ?? null };
      line = JSON.stringify(id === undefined ? body : { id, ...body });
    } else {
      line = err ? `error: ${err.message.replace(/\n/g, ' ')}` : 'ok';
    }
    this.send(`${line}\n`);
  }

  /** refuse answers err (coded in JSON mode) and ends the connection; it is destroyed if the client does not read. */
  private refuse(err: Error & { code: string }, json = this.json): void {
    if (this.closed) return;
    this.server.logDrop(this, err.message);
    this.send(refusalLine(json, err.code, err.message));
    this.end();
  }

  /** drop destroys a connection whose client does not keep up, with a logged reason. */
  private drop(err: Error): void {
    if (this.closed) return;
    this.server.logDrop(this, err.message);
    this.closed = true;
    this.abort.abort();
    this.socket.destroy();
  }

  /** end sends what is queued and a FIN; a client that reads none of it is destroyed after writeTimeout. */
  end(): void {
    if (this.socket.destroyed || this.released) return;
    this.closed = true;
    this.abort.abort();
    this.socket.end();
    startReading(this.socket); // read on to the client's EOF, which closes the descriptor
    setTimeout(() => this.socket.destroy(), this.server.opts.writeTimeout).unref();
  }

  private onIdle(): void {
    if (this.busy || this.closed || this.paused) return;
    this.refuse(new IdleTimeoutError(`idle for ${this.socket.timeout} ms: closing`));
  }

  private onClose(): void {
    this.closed = true;
    for (const t of [this.lineTimer, this.writeTimer]) if (t) clearTimeout(t);
    this.drainWaiters.splice(0).forEach((w) => w());
    this.abort.abort();
    this.server.forget(this);
    this.server.progressed();
  }

  /**
   * release drops this process's copy without a FIN (never shutdown()): the
   * next instance keeps the connection. What was written here is flushed
   * first (bounded by writeTimeout), so a reply is never cut.
   */
  release(): void {
    if (this.socket.destroyed || this.released) return;
    this.released = true;
    this.closed = true;
    this.abort.abort();
    this.stopInput();
    const timer = setTimeout(() => this.socket.destroy(), this.server.opts.writeTimeout);
    timer.unref();
    void this.flushed.then(() => {
      clearTimeout(timer);
      this.socket.destroy();
    });
  }
}

/** Control servers whose socket file goes when the process exits: one 'exit' listener for all of them. */
const atExit = new Set<ControlServer>();
let exitListener = false;

function removeAtExit(server: ControlServer): void {
  if (!exitListener) {
    exitListener = true;
    process.once('exit', () => {
      for (const s of atExit) s.leftBehind?.remove();
    });
  }
  atExit.add(server);
}

export class ControlServer {
  readonly commands = new CommandRegistry();
  readonly opts: Required<Omit<ControlServerOptions, 'mode' | 'allowUids' | 'log'>>;
  private readonly server: net.Server;
  private readonly connections = new Set<ControlConnection>();
  private readonly allowUids: Set<number>;
  private readonly log: (message: string) => void;
  private file: SocketFile | null = null;
  /** The listening socket came from systemd: its file is systemd's. */
  private activated = false;
  private paused: ControlConnection[] = [];
  /** A duplicate of the listening socket, kept after a hand-off for takeBack(). */
  private spare: OwnedFd | null = null;
  private refusing = 0;
  /** Set once a new instance took over the connections. */
  handedOver = false;

  constructor(readonly path: string, private readonly options: ControlServerOptions = {}) {
    const opts = { ...CONTROL_DEFAULTS };
    for (const key of Object.keys(CONTROL_DEFAULTS) as (keyof typeof CONTROL_DEFAULTS)[]) {
      const v = options[key];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < (key === 'probeConnections' ? 0 : 1)) {
        throw invalidArgument('ControlServer', `${key} must be a positive integer, got ${String(v)}`);
      }
      (opts as Record<string, number>)[key] = v;
    }
    this.opts = opts;
    this.log = options.log ?? ((m) => debug('%s', m));
    this.allowUids = new Set([process.getuid?.() ?? 0, 0, ...(options.allowUids ?? [])]);
    const mode = options.mode ?? 0o600;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw invalidArgument('controlSocket', `mode must be a file mode such as 0o600, got ${String(mode)}`);
    this.server = net.createServer((socket) => this.accept(socket));
    this.server.on('error', (err) => debug('control server: %s', err.message));
  }

  /** idleTimeout: ms a silent connection stays open. */
  get idleTimeout(): number {
    return this.opts.idleTimeout;
  }

  /**
   * listen binds the socket (replacing a stale file, refusing a live one) or
   * listens on an inherited fd. A socket bound here has its file removed if
   * the process exits without close() (an uncaught error at start) and
   * without having handed it to a new instance. `activated`: the fd is a
   * socket systemd passed (here or to a predecessor): it must be a UNIX
   * stream socket, and its file is systemd's, never removed here.
   */
  async listen(inheritedFd?: number, { activated = false } = {}): Promise<void> {
    if (inheritedFd !== undefined) {
      await listenOnFd(this.server, inheritedFd);
      if (activated) {
        this.activated = true;
        // Node knows no name for a UNIX socket it did not bind (address() is null); a TCP one has its address.
        const where = this.server.address();
        if (where !== null && typeof where === 'object') {
          this.server.close();
          throw invalidArgument('controlSocket', `the socket systemd passed as the control socket listens on ${where.address} port ${where.port}, ` +
            'not on a UNIX path: give the control socket a ListenStream= with a path (ListenStream=/run/app/app.sock)');
        }
        return;
      }
    } else {
      clearStaleSocket(this.path, 'controlSocket');
      await listenOnFd(this.server, bindSocket(this.path, this.options.mode ?? 0o600, 64, 'controlSocket')); // it owns the fd, even on failure
    }
    this.file = new SocketFile(this.path);
    if (inheritedFd === undefined) removeAtExit(this);
  }

  /** leftBehind: the socket file, if this process bound it and still owns it (not handed over, not closed). */
  get leftBehind(): SocketFile | null {
    return this.handedOver ? null : this.file;
  }

  /** unref lets the process exit although the control socket listens (a failed start); ref undoes it. */
  unref(): void {
    this.server.unref();
  }

  ref(): void {
    this.server.ref();
  }

  logDrop(conn: ControlConnection, reason: string): void {
    this.log(`control: closing the connection of pid ${conn.peer.pid} (uid ${conn.peer.uid}): ${reason}`);
  }

  private accept(socket: net.Socket): void {
    socket.on('error', (err) => debug('control connection: %s', err.message));
    let peer: PeerCredentials;
    try {
      peer = addon.peercred(fdOf(socket));
    } catch (err) {
      socket.destroy();
      debug('control: no peer credentials: %s', (err as Error).message);
      return;
    }
    if (!this.allowUids.has(peer.uid)) {
      debug('control: refused uid %d (pid %d)', peer.uid, peer.pid);
      this.refuseSocket(socket, new PermissionDeniedError(
        `permission denied: uid ${peer.uid} may not use this socket (the server runs as uid ${process.getuid?.()}; allow it with controlAllowUids)`,
      ));
      return;
    }
    let probe = false;
    if (this.normalCount() >= this.opts.maxConnections) {
      if (this.connections.size - this.normalCount() >= this.opts.probeConnections) {
        this.refuseSocket(socket, new TooManyConnectionsError(`too many connections (${this.opts.maxConnections}): try again later`));
        return;
      }
      probe = true;
    }
    this.connections.add(new ControlConnection(socket, peer, this, probe));
  }

  private normalCount(): number {
    let n = 0;
    for (const c of this.connections) if (!c.probe) n++;
    return n;
  }

  /**
   * refuseSocket answers a client this server will not serve: in JSON if its
   * first line (within REFUSAL_WAIT) is JSON, then FIN; the descriptor is
   * destroyed REFUSAL_LINGER later if the client neither reads nor closes.
   * Past maxRefused refusals in flight, the socket is closed at once.
   */
  private refuseSocket(socket: net.Socket, err: Error & { code: string }): void {
    if (this.refusing >= this.opts.maxRefused) {
      socket.destroy();
      return;
    }
    this.refusing++;
    let answered = false;
    let linger: NodeJS.Timeout | null = null;
    const answer = (json: boolean) => {
      if (answered) return;
      answered = true;
      clearTimeout(wait);
      if (socket.writable) socket.end(refusalLine(json, err.code, err.message));
      linger = setTimeout(() => socket.destroy(), REFUSAL_LINGER);
      linger.unref();
    };
    const wait = setTimeout(() => answer(false), REFUSAL_WAIT);
    wait.unref();
    socket.on('data', (chunk: Buffer) => answer(chunk.toString('latin1').trimStart().startsWith('{')));
    socket.on('end', () => answer(false));
    socket.once('close', () => {
      this.refusing--;
      clearTimeout(wait);
      if (linger) clearTimeout(linger);
    });
  }

  forget(conn: ControlConnection): void {
    this.connections.delete(conn);
  }

  private settleWaiters: (() => void)[] = [];

  /** progressed: a command finished or a connection closed; settle() looks again. */
  progressed(): void {
    if (this.settleWaiters.length > 0 && ![...this.connections].some((c) => c.hasQueued)) this.settleWaiters.splice(0).forEach((w) => w());
  }

  /**
   * settle resolves once no connection has lines queued to run here, or at
   * deadline (ms since the epoch), whichever comes first: a halt answers what
   * a client already sent (commands pipelined behind `redeploy` on a
   * connection that stays here) before it closes the connections. A command
   * still running with nothing queued behind it (a stream) does not hold it.
   */
  settle(deadline: number): Promise<void> {
    if (![...this.connections].some((c) => c.hasQueued)) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.settleWaiters.push(done);
    });
  }

  /** connectionCount: open control connections. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * handoff stops reading every connection with no command running (and the
   * one running `redeploy`) and lists them, with the listener, for a new
   * instance; each carries the bytes read here and not run, exactly.
   */
  handoff(): OutgoingFd[] {
    const out: OutgoingFd[] = [{ fd: fdOf(this.server), meta: { name: 'control', kind: 'control', ...(this.activated ? { systemd: true } : {}) } }];
    this.paused = [];
    this.closeDups();
    for (const conn of this.connections) {
      if (conn.closed) continue;
      const persist = conn.isBusy ? conn.persistentLine : null;
      if (conn.isBusy && !conn.handingOver && persist === null) continue; // a streaming command stays here to its end
      // A duplicate is sent: a client may close its connection (a health probe
      // does, right after its reply) while the hand-off is under way, and the
      // socket's own descriptor goes with it. The new instance then reads EOF.
      let fd: number;
      try {
        fd = addon.dup(fdOf(conn.socket));
      } catch {
        continue; // closed already
      }
      conn.pause();
      const pendingBytes = conn.pending.toString('base64');
      if (pendingBytes.length > MAX_PENDING_META) {
        // Too much unrun input to fit a hand-off message: it stays, and is answered, here.
        addon.close(fd);
        conn.handingOver = false; // running `redeploy`, it answers here and goes on here
        conn.resume();
        debug('control: a connection with %d bytes of unrun input stays with this instance', conn.pending.length);
        continue;
      }
      if (persist !== null && pendingBytes.length + persist.length > MAX_PENDING_META) {
        addon.close(fd); // the persistent command's line does not fit: it streams on here
        conn.resume();
        continue;
      }
      const meta: Meta = { kind: 'control-conn', pendingBytes, ...(persist !== null ? { persist } : {}) };
      if (persist !== null) conn.mute(true);
      this.dups.push(new OwnedFd(fd, meta));
      this.paused.push(conn);
      out.push({ fd, meta });
    }
    return out;
  }

  /** The duplicates of handed-over connections, owned here until the hand-off ends either way. */
  private dups: OwnedFd[] = [];

  private closeDups(): void {
    closeOwned(this.dups.splice(0));
  }

  /** handoffFailed resumes what handoff paused (the `redeploy` connection resumes after its reply). */
  handoffFailed(): void {
    this.closeDups();
    for (const conn of this.paused.splice(0)) {
      conn.mute(false);
      if (!conn.handingOver) conn.resume();
    }
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
      this.spare = new OwnedFd(addon.dup(fdOf(this.server)), { name: 'control' });
      this.server.close();
    }
  }

  /** takeBack accepts again (the new instance died): on the kept duplicate. */
  async takeBack(): Promise<void> {
    this.handedOver = false;
    const spare = this.spare;
    this.spare = null;
    if (spare !== null) await listenOnFd(this.server, spare.take()); // it owns the fd, even on failure
  }

  /**
   * adopt takes a connection handed over by a predecessor, with the input it
   * had read and not run (meta.pendingBytes, or the older meta.pending); it
   * is not read before start(). The server owns fd from here on.
   */
  adopt(fd: number, meta: Meta | string): void {
    let socket: net.Socket;
    try {
      fdOf(fd);
      // pauseOnCreate: libuv does not read until start(), so a failed start leaves the input to the predecessor.
      socket = new net.Socket({ fd, readable: true, writable: true, pauseOnCreate: true } as net.SocketConstructorOpts);
    } catch (err) {
      closeAll([fd]);
      throw err;
    }
    socket.on('error', (err) => debug('control connection: %s', err.message));
    let peer: PeerCredentials;
    try {
      peer = addon.peercred(fd);
    } catch {
      socket.destroy();
      return;
    }
    const conn = new ControlConnection(socket, peer, this, false, true);
    this.connections.add(conn);
    const m = typeof meta === 'string' ? { pending: meta } : meta;
    conn.feed(typeof m.pendingBytes === 'string' ? Buffer.from(m.pendingBytes, 'base64')
      : Buffer.from(typeof m.pending === 'string' ? m.pending : '', 'utf8'), typeof m.persist === 'string' ? m.persist : undefined);
    this.adopted.push(conn);
  }

  private adopted: ControlConnection[] = [];

  /** start lets adopted connections run their commands. */
  start(): void {
    for (const conn of this.adopted.splice(0)) conn.resume();
  }

  /**
   * close stops accepting; with release the socket file goes too (no
   * successor wants it). Connections this process served are ended;
   * connections adopted and never served (this instance halts before it was
   * ready) are only closed here, never shut down: the predecessor still
   * serves them.
   */
  close(release: boolean): void {
    this.closeDups();
    this.spare?.close();
    this.spare = null;
    if (this.server.listening) this.server.close();
    if (release) this.file?.remove();
    atExit.delete(this);
    const unserved = new Set(this.adopted.splice(0));
    for (const conn of this.connections) {
      if (unserved.has(conn) && !conn.served) conn.release();
      else conn.end();
    }
  }
}
