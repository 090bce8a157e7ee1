/**
 * passSocket: the old instance's side of `app.handOver()`. It checks a
 * connection the application hands over, stops reading it, waits for its
 * writes to reach the kernel, and passes it with its state to the new
 * instance (a ConnectionMover, see drain/handover.ts). The checks and the
 * codec are in socket-handover.ts; the tracker (drain.ts) owns the
 * connection's record and counts it.
 */
import type net from 'node:net';
import { debuglog } from 'node:util';
import { HandOverFailedError, SocketHandedOverError, invalidArgument } from '../errors.js';
import type { Meta } from '../meta.js';
import type { ConnectionMover } from './drain/handover.js';
import { SOCKET_KIND, encodeState, flushed, stopReading, type HandOverOptions } from './socket-handover.js';

const debug = debuglog('graceful');

/** The listener a socket is handed over from. */
export interface PassListener {
  name: string;
  /** Its handOverSockets option is on (and it is no TLS server). */
  handsOverSockets: boolean;
  /** Where its sockets go now: the new instance, during a redeploy's drain; else null. */
  mover: ConnectionMover | null;
}

/** The tracker's record of the connection: its protocol state, and whether it is being passed. */
export interface PassConn {
  kind: string;
  moving: boolean;
}

/** Sockets handed over by the application, or being handed: a second handOver() of one is refused. */
const handed = new WeakSet<net.Socket>();

/**
 * passSocket passes socket, a connection (conn) of listener that the
 * application owns (upgraded, or of a plain net.Server), to the new
 * instance with state and head. Everything up to the stop of the reading
 * happens in the caller's tick. Resolves true once the new instance holds
 * it (this process's socket is then destroyed); rejects with a coded error,
 * the socket untouched and read again: ERR_GRACEFUL_INVALID_ARGUMENT,
 * ERR_GRACEFUL_META_TOO_LARGE, ERR_GRACEFUL_CLOSED,
 * ERR_GRACEFUL_UNREAD_BYTES, ERR_GRACEFUL_SOCKET_HANDED_OVER,
 * ERR_GRACEFUL_HANDOVER_FAILED (no new instance takes it now).
 */
export async function passSocket(listener: PassListener, conn: PassConn | undefined, socket: net.Socket,
  state: unknown, options?: HandOverOptions): Promise<true> {
  const name = listener.name;
  if (!conn) throw invalidArgument('handOver', `the socket is no connection of "${name}"`);
  if (conn.moving || handed.has(socket)) {
    throw new SocketHandedOverError(`handOver: this connection of "${name}" is being handed over, or was already: hand each socket over once`);
  }
  if (conn.kind !== 'upgraded' && conn.kind !== 'other') {
    throw invalidArgument('handOver', `this connection of "${name}" speaks ${conn.kind}, which the library drains itself (idle HTTP/1.1 ones move with handOver: true): ` +
      'the application hands over only upgraded connections (WebSocket) and those of a plain net.Server');
  }
  if (!listener.handsOverSockets) {
    throw invalidArgument('handOver', `listener "${name}" does not hand sockets over: listen with handOverSockets: true (not on a TLS server)`);
  }
  const fields = encodeState(state, options);
  const mover = listener.mover;
  if (!mover) {
    throw new HandOverFailedError(`handOver: no new instance takes connections of "${name}" now: hand them over from onDrain during a redeploy, ` +
      `to a new instance whose listener "${name}" has handOverSockets: true and an 'adopt-socket' listener; close this one your own way`);
  }
  const handle = stopReading(socket);
  conn.moving = true;
  handed.add(socket);
  const giveBack = (err: Error): Error => {
    conn.moving = false;
    handed.delete(socket);
    if (!socket.destroyed) handle.readStart();
    return err;
  };
  debug('%s: handing a socket over (%d byte(s) of head)', name, options?.head?.length ?? 0);
  await flushed(socket, handle);
  if (socket.destroyed) throw giveBack(new HandOverFailedError(`handOver: the connection of "${name}" closed while its last writes were sent`));
  const meta: Meta = {
    kind: SOCKET_KIND, listener: name, remoteAddress: socket.remoteAddress ?? null, remotePort: socket.remotePort ?? null, ...fields,
  };
  let passed: boolean;
  try {
    passed = await mover.pass(socket, handle, meta);
  } catch (err) {
    throw giveBack(new HandOverFailedError(`handOver: ${(err as Error).message}`, { cause: err }));
  }
  if (!passed) {
    const why = mover.error?.message ?? mover.lastError?.message ?? 'the descriptor could not be passed';
    throw giveBack(new HandOverFailedError(`handOver: ${why}; the connection of "${name}" stays here: close it your own way`));
  }
  return true;
}
