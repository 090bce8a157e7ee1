/**
 * Adopter: the new instance's receiver of established connections. It is
 * opened before ready() tells the predecessor, on a private UNIX socket whose
 * path travels in the ready answer, and stays open while the predecessor
 * drains: the predecessor connects once (its pid is checked with
 * SO_PEERCRED) and passes each idle keep-alive connection as it gets to one,
 * (a new worker: each old worker handed to it connects once, checked by pid
 * and by its parent, the old primary),
 * with its meta (listener name, peer address). Each is adopted as a
 * connection of the listener of that name (`server.emit('connection')`), so
 * the next request on it is answered here. A socket the predecessor's
 * application handed over with its state (kind `socket`) is tracked as a
 * connection of its listener and given to this instance's application
 * ('adopt-socket'), which rebuilds its connection object. It closes once the predecessor
 * closed its end, or exited, or this instance halts.
 */
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { debuglog } from 'node:util';
import { PeerRefusedError } from '../errors.js';
import { socketFromFd } from '../fds.js';
import type { HandoffConnection } from '../handoff/connection.js';
import { closeAll } from '../handoff/connection.js';
import { listenAndServe, type HandoffServer } from '../handoff/server.js';
import { receiveFrom, sendTo } from '../handoff/client.js';
import { ADOPTING_MARK } from '../protocol.js';
import { removeSocketDir } from '../socketpath.js';
import { CONN_KIND } from './conn-handover.js';
import { SOCKET_KIND, decodeState, type AdoptedSocket } from './socket-handover.js';

const debug = debuglog('graceful');
/** The adopt socket's name in its private directory. */
const ADOPT_SOCKET = 'adopt.sock';

/** Adopted: what the 'adopt' event of the new instance says of each connection taken over. */
export interface Adopted {
  listener: string;
  remoteAddress: string | null;
  remotePort: number | null;
  socket: net.Socket;
}

export interface AdopterParts {
  /** pid of the predecessor: the only process that may connect, unless peers says otherwise. */
  predecessorPid: number;
  /** The processes that may connect, each once (default: the predecessor alone): a new worker's old workers. */
  peers?: readonly number[];
  /** With peers: each must be a child of this pid (the old primary), read from /proc when it connects. */
  parent?: number;
  /** The server of the listener named so, if it adopts connections. */
  target(listener: string): net.Server | null;
  adopted(a: Adopted): void;
  /** The tracker of the listener named so, if its sockets may be handed over (handOverSockets). */
  socketTarget(listener: string): { adoptSocket(socket: net.Socket): 'upgraded' | 'other' } | null;
  /** Gives an adopted socket to the application; a throw is its failure to take it (the socket is then closed). */
  adoptedSocket(a: AdoptedSocket): void;
  log(msg: string): void;
}

export class Adopter {
  /** Connections adopted, and refused (no such listener here, or a descriptor that is no socket). */
  adoptedCount = 0;
  refusedCount = 0;
  private readonly server: HandoffServer;
  private readonly conns = new Set<HandoffConnection>();
  /** The peers that may still connect (each once). */
  private readonly waiting: Set<number>;
  private closed = false;

  private constructor(readonly path: string, private readonly dir: string, private readonly parts: AdopterParts) {
    this.waiting = new Set(parts.peers ?? [parts.predecessorPid]);
    this.server = listenAndServe(path, (res) => this.serve(res.connection), { mode: 0o600, backlog: 1 });
    this.server.unref();
    this.server.on('clientError', (err: Error) => parts.log(`connection hand-over from pid ${parts.predecessorPid}: ${err.message}`));
  }

  /**
   * open listens on a fresh private socket (a directory of mode 0700); it
   * throws what the kernel said when it cannot, and then left nothing behind.
   */
  static open(parts: AdopterParts): Adopter {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graceful-adopt-'));
    try {
      return new Adopter(path.join(dir, ADOPT_SOCKET), dir, parts);
    } catch (err) {
      removeSocketDir(dir, [ADOPT_SOCKET]);
      throw err;
    }
  }

  private async serve(conn: HandoffConnection): Promise<void> {
    const peer = conn.peer();
    const { peers, parent, predecessorPid } = this.parts;
    const why = this.refusal(peer.pid, peer.uid);
    if (why) {
      const who = peers ? `the old workers (pids ${peers.join(', ')}, children of pid ${parent}) may connect, once each` : `the predecessor (pid ${predecessorPid}) may connect, once`;
      throw new PeerRefusedError(`connection hand-over: refused pid ${peer.pid} (uid ${peer.uid}): ${why}; only ${who}`);
    }
    this.waiting.delete(peer.pid);
    this.conns.add(conn);
    // The peer passes nothing before this record: whatever it would pass to a refusal is kept and drained there.
    await sendTo(conn, 2, { graceful: ADOPTING_MARK }).catch((err: Error) => this.parts.log(`connection hand-over from pid ${peer.pid}: could not let it in: ${err.message}`));
    if (this.waiting.size === 0) {
      // Each peer once: nobody else can connect from here on.
      void this.server.close();
      this.removeDir();
    }
    for (;;) {
      const got = await receiveFrom(conn).catch((err: Error) => {
        if (!this.closed) this.parts.log(`connection hand-over from pid ${peer.pid} ended: ${err.message}`);
        return null;
      });
      if (!got) break;
      this.adopt(got.fd, got.meta ?? {});
    }
    this.conns.delete(conn);
    // Every peer came and went: nothing more arrives.
    if (this.waiting.size === 0 && this.conns.size === 0) this.close();
  }

  /** refusal: why the peer pid (of uid) may not hand connections over here, or null when it may. */
  private refusal(pid: number, uid: number): string | null {
    const { peers, parent, predecessorPid } = this.parts;
    if (this.closed) return 'this instance no longer takes connections over';
    if (!(peers ?? [predecessorPid]).includes(pid)) return 'not a process that hands connections over to this one';
    if (!this.waiting.has(pid)) return 'it has connected already';
    if (uid !== process.getuid?.()) return 'another user';
    if (parent !== undefined) {
      const its = parentOf(pid);
      if (its !== parent) return `its parent is ${its === null ? 'unknown (/proc/<pid>/stat unreadable)' : `pid ${its}`}`;
    }
    return null;
  }

  /** adopt takes ownership of fd: it becomes a connection of its listener, or is closed. */
  private adopt(fd: number, meta: Record<string, unknown>): void {
    const listener = String(meta.listener ?? '');
    if (meta.kind === SOCKET_KIND) {
      this.adoptSocket(fd, listener, meta);
      return;
    }
    const server = meta.kind === CONN_KIND && !this.closed ? this.parts.target(listener) : null;
    if (!server) {
      closeAll([fd]);
      this.refusedCount++;
      this.parts.log(`connection hand-over: no listener "${listener}" here takes connections over (handOver: true): closed the connection`);
      return;
    }
    const socket = this.wrap(fd, listener);
    if (!socket) return;
    this.adoptedCount++;
    debug('adopted a connection of "%s" from %s:%s', listener, meta.remoteAddress, meta.remotePort);
    server.emit('connection', socket);
    this.parts.adopted({
      listener,
      remoteAddress: typeof meta.remoteAddress === 'string' ? meta.remoteAddress : null,
      remotePort: typeof meta.remotePort === 'number' ? meta.remotePort : null,
      socket,
    });
  }

  /** wrap makes a socket of fd, or closes it (counted as refused) when it is no connected socket. */
  private wrap(fd: number, listener: string): net.Socket | null {
    try {
      return socketFromFd(fd);
    } catch (err) {
      closeAll([fd]);
      this.refusedCount++;
      this.parts.log(`connection hand-over: descriptor for "${listener}" is no connected socket (${(err as Error).message}): closed it`);
      return null;
    }
  }

  /** adoptSocket takes ownership of fd, handed over with the application's state: given to the application, or closed. */
  private adoptSocket(fd: number, listener: string, meta: Record<string, unknown>): void {
    const target = this.closed ? null : this.parts.socketTarget(listener);
    const carried = decodeState(meta);
    if (!target || !carried) {
      closeAll([fd]);
      this.refusedCount++;
      this.parts.log(`connection hand-over: ${carried ? `no listener "${listener}" here takes sockets over (handOverSockets: true)` : `the state of a socket for "${listener}" is not readable`}: closed the connection`);
      return;
    }
    const socket = this.wrap(fd, listener);
    if (!socket) return;
    // What arrives waits in the socket's buffer until the application listens for 'data' (in 'adopt-socket').
    const kind = target.adoptSocket(socket);
    this.adoptedCount++;
    const a: AdoptedSocket = {
      listener, kind, socket, state: carried.state, head: carried.head,
      remoteAddress: typeof meta.remoteAddress === 'string' ? meta.remoteAddress : null,
      remotePort: typeof meta.remotePort === 'number' ? meta.remotePort : null,
    };
    try {
      this.parts.adoptedSocket(a);
    } catch (err) {
      this.parts.log(`connection hand-over: the 'adopt-socket' listener threw (${(err as Error).message}): closed the connection of "${listener}"`);
      socket.destroy();
    }
  }

  private removeDir(): void {
    removeSocketDir(this.dir, [ADOPT_SOCKET]);
  }

  /** close stops taking connections (the predecessor's next pass fails, and it drains the rest itself). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.server.close();
    for (const c of this.conns) c.close();
    this.removeDir();
  }
}

/** parentOf: the parent pid of pid, from /proc (null when it is gone or unreadable). */
export function parentOf(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}
