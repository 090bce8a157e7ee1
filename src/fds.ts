/**
 * Descriptors <-> Node objects: take the fd out of a net.Server, net.Socket,
 * dgram.Socket, FileHandle or write stream, and turn a received fd back into
 * one of those. Node keeps owning the fd of an object it made; a descriptor
 * handed to one of the `*FromFd` helpers belongs to the object it returns.
 */
import net from 'node:net';
import dgram from 'node:dgram';
import fs from 'node:fs';
import { once } from 'node:events';
import { NotTransferableError, invalidArgument } from './errors.js';
import { addon } from './native.js';
import { rawListen } from './raw-listen.js';
import { bindSocket, clearStaleSocket } from './socketpath.js';

/** Transferable: anything fdOf can take a descriptor from. */
export type Transferable = number | net.Server | net.Socket | dgram.Socket | fs.promises.FileHandle | fs.WriteStream | fs.ReadStream;

interface WithHandle {
  _handle?: { fd?: number } | null;
}

function checkFd(fd: unknown, what: string): number {
  if (typeof fd === 'number' && Number.isInteger(fd) && fd >= 0) return fd;
  throw new NotTransferableError(
    `${what} has no open descriptor (fd ${String(fd)}): a server must be listening, a socket connected, a file open`,
  );
}

/** dgramFd reads a dgram.Socket's descriptor without the deprecated `_handle` getter. */
function dgramFd(socket: dgram.Socket): unknown {
  for (const sym of Object.getOwnPropertySymbols(socket)) {
    const state = (socket as unknown as Record<symbol, unknown>)[sym] as { handle?: { fd?: number } } | undefined;
    if (state && typeof state === 'object' && 'handle' in state && 'bindState' in state) return state.handle?.fd;
  }
  return undefined;
}

/**
 * fdOf returns the descriptor behind value, without duplicating it: it stays
 * owned by value. Throws NotTransferableError when there is none yet.
 */
export function fdOf(value: Transferable): number {
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0) return value;
    throw invalidArgument('fdOf', `a descriptor must be a non-negative integer, got ${value}`);
  }
  if (value instanceof net.Server) return checkFd((value as unknown as WithHandle)._handle?.fd, 'the server');
  if (value instanceof net.Socket) return checkFd((value as unknown as WithHandle)._handle?.fd, 'the socket');
  if (value instanceof dgram.Socket) return checkFd(dgramFd(value), 'the UDP socket');
  if (value instanceof fs.WriteStream || value instanceof fs.ReadStream) return checkFd(streamFd(value), 'the file stream');
  if (value && typeof value === 'object' && typeof (value as fs.promises.FileHandle).fd === 'number' &&
    typeof (value as fs.promises.FileHandle).close === 'function') {
    return checkFd((value as fs.promises.FileHandle).fd, 'the file handle');
  }
  throw invalidArgument('fdOf', 'expected a descriptor, net.Server, net.Socket, dgram.Socket, FileHandle or file stream');
}

/** streamFd reads the fd of a file stream: null until it has opened (the typings omit it). */
function streamFd(stream: fs.WriteStream | fs.ReadStream): number | null {
  return (stream as unknown as { fd: number | null }).fd;
}

/** waitForFd resolves with the descriptor of a file stream once it is open. */
export async function waitForFd(stream: fs.WriteStream | fs.ReadStream): Promise<number> {
  const fd = streamFd(stream);
  if (typeof fd === 'number') return fd;
  await once(stream, 'open');
  return fdOf(stream);
}

/**
 * listenOnFd makes server (net, http, https or http2) listen on a received
 * listening socket, TCP or UNIX. The fd belongs to the call from the start:
 * on success to the server, on failure it has been closed (by Node, which
 * closes a socket it made a handle of, or here), so the caller never closes it.
 */
export async function listenOnFd<S extends net.Server>(server: S, fd: number): Promise<S> {
  fdOf(fd);
  let before: fs.Stats;
  try {
    before = fs.fstatSync(fd);
  } catch (err) {
    throw invalidArgument('listenOnFd', `fd ${fd} is not open (${(err as NodeJS.ErrnoException).code})`);
  }
  if (!before.isSocket()) {
    addon.close(fd);
    throw new NotTransferableError(`listenOnFd: fd ${fd} is not a socket (closed it): pass a listening TCP or UNIX socket`);
  }
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      rawListen.call(server, { fd }, () => {
        server.off('error', onError);
        resolve();
      });
    });
  } catch (err) {
    closeIfSame(fd, before);
    throw err;
  }
  return server;
}

/** closeIfSame closes fd if it still is the socket before describes (Node did not close it); a reused number is left alone. */
function closeIfSame(fd: number, before: fs.Stats): void {
  let now: fs.Stats;
  try {
    now = fs.fstatSync(fd);
  } catch {
    return; // closed already
  }
  if (now.ino === before.ino && now.dev === before.dev) addon.close(fd);
}

/** serverFromFd wraps a received listening socket in a new net.Server. */
export function serverFromFd(fd: number, connectionListener?: (socket: net.Socket) => void): Promise<net.Server> {
  return listenOnFd(net.createServer(connectionListener), fd);
}

/** socketFromFd wraps a received connected socket in a net.Socket that owns it. */
export function socketFromFd(fd: number): net.Socket {
  fdOf(fd);
  return new net.Socket({ fd, readable: true, writable: true });
}

/** dgramFromFd wraps a received bound UDP socket in a dgram.Socket of the given type. */
export async function dgramFromFd(fd: number, type: 'udp4' | 'udp6' = 'udp4'): Promise<dgram.Socket> {
  fdOf(fd);
  const socket = dgram.createSocket(type);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    socket.once('error', onError);
    socket.bind({ fd }, () => {
      socket.off('error', onError);
      resolve();
    });
  });
  return socket;
}

/**
 * writeStreamFromFd wraps a received file descriptor in a write stream that
 * owns it. A file opened with O_APPEND keeps appending: the flag belongs to
 * the open file description both processes share.
 */
export function writeStreamFromFd(fd: number): fs.WriteStream {
  fdOf(fd);
  return fs.createWriteStream('', { fd, autoClose: true });
}

export interface UnixListenOptions {
  /** File mode of the socket (default 0o660). */
  mode?: number;
  /** listen(2) backlog (default 511, as Node's). */
  backlog?: number;
}

/**
 * listenOnPath makes server listen on a UNIX socket that this package binds,
 * instead of `server.listen(path)`. Node unlinks the socket file when a server
 * that bound the path itself closes, which would cut a successor that
 * inherited the socket off from new clients; a server listening on an fd
 * never does. A stale socket file is replaced; a live one throws.
 */
export async function listenOnPath<S extends net.Server>(server: S, socketPath: string, options: UnixListenOptions = {}): Promise<S> {
  const mode = options.mode ?? 0o660;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw invalidArgument('listenOnPath', `mode must be a file mode such as 0o660, got ${String(mode)}`);
  clearStaleSocket(socketPath, 'listenOnPath');
  return listenOnFd(server, bindSocket(socketPath, mode, options.backlog ?? 511, 'listenOnPath'));
}
