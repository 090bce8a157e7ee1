/**
 * Connections: the open connections of one listener, each with its protocol
 * state (a Conn), found by the accepted socket or by the socket its protocol
 * runs on (the TLSSocket over TLS); and stateOf, the word status counts a
 * connection under. The drain's other parts read and change the Conn records;
 * only this table adds and removes them.
 */
import type http from 'node:http';
import type net from 'node:net';
import { emptyStates, type ConnectionStates } from '../../conn-states.js';

/**
 * Kind: what a connection speaks, as far as the drain knows: a TLS handshake
 * under way, HTTP/1, an HTTP/2 session, upgraded (the application's), or
 * another protocol (the application's too).
 */
export type Kind = 'tls' | 'http1' | 'h2' | 'upgraded' | 'other';

/** Pending: an HTTP/1 response not finished yet. */
export interface Pending {
  res: http.ServerResponse;
  /** More requests were read in the same chunk after this one: its response must keep the connection. */
  followed: boolean;
}

/** Conn: the drain's record of one connection. */
export interface Conn {
  kind: Kind;
  /** The accepted socket: what is counted and, at a deadline, destroyed. */
  raw: net.Socket;
  /** The socket the protocol runs on (the TLSSocket over TLS). */
  io: net.Socket;
  /** HTTP/1: responses not finished, in request order. */
  queue: Pending[];
  idleSince: number;
  /** Requests seen on it. */
  requests: number;
  /** io.bytesRead when it last became idle: more means a next request is arriving. */
  readMark: number;
  /** Requests seen in the chunk the parser is executing (reset on the next tick). */
  inChunk: number;
  /** Request heads ending in that chunk, counted at its first request of a drain. */
  chunkHeads: number;
  ending: boolean;
  /** Being passed to the new instance, or passed. */
  moving: boolean;
  /** A pass failed, or the connection cannot move: it drains. */
  stays: boolean;
  forced: boolean;
}

export class Connections {
  /** Conn by the accepted socket. */
  private readonly byRaw = new Map<net.Socket, Conn>();
  /** Conn by the socket its protocol runs on (raw, or the TLSSocket). */
  private readonly byIo = new Map<net.Socket, Conn>();

  /** add records a connection accepted as raw whose protocol runs on io, idle from now. */
  add(raw: net.Socket, io: net.Socket, kind: Kind): Conn {
    const conn: Conn = {
      kind, raw, io, queue: [], requests: 0, idleSince: Date.now(), readMark: io.bytesRead, inChunk: 0, chunkHeads: 0, ending: false,
      moving: false, stays: false, forced: false,
    };
    this.byRaw.set(raw, conn);
    this.byIo.set(io, conn);
    return conn;
  }

  /** setIo: conn's protocol runs on io from now on (the TLSSocket, once its handshake is done). */
  setIo(conn: Conn, io: net.Socket): void {
    conn.io = io;
    this.byIo.set(io, conn);
  }

  /** remove forgets conn (it closed), under both its sockets. */
  remove(conn: Conn): void {
    if (this.byRaw.get(conn.raw) === conn) this.byRaw.delete(conn.raw);
    if (this.byIo.get(conn.raw) === conn) this.byIo.delete(conn.raw);
    this.byIo.delete(conn.io);
  }

  /** byAccepted: the connection accepted as socket. */
  byAccepted(socket: net.Socket): Conn | undefined {
    return this.byRaw.get(socket);
  }

  /** byProtocol: the connection whose protocol runs on socket. */
  byProtocol(socket: net.Socket): Conn | undefined {
    return this.byIo.get(socket);
  }

  /** has: socket is one of the connections (the accepted socket, or the one its protocol runs on). */
  has(socket: net.Socket): boolean {
    return this.byRaw.has(socket) || this.byIo.has(socket);
  }

  get size(): number {
    return this.byRaw.size;
  }

  values(): IterableIterator<Conn> {
    return this.byRaw.values();
  }

  /** states: the connections by state, for status, with http2Streams streams open. */
  states(http2Streams: number): ConnectionStates {
    const out = emptyStates();
    for (const c of this.byRaw.values()) out[stateOf(c)]++;
    out.http2Streams = http2Streams;
    return out;
  }
}

/** stateOf: the ConnectionStates key a connection counts under. */
export function stateOf(c: Conn): Exclude<keyof ConnectionStates, 'http2Streams'> {
  switch (c.kind) {
    case 'tls': return 'tlsHandshake';
    case 'h2': return 'http2';
    case 'upgraded': return 'upgraded';
    case 'other': return 'other';
    case 'http1':
      if (c.moving) return 'handingOver';
      if (c.queue.length > 1) return 'pipelined';
      if (c.queue.length === 1) return 'request';
      if (c.io.bytesRead > c.readMark) return 'headers';
      return c.io !== c.raw && c.requests === 0 ? 'tlsBeforeRequest' : 'idle';
  }
}
