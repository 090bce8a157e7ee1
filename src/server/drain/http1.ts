/**
 * The HTTP/1 part of a drain: it follows the requests of each keep-alive
 * connection (in flight, pipelined, a `100-continue` pending), makes the last
 * response queued during a drain say `Connection: close` (Node then closes the
 * connection after it), and ends a connection that stayed idle for the grace
 * window. A connection is idle when nothing is queued and nothing was read
 * since its last answer.
 */
import type http from 'node:http';
import type net from 'node:net';
import type { Conn, Pending } from './conns.js';

/** Http1Drain: what the HTTP/1 part asks of the drain of its listener. */
export interface Http1Drain {
  /** draining: a drain of the listener is under way. */
  draining(): boolean;
  /** mayMove: conn is to be passed to the new instance once idle: its responses keep the connection. */
  mayMove(conn: Conn): boolean;
  /** idle: conn has no response left to write (see markIdle). */
  idle(conn: Conn): void;
}

/**
 * followRequest follows req and its response res on conn, an HTTP/1
 * connection; it must run before the application's 'request' listener, so
 * that the response is known before it is answered. During a drain the last
 * response queued says `Connection: close`, unless more requests were read in
 * the same chunk or the connection is to move.
 */
export function followRequest(conn: Conn, req: http.IncomingMessage, res: http.ServerResponse, drain: Http1Drain): void {
  conn.kind = 'http1';
  conn.requests++;
  // Requests read in one chunk are parsed one after the other before any
  // timer runs: a response written now, synchronously, must not close the
  // connection if more requests follow in the same chunk.
  if (conn.inChunk++ === 0) {
    conn.chunkHeads = drain.draining() ? headsInChunk(req.socket) : 0;
    process.nextTick(() => (conn.inChunk = 0));
  }
  const item: Pending = { res, followed: drain.draining() && conn.chunkHeads > conn.inChunk };
  conn.queue.push(item);
  const writeHead = res.writeHead;
  // Every way of answering goes through writeHead (write, end and implicit headers too).
  res.writeHead = ((...args: Parameters<typeof writeHead>) => {
    if (drain.draining() && !res.headersSent && conn.queue[conn.queue.length - 1] === item && !item.followed && !drain.mayMove(conn)) {
      res.setHeader('Connection', 'close');
    }
    return writeHead.apply(res, args);
  }) as typeof writeHead;
  const done = () => {
    const i = conn.queue.indexOf(item);
    if (i < 0) return;
    conn.queue.splice(i, 1);
    if (conn.queue.length === 0) drain.idle(conn);
  };
  res.once('finish', done);
  res.once('close', done);
  // A body still arriving after the answer is not a next request.
  req.once('end', () => {
    if (conn.queue.length === 0) drain.idle(conn);
  });
}

/** markIdle: conn is idle from now; bytes read after this are a next request. */
export function markIdle(conn: Conn): void {
  conn.idleSince = Date.now();
  conn.readMark = conn.io.bytesRead;
}

/**
 * endIfIdle ends conn, an HTTP/1 connection with nothing queued, if nothing
 * of a next request has been read and it has been idle for graceMs at now;
 * returns whether it did.
 */
export function endIfIdle(conn: Conn, now: number, graceMs: number): boolean {
  if (conn.io.bytesRead > conn.readMark) return false; // a next request is arriving
  if (now - conn.idleSince < graceMs) return false;
  conn.ending = true;
  conn.io.end();
  return true;
}

const HEADERS_END = Buffer.from('\r\n\r\n');

/**
 * headsInChunk counts the ends of request heads (CRLFCRLF) in the chunk the
 * parser of socket is executing: more than the requests already emitted from
 * it means more follow. A body that contains CRLFCRLF counts too: the
 * connection is then left to the idle close, the safe side. 0 when the
 * parser has no chunk (or none can be read).
 */
export function headsInChunk(socket: net.Socket): number {
  const parser = (socket as unknown as { parser?: { getCurrentBuffer?: () => Buffer } }).parser;
  let buf: Buffer | undefined;
  try {
    buf = parser?.getCurrentBuffer?.();
  } catch {
    return 0;
  }
  if (!buf) return 0;
  let n = 0;
  for (let i = buf.indexOf(HEADERS_END); i >= 0; i = buf.indexOf(HEADERS_END, i + 4)) n++;
  return n;
}
