/**
 * Admission: who gets a control connection. A client's SO_PEERCRED uid must
 * be ours, root's, or allowed; past maxConnections a few more are kept for
 * `status` probes (probeConnections); anyone else is refused with a coded
 * answer, and its descriptor is closed within a bound whatever it does.
 * Past maxRefused refusals in flight, a refused socket is closed at once.
 */
import type net from 'node:net';
import { debuglog } from 'node:util';
import { PermissionDeniedError, TooManyConnectionsError } from '../errors.js';
import { fdOf } from '../fds.js';
import { addon, type PeerCredentials } from '../native.js';
import { REFUSAL_LINGER, REFUSAL_WAIT, type ResolvedLimits } from './limits.js';
import { refusalLine } from './replies.js';

const debug = debuglog('graceful');

/** Admitted: the client's credentials, and whether it holds one of the slots kept for probes. */
export interface Admitted {
  peer: PeerCredentials;
  probe: boolean;
}

export class Admission {
  private readonly allowUids: ReadonlySet<number>;
  private refusals = 0;

  /** allowUids: uids allowed besides ours and root. */
  constructor(private readonly opts: Pick<ResolvedLimits, 'maxConnections' | 'probeConnections' | 'maxRefused'>, allowUids: readonly number[] = []) {
    this.allowUids = new Set([process.getuid?.() ?? 0, 0, ...allowUids]);
  }

  /** refusing: refused clients being answered now. */
  get refusing(): number {
    return this.refusals;
  }

  /**
   * admit decides on a socket just accepted, given the connections open
   * (each a probe or not): the client's credentials and slot, or null when
   * it is refused; a refused socket is this object's to answer and close.
   * The caller has put an 'error' listener on socket already.
   */
  admit(socket: net.Socket, open: Iterable<{ readonly probe: boolean }>): Admitted | null {
    let peer: PeerCredentials;
    try {
      peer = addon.peercred(fdOf(socket));
    } catch (err) {
      socket.destroy();
      debug('control: no peer credentials: %s', (err as Error).message);
      return null;
    }
    if (!this.allowUids.has(peer.uid)) {
      debug('control: refused uid %d (pid %d)', peer.uid, peer.pid);
      this.refuse(socket, new PermissionDeniedError(
        `permission denied: uid ${peer.uid} may not use this socket (the server runs as uid ${process.getuid?.()}; allow it with controlAllowUids)`,
      ));
      return null;
    }
    let normal = 0;
    let probes = 0;
    for (const c of open) {
      if (c.probe) probes++;
      else normal++;
    }
    if (normal < this.opts.maxConnections) return { peer, probe: false };
    if (probes >= this.opts.probeConnections) {
      this.refuse(socket, new TooManyConnectionsError(`too many connections (${this.opts.maxConnections}): try again later`));
      return null;
    }
    return { peer, probe: true };
  }

  /**
   * refuse answers a client that will not be served: in JSON if its first
   * line (within REFUSAL_WAIT) is JSON, then FIN; the descriptor is
   * destroyed REFUSAL_LINGER later if the client neither reads nor closes.
   * Past maxRefused refusals in flight, the socket is closed at once.
   */
  private refuse(socket: net.Socket, err: Error & { code: string }): void {
    if (this.refusals >= this.opts.maxRefused) {
      socket.destroy();
      return;
    }
    this.refusals++;
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
      this.refusals--;
      clearTimeout(wait);
      if (linger) clearTimeout(linger);
    });
  }
}
