/**
 * ConnectionSender: the old instance's side of handing established
 * connections to the new instance. The new instance named a private socket
 * in its ready answer (see adopt.ts); this connects to it, checks with
 * SO_PEERCRED that the new instance is at the other end, waits until the
 * new instance says it let this process in (a refused connection would lose
 * what was passed on it: refused, the connections drain here), and passes each
 * connection the drain finds idle at a request boundary: a duplicate of its
 * descriptor travels with its meta (listener, peer address), and once the
 * kernel has it, this process's net.Socket is destroyed, which is a close()
 * of this copy only: the client sees nothing, the new instance holds the
 * connection, and bytes the client sent meanwhile wait in the kernel for it.
 */
import type net from 'node:net';
import { debuglog } from 'node:util';
import { HandOverFailedError, PeerRefusedError, TimeoutError } from '../errors.js';
import { HandoffConnection, closeAll } from '../handoff/connection.js';
import { ADOPTING_MARK } from '../protocol.js';
import { addon } from '../native.js';
import type { Meta } from '../meta.js';
import type { LogFields } from '../log.js';
import { OwnedFd } from '../owned-fd.js';
import type { StreamHandle } from '../read-seam.js';

const debug = debuglog('graceful');

/** Meta `kind` of a connection handed over. */
export const CONN_KIND = 'conn';
/** Ready-answer fields: the new instance's socket for connections, and the listeners that take them (comma-separated). */
export const ADOPT_FIELD = 'adopt';
export const ADOPT_LISTENERS_FIELD = 'adoptListeners';
/** Ready-answer field: the listeners whose sockets the application may hand over with its state (comma-separated). */
export const ADOPT_SOCKETS_FIELD = 'adoptSockets';
/**
 * Largest message to the new instance: a socket's state and head travel in
 * its meta (see socket-handover.ts: 16 KiB of JSON escaped once more, 16 KiB
 * of head in base64), under the receiver's 64 KiB.
 */
const MAX_MESSAGE_BYTES = 60 * 1024;

/** handleOf lives in the read seam; drain and socket-handover take it from here. */
export { handleOf } from '../read-seam.js';

/** How long the new instance has to let this process in (ADOPTING_MARK) once connected. */
const ADOPTING_WAIT_MS = 2_000;

/**
 * letIn resolves once the new instance's first record on conn says it let
 * this process in (ADOPTING_MARK); else it closes conn and throws: a refusal
 * (the new instance closed: its log says why) is ERR_GRACEFUL_PEER_REFUSED,
 * no word within ms ERR_GRACEFUL_TIMEOUT.
 */
async function letIn(conn: HandoffConnection, pid: number, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  const first = await Promise.race([conn.receive().catch(() => null), late]).finally(() => clearTimeout(timer));
  if (first !== 'late' && first !== null) closeAll([first.fd]);
  if (first !== 'late' && first?.meta?.graceful === ADOPTING_MARK) return;
  conn.close();
  if (first === 'late') throw new TimeoutError(`connection hand-over: the new instance (pid ${pid}) did not let this process in within ${ms} ms`);
  throw new PeerRefusedError(`connection hand-over: the new instance (pid ${pid}) did not let this process in${first ? ` (its first record was not ${ADOPTING_MARK})` : ': its log says why'}`);
}

export class ConnectionSender {
  /** Connections passed (the new instance holds them), and passes that failed (those drain here). */
  passed = 0;
  failed = 0;
  private broken: Error | null = null;
  /** Why the last pass failed, when only that one did (a meta too large for one message). */
  lastError: Error | null = null;

  private constructor(private readonly conn: HandoffConnection, private readonly listeners: ReadonlySet<string>,
    private readonly socketListeners: ReadonlySet<string>, readonly pid: number) {}

  /**
   * connect opens the connection to the new instance's socket at path and
   * checks that pid is at the other end; throws ERR_GRACEFUL_PEER_REFUSED
   * (after closing it) when it is not.
   */
  static async connect(path: string, pid: number, listeners: readonly string[], socketListeners: readonly string[] = []): Promise<ConnectionSender> {
    const conn = await HandoffConnection.connect(path, { timeout: 1000, maxMessageBytes: MAX_MESSAGE_BYTES });
    const peer = conn.peer();
    if (peer.pid !== pid || peer.uid !== process.getuid?.()) {
      conn.close();
      throw new PeerRefusedError(`connection hand-over: ${path} is served by pid ${peer.pid} (uid ${peer.uid}), not by the new instance (pid ${pid})`);
    }
    await letIn(conn, pid, ADOPTING_WAIT_MS);
    return new ConnectionSender(conn, new Set(listeners), new Set(socketListeners), pid);
  }

  /** accepts: the new instance takes connections of this listener over. */
  accepts(listener: string): boolean {
    return this.broken === null && this.listeners.has(listener);
  }

  /** acceptsSockets: the new instance takes sockets the application hands over on this listener, with their state. */
  acceptsSockets(listener: string): boolean {
    return this.broken === null && this.socketListeners.has(listener);
  }

  /**
   * pass hands socket over. The caller has stopped reading it (readStop) and
   * checked that it sits at a request boundary with nothing of a next request
   * read. Resolves true once the new instance holds it (this process's socket
   * is then destroyed), false when it could not be passed: the socket is
   * untouched, and the caller reads it again and drains it.
   */
  async pass(socket: net.Socket, handle: StreamHandle, meta: Meta): Promise<boolean> {
    if (this.broken) return false;
    let copy: OwnedFd;
    try {
      // A duplicate of our own: whatever happens to the socket meanwhile (a
      // keep-alive timeout destroys it), what travels is a descriptor we own.
      copy = new OwnedFd(addon.dup(handle.fd), { name: String(meta.listener) });
    } catch (err) {
      this.failed++;
      debug('hand-over: dup failed: %s', (err as Error).message);
      return false;
    }
    try {
      await this.conn.send([{ fd: copy.fd, meta: { kind: CONN_KIND, ...meta } }]);
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_GRACEFUL_META_TOO_LARGE') {
        // Refused before anything was written: the connection to the new instance is intact.
        this.lastError = err as Error;
        this.failed++;
        return false;
      }
      this.broken ??= new HandOverFailedError(`the new instance (pid ${this.pid}) no longer takes connections (${(err as { code?: string }).code ?? (err as Error).message}): the rest drain here`, { cause: err });
      this.failed++;
      return false;
    } finally {
      copy.close();
    }
    this.passed++;
    // The new instance holds the connection: this is a close of our copy only (never shutdown()).
    socket.destroy();
    return true;
  }

  /** error: why passing stopped, if it did. */
  get error(): Error | null {
    return this.broken;
  }

  /** close ends the connection to the new instance (it closes its socket for connections). Idempotent. */
  close(): void {
    this.conn.close();
  }
}

/**
 * connectSender: a sender to the new instance when its ready answer names a
 * socket for connections and one of our listeners hands over to it; null
 * otherwise, or when it cannot be reached (log says why: the connections then
 * drain here, as without hand-over).
 */
export async function connectSender(answer: Meta | undefined, pid: number, ours: readonly string[],
  log: (msg: string, fields?: LogFields) => void, oursSockets: readonly string[] = []): Promise<ConnectionSender | null> {
  const where = answer?.[ADOPT_FIELD];
  if (typeof where !== 'string') return null;
  const names = (field: string) => String(answer?.[field] ?? '').split(',').filter((n) => n !== '');
  const theirs = names(ADOPT_LISTENERS_FIELD);
  const theirSockets = names(ADOPT_SOCKETS_FIELD);
  const both = ours.filter((n) => theirs.includes(n));
  const bothSockets = oursSockets.filter((n) => theirSockets.includes(n));
  if (both.length === 0 && bothSockets.length === 0) return null;
  try {
    return await ConnectionSender.connect(where, pid, both, bothSockets);
  } catch (err) {
    const error = new HandOverFailedError(`could not reach the new instance (pid ${pid}) to hand connections over (${(err as { code?: string }).code ?? (err as Error).message}): ` +
      'they drain here instead', { cause: err });
    log(error.message, { event: 'redeploy.handover-unreachable', code: error.code });
    return null;
  }
}
