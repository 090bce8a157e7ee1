/**
 * webSocketBoundary: where a WebSocket of the `ws` package stands, for a
 * hand-over at a frame boundary. It reads the WebSocket's own parser state
 * (ws 8: its receiver and sender) without importing `ws`: this package does
 * not depend on it.
 *
 * A WebSocket can move when its receiver waits for the first bytes of a
 * frame header and is not inside a fragmented message: the bytes it holds
 * then (at most the first byte of the next header) are the head that travels
 * with the socket, and the new instance's WebSocket parses them first.
 * permessage-deflate keeps a compression context in this process: such a
 * WebSocket cannot move.
 */
import type net from 'node:net';
import { MidFrameError, invalidArgument } from '../errors.js';

/** The parts of a `ws` WebSocket this reads (ws 8). */
interface WsLike {
  readyState: number;
  _socket?: net.Socket | null;
  _extensions?: Record<string, unknown>;
  _receiver?: {
    _state: number;
    _buffers: Buffer[];
    _fragmented: number;
    _fragments: unknown[];
    writableLength: number;
  };
  _sender?: { _queue: unknown[]; _bufferedBytes: number };
}

const OPEN = 1;
const GET_INFO = 0;

/**
 * webSocketBoundary returns the socket of ws and the bytes its parser holds
 * but has not parsed, when it sits at a frame boundary. Throws
 * ERR_GRACEFUL_MID_FRAME when it is inside a frame or a fragmented message,
 * or has a message still queued to send (try again after its next
 * 'message'), and ERR_GRACEFUL_INVALID_ARGUMENT for what is no open `ws`
 * WebSocket or one with permessage-deflate. Call it and handOver() in the
 * same tick: handOver() stops the reading at once.
 */
export function webSocketBoundary(ws: unknown): { socket: net.Socket; head: Buffer } {
  const w = ws as WsLike | null;
  if (!w || typeof w !== 'object' || !w._receiver || !w._sender || !Array.isArray(w._receiver._buffers)) {
    throw invalidArgument('handOverWebSocket', 'pass a WebSocket of the ws package (8.x), as WebSocketServer gives it');
  }
  if (w.readyState !== OPEN || !w._socket) {
    throw invalidArgument('handOverWebSocket', `the WebSocket is not open (readyState ${w.readyState}): there is nothing to hand over`);
  }
  if (w._extensions && Object.keys(w._extensions).length > 0) {
    throw invalidArgument('handOverWebSocket', `the WebSocket uses ${Object.keys(w._extensions).join(', ')}, whose state stays in this process: ` +
      'create the WebSocketServer with perMessageDeflate: false to hand its connections over');
  }
  const r = w._receiver;
  if (r._state !== GET_INFO || r._fragmented !== 0 || r._fragments.length > 0 || r.writableLength > 0) {
    throw new MidFrameError('handOverWebSocket: the WebSocket is in the middle of a frame or of a fragmented message: ' +
      'hand it over after its next \'message\' event, or close it (1012) if it never gets there');
  }
  if (w._sender._queue.length > 0 || w._sender._bufferedBytes > 0) {
    throw new MidFrameError('handOverWebSocket: the WebSocket still has a message queued to send: hand it over once it is sent');
  }
  return { socket: w._socket, head: Buffer.concat(r._buffers) };
}
