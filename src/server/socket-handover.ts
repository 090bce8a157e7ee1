/**
 * Socket hand-over with the application's state: the checks and the codec
 * behind `app.handOver(socket, state, { head })`, for upgraded connections
 * (WebSocket) and the connections of a plain net.Server.
 *
 * The discipline: what moves is the descriptor (every byte still in the
 * kernel goes with it), the state (JSON) and `head`, the bytes the
 * application read but did not parse. The library stops reading the socket
 * first (readStop on its libuv handle), so nothing more reaches this
 * process. Bytes Node read but the application never consumed (the socket's
 * readable buffer, e.g. a paused socket) are refused rather than carried:
 * the library cannot know where they belong in the application's parse.
 * Bytes written but not yet taken by the kernel are waited for.
 */
import net from 'node:net';
import { loadedBuiltin } from '../node-builtins.js';
import { ClosedError, MetaTooLargeError, UnreadBytesError, invalidArgument } from '../errors.js';
import type { Meta } from '../meta.js';
import { handleOf } from './conn-handover.js';

/** Meta `kind` of a socket the application hands over with its state. */
export const SOCKET_KIND = 'socket';
/** Largest state (as JSON, in bytes) and head (in bytes) a socket carries. */
export const MAX_STATE_BYTES = 16 * 1024;
export const MAX_HEAD_BYTES = 16 * 1024;

type Handle = NonNullable<ReturnType<typeof handleOf>>;

/** HandOverOptions: the third argument of handOver(). */
export interface HandOverOptions {
  /** Bytes the application read from the socket but did not parse: the new instance reads them first. */
  head?: Buffer | Uint8Array;
}

/** AdoptedSocket: what the 'adopt-socket' event of the new instance carries. */
export interface AdoptedSocket {
  listener: string;
  /** The state the predecessor handed with it (a fresh copy, parsed from JSON). */
  state: unknown;
  /** Bytes to parse before anything the socket reads (may be empty). */
  head: Buffer;
  /** 'upgraded' (an http.Server's upgraded connection) or 'other' (a plain net.Server's). */
  kind: 'upgraded' | 'other';
  remoteAddress: string | null;
  remotePort: number | null;
  socket: net.Socket;
}

/**
 * encodeState checks state and head and turns them into meta fields; it
 * throws ERR_GRACEFUL_INVALID_ARGUMENT for a state that is not JSON-able (a
 * BigInt, a cycle, a function, undefined) or a head that is not bytes, and
 * ERR_GRACEFUL_META_TOO_LARGE past MAX_STATE_BYTES or MAX_HEAD_BYTES.
 */
export function encodeState(state: unknown, options: HandOverOptions | undefined): Meta {
  let json: string | undefined;
  try {
    json = JSON.stringify(state);
  } catch (err) {
    throw invalidArgument('handOver', `the state must be JSON-able (${(err as Error).message}): pass plain objects, arrays, strings, numbers, booleans or null`);
  }
  if (typeof json !== 'string') {
    throw invalidArgument('handOver', `the state must be JSON-able, got ${typeof state}: pass plain objects, arrays, strings, numbers, booleans or null`);
  }
  const stateBytes = Buffer.byteLength(json);
  if (stateBytes > MAX_STATE_BYTES) {
    throw new MetaTooLargeError(`handOver: the state is ${stateBytes} bytes as JSON, at most ${MAX_STATE_BYTES} travel with a socket: keep large data in a store both instances reach and hand over its key`);
  }
  const head = options?.head ?? Buffer.alloc(0);
  if (!(head instanceof Uint8Array)) {
    throw invalidArgument('handOver', `head must be a Buffer (the bytes read but not parsed), got ${typeof head}`);
  }
  if (head.length > MAX_HEAD_BYTES) {
    throw new MetaTooLargeError(`handOver: head is ${head.length} bytes, at most ${MAX_HEAD_BYTES} travel with a socket: hand the socket over at a message boundary`);
  }
  return { state: json, head: Buffer.from(head.buffer, head.byteOffset, head.length).toString('base64') };
}

/** decodeState reads the state and head back from a received meta; null when they are not there or broken. */
export function decodeState(meta: Record<string, unknown>): { state: unknown; head: Buffer } | null {
  if (typeof meta.state !== 'string' || typeof meta.head !== 'string') return null;
  try {
    return { state: JSON.parse(meta.state) as unknown, head: Buffer.from(meta.head, 'base64') };
  } catch {
    return null;
  }
}

/**
 * stopReading checks that socket can be handed over now and stops reading
 * it: throws ERR_GRACEFUL_INVALID_ARGUMENT for what is no TCP socket of
 * this process (or a TLS one: its state does not move), ERR_GRACEFUL_CLOSED
 * for a socket destroyed or ended, ERR_GRACEFUL_UNREAD_BYTES when Node
 * read bytes the application has not consumed (reading goes on). Returns
 * the handle, not reading; the caller reads again (readStart) if it does
 * not pass the socket after all.
 */
export function stopReading(socket: net.Socket): Handle {
  const tls = loadedBuiltin('tls'); // no TLS socket exists before it is loaded
  if (tls && socket instanceof tls.TLSSocket) {
    throw invalidArgument('handOver', 'a TLS socket cannot be handed over (its TLS state stays in this process): close it its own way');
  }
  if (socket.destroyed || !socket.readable || socket.writableEnded) {
    throw new ClosedError('handOver: the socket is closed or closing: there is nothing to hand over');
  }
  const handle = handleOf(socket);
  if (!handle) throw invalidArgument('handOver', 'the socket has no descriptor of its own (not a TCP or UNIX socket of this process)');
  handle.readStop();
  if (socket.readableLength > 0) {
    handle.readStart();
    throw new UnreadBytesError(`handOver: ${socket.readableLength} byte(s) were read from the socket but not consumed by the application (a paused socket): ` +
      'read them (socket.read()) and pass what your parser did not consume as head, or hand the socket over once it has none');
  }
  return handle;
}

/**
 * flushed resolves once everything written to socket was taken by the
 * kernel (what is still queued in this process would be lost with it).
 */
export function flushed(socket: net.Socket, handle: Handle): Promise<void> {
  if (socket.writableLength === 0 && !(handle.writeQueueSize ?? 0)) return Promise.resolve();
  // Writes complete in order: an empty one completes after every earlier one.
  return new Promise((resolve) => socket.write(Buffer.alloc(0), () => resolve()));
}

/** isSocket: the handOver() argument is a net.Socket at all. */
export function isSocket(socket: unknown): socket is net.Socket {
  return socket instanceof net.Socket;
}
