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
 *
 * This file is the listener: its socket file, the connections it holds, and
 * the halt's wait for them. Who gets in is admission.ts, one client is
 * connection.ts, the bounds are limits.ts, its part of a redeploy and of a
 * take-back is handover.ts.
 */
import net from 'node:net';
import { debuglog } from 'node:util';
import { invalidArgument } from '../errors.js';
import type { Meta } from '../meta.js';
import type { PeerCredentials } from '../native.js';
import { fdOf, listenOnFd } from '../fds.js';
import { bindSocket, clearStaleSocket, SocketFile } from '../socketpath.js';
import type { OutgoingFd } from '../handoff/connection.js';
import { Admission } from './admission.js';
import { CommandRegistry } from './commands.js';
import { ControlConnection, type ConnectionOwner } from './connection.js';
import { ControlHandover } from './handover.js';
import { resolveLimits, type ControlServerOptions, type ResolvedLimits } from './limits.js';

export { CONTROL_DEFAULTS, type ControlLimits, type ControlServerOptions } from './limits.js';

const debug = debuglog('graceful');

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

export class ControlServer implements ConnectionOwner {
  readonly commands = new CommandRegistry();
  readonly opts: ResolvedLimits;
  private readonly server: net.Server;
  private readonly connections = new Set<ControlConnection>();
  private readonly admission: Admission;
  private readonly handover = new ControlHandover();
  private readonly log: (message: string) => void;
  private file: SocketFile | null = null;
  /** The listening socket came from systemd: its file is systemd's. */
  private activated = false;
  /** Set once a new instance took over the connections. */
  handedOver = false;

  constructor(readonly path: string, private readonly options: ControlServerOptions = {}) {
    this.opts = resolveLimits(options);
    this.log = options.log ?? ((m) => debug('%s', m));
    this.admission = new Admission(this.opts, options.allowUids);
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
    const admitted = this.admission.admit(socket, this.connections);
    if (admitted) this.connections.add(new ControlConnection(socket, admitted.peer, this, admitted.probe));
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
    const listener: OutgoingFd = { fd: fdOf(this.server), meta: { name: 'control', kind: 'control', ...(this.activated ? { systemd: true } : {}) } };
    return this.handover.handoff(listener, this.connections);
  }

  /** handoffFailed resumes what handoff paused (the `redeploy` connection resumes after its reply). */
  handoffFailed(): void {
    this.handover.failed(this.openAdopted);
  }

  /**
   * handoffDone drops this process's copies of the connections the new
   * instance now serves, and stops accepting: new clients reach the new
   * instance. A duplicate of the listening socket is kept for takeBack().
   */
  handoffDone(): void {
    this.handedOver = true;
    this.handover.done(this.server);
  }

  /** takeBack accepts again (the new instance died): on the kept duplicate. */
  async takeBack(): Promise<void> {
    this.handedOver = false;
    await this.handover.takeBack(this.server);
  }

  /**
   * adopt takes a connection handed over by a predecessor, with the input it
   * had read and not run (meta.pendingBytes, or the older meta.pending); it
   * is not read before start(). The server owns fd from here on.
   */
  adopt(fd: number, meta: Meta | string): void {
    this.handover.adopt(fd, meta, this.openAdopted);
  }

  /** openAdopted: the connection of an adopted socket, paused until started. */
  private readonly openAdopted = (socket: net.Socket, peer: PeerCredentials): ControlConnection => {
    const conn = new ControlConnection(socket, peer, this, false, true);
    this.connections.add(conn);
    return conn;
  };

  /** start lets adopted connections run their commands. */
  start(): void {
    this.handover.start();
  }

  /**
   * close stops accepting; with release the socket file goes too (no
   * successor wants it). Connections this process served are ended;
   * connections adopted and never served (this instance halts before it was
   * ready) are only closed here, never shut down: the predecessor still
   * serves them.
   */
  close(release: boolean): void {
    const unserved = this.handover.close();
    if (this.server.listening) this.server.close();
    if (release) this.file?.remove();
    atExit.delete(this);
    for (const conn of this.connections) {
      if (unserved.has(conn) && !conn.served) conn.release();
      else conn.closeByServer(this.handedOver);
    }
  }
}
