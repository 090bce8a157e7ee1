/**
 * The drain's side of handing connections over: ConnectionMover, what a
 * drain passes connections to (the new instance; conn-handover.ts implements
 * it, socket-pass.ts uses it for the application's hand-overs), and the pass
 * of an idle HTTP/1 connection at a request boundary (tryMove), with the
 * `handOver` option on a plain HTTP/1 listener.
 */
import type net from 'node:net';
import { handleOf } from '../conn-handover.js';
import type { Meta } from '../../meta.js';
import type { Conn } from './conns.js';
import type { MoveCounts } from './options.js';

/**
 * ConnectionMover: what a drain passes connections to (the new instance).
 * pass resolves true once the new instance holds socket, false when it was
 * not passed (the socket is untouched: it drains).
 */
export interface ConnectionMover {
  accepts(listener: string): boolean;
  /** acceptsSockets: the new instance takes sockets the application hands over on this listener. */
  acceptsSockets(listener: string): boolean;
  readonly error: Error | null;
  readonly lastError?: Error | null;
  pass(socket: net.Socket, handle: NonNullable<ReturnType<typeof handleOf>>, meta: Meta): Promise<boolean>;
}

/** canMove: conn is a connection a drain may pass once it is at a request boundary (plain HTTP/1, not ending, no failed pass). */
export function canMove(conn: Conn): boolean {
  return conn.kind === 'http1' && conn.io === conn.raw && !conn.stays && !conn.ending;
}

/**
 * tryMove passes conn, a connection of listener, to mover if it is at a
 * request boundary: it stops reading first, then checks that nothing of a
 * next request was read into this process (bytes still in the kernel go with
 * the socket), that the parser is between messages and that nothing waits to
 * be written. Otherwise it reads on, and a later call tries again. A pass is
 * counted in moved.handedOver; a connection that cannot be passed, or whose
 * pass failed, is marked to stay (it drains) and reads again.
 */
export function tryMove(conn: Conn, mover: ConnectionMover, listener: string, moved: MoveCounts): void {
  if (conn.moving || !canMove(conn) || conn.queue.length > 0) return;
  const socket = conn.raw;
  const handle = handleOf(socket);
  const parser = (socket as unknown as { parser?: { incoming?: { complete?: boolean } | null } | null }).parser;
  if (!handle || !parser || socket.destroyed || socket.writableEnded || !socket.readable) {
    conn.stays = true; // closing, or no longer HTTP (upgraded): it drains
    return;
  }
  if (socket.bytesRead > conn.readMark) return; // a next request is arriving
  handle.readStop();
  const boundary = socket.bytesRead === conn.readMark && conn.queue.length === 0 && socket.readableLength === 0 &&
    !(parser.incoming && !parser.incoming.complete) && socket.writableLength === 0 && !(handle.writeQueueSize ?? 0);
  if (!boundary) {
    handle.readStart();
    return;
  }
  conn.moving = true;
  const meta: Meta = { listener, remoteAddress: socket.remoteAddress ?? null, remotePort: socket.remotePort ?? null };
  const stay = () => {
    conn.moving = false;
    conn.stays = true;
    if (!socket.destroyed) handle.readStart();
  };
  mover.pass(socket, handle, meta).then((passed) => {
    if (passed) {
      if (!conn.forced) moved.handedOver++; // destroyed at the deadline meanwhile: counted there
      return;
    }
    stay();
  }, stay);
}
