/**
 * ControlHandover: the control socket's part of a redeploy and of a
 * take-back. At a hand-off it pauses the connections that go (those with no
 * command running, the one running `redeploy`, those running a persistent
 * command) and lists them, each a duplicate descriptor with the bytes read
 * here and not run, exactly; then either resumes them (the hand-off failed)
 * or releases them and keeps a duplicate of the listening socket (done),
 * on which takeBack() accepts again if the new instance dies. On the new
 * instance's side it adopts what a predecessor handed over, unread until
 * start(). It owns the duplicates it makes until the hand-off ends.
 */
import net from 'node:net';
import { debuglog } from 'node:util';
import { fdOf, listenOnFd } from '../fds.js';
import { closeAll, type OutgoingFd } from '../handoff/connection.js';
import type { Meta } from '../meta.js';
import { addon, type PeerCredentials } from '../native.js';
import { OwnedFd, closeOwned } from '../owned-fd.js';
import type { ControlConnection } from './connection.js';
import { MAX_PENDING_META } from './limits.js';

const debug = debuglog('graceful');

export class ControlHandover {
  /** The connections listed by handoff(), paused until it ends either way. */
  private paused: ControlConnection[] = [];
  /** The duplicates of handed-over connections, owned here until the hand-off ends either way. */
  private dups: OwnedFd[] = [];
  /** A duplicate of the listening socket, kept after a hand-off for takeBack(). */
  private spare: OwnedFd | null = null;
  /** Connections adopted and not started yet. */
  private adopted: ControlConnection[] = [];

  /**
   * handoff stops reading every connection with no command running (and the
   * one running `redeploy`, and those running a persistent command) and
   * lists them after listener, the entry of the listening socket; each
   * carries the bytes read here and not run. A connection whose unrun input
   * does not fit a hand-off message stays, and is answered, here.
   */
  handoff(listener: OutgoingFd, connections: Iterable<ControlConnection>): OutgoingFd[] {
    const out: OutgoingFd[] = [listener];
    this.paused = [];
    this.closeDups();
    for (const conn of connections) {
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
      if (persist !== null && conn.unwritten) {
        // Output still queued here would reach the client after the new
        // instance's marker: dropped now, before the descriptor goes, and counted in the marker.
        meta.dropped = conn.discard();
        meta.from = process.pid;
        debug('control: dropped %d line(s) queued for a slow client of a persistent command', meta.dropped);
      } else {
        this.paused.push(conn);
      }
      this.dups.push(new OwnedFd(fd, meta));
      out.push({ fd, meta });
    }
    return out;
  }

  private closeDups(): void {
    closeOwned(this.dups.splice(0));
  }

  /**
   * failed resumes what handoff paused (the `redeploy` connection resumes
   * after its reply); a persistent command's connection whose output was
   * dropped is served here again from its duplicate (open makes its
   * connection, as for an adopted one): its command runs again after the marker.
   */
  failed(open?: (socket: net.Socket, peer: PeerCredentials) => ControlConnection): void {
    const discarded = this.dups.filter((d) => typeof d.meta.dropped === 'number');
    this.dups = this.dups.filter((d) => !discarded.includes(d));
    for (const d of discarded) {
      if (open) this.adopt(d.take(), d.meta, open);
      else d.close();
    }
    this.closeDups();
    for (const conn of this.paused.splice(0)) {
      conn.mute(false);
      if (!conn.handingOver) conn.resume();
    }
    this.start();
  }

  /**
   * done drops this process's copies of the connections the new instance
   * now serves, and closes server (new clients reach the new instance),
   * keeping a duplicate of its socket for takeBack().
   */
  done(server: net.Server): void {
    this.closeDups();
    for (const conn of this.paused.splice(0)) if (!conn.handingOver) conn.release();
    if (server.listening) {
      this.spare = new OwnedFd(addon.dup(fdOf(server)), { name: 'control' });
      server.close();
    }
  }

  /** takeBack makes server accept again (the new instance died) on the kept duplicate, if there is one. */
  async takeBack(server: net.Server): Promise<void> {
    const spare = this.spare;
    this.spare = null;
    if (spare !== null) await listenOnFd(server, spare.take()); // it owns the fd, even on failure
  }

  /**
   * adopt takes a connection handed over by a predecessor, with the input it
   * had read and not run (meta.pendingBytes, or the older meta.pending): open
   * makes the connection of the socket, paused; it is not read before
   * start(). Owns fd from here on (closed if no socket can be made of it).
   */
  adopt(fd: number, meta: Meta | string, open: (socket: net.Socket, peer: PeerCredentials) => ControlConnection): void {
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
    const conn = open(socket, peer);
    const m = typeof meta === 'string' ? { pending: meta } : meta;
    conn.feed(typeof m.pendingBytes === 'string' ? Buffer.from(m.pendingBytes, 'base64')
      : Buffer.from(typeof m.pending === 'string' ? m.pending : '', 'utf8'), typeof m.persist === 'string' ? m.persist : undefined,
    typeof m.dropped === 'number' ? m.dropped : 0, typeof m.from === 'number' ? m.from : 0);
    this.adopted.push(conn);
  }

  /** start lets adopted connections run their commands. */
  start(): void {
    for (const conn of this.adopted.splice(0)) conn.resume();
  }

  /**
   * close ends the hand-off's hold: the duplicates and the kept listening
   * socket are closed. Returns the connections adopted and never started,
   * which the predecessor may still serve.
   */
  close(): ReadonlySet<ControlConnection> {
    this.closeDups();
    this.spare?.close();
    this.spare = null;
    return new Set(this.adopted.splice(0));
  }
}
