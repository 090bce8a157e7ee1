/**
 * Handler combinators, as in gobwas/graceful: each returns a Handler that
 * queues descriptors on the response of one client.
 */
import type dgram from 'node:dgram';
import type fs from 'node:fs';
import type net from 'node:net';
import type { Meta } from '../meta.js';
import { fdOf, waitForFd } from '../fds.js';
import type { Handler, HandoffResponse } from './server.js';

type MetaArg = Meta | Uint8Array | null | undefined;

/** fdHandler sends one descriptor with meta. */
export function fdHandler(fd: number, meta?: MetaArg): Handler {
  fdOf(fd);
  return (res) => res.send(fd, meta);
}

/** listenerHandler sends a listening net.Server / http(s) / http2 server (TCP or UNIX), or a listening fd. */
export function listenerHandler(server: net.Server | number, meta?: MetaArg): Handler {
  return (res) => res.send(fdOf(server), meta);
}

/** socketHandler sends a connected net.Socket. */
export function socketHandler(socket: net.Socket, meta?: MetaArg): Handler {
  return (res) => res.send(fdOf(socket), meta);
}

/** dgramHandler sends a bound dgram.Socket. */
export function dgramHandler(socket: dgram.Socket, meta?: MetaArg): Handler {
  return (res) => res.send(fdOf(socket), meta);
}

/** fileHandler sends an open file: an fd, a FileHandle, or a file stream (waiting for it to open). */
export function fileHandler(file: number | fs.promises.FileHandle | fs.WriteStream | fs.ReadStream, meta?: MetaArg): Handler {
  return async (res) => {
    const fd = typeof file === 'object' && 'pending' in file ? await waitForFd(file) : fdOf(file);
    res.send(fd, meta);
  };
}

/** sequenceHandler runs handlers one after another on the same response. */
export function sequenceHandler(...handlers: Handler[]): Handler {
  return async (res) => {
    for (const h of handlers) await h(res);
  };
}

/** callbackHandler adapts any function of the response into a Handler. */
export function callbackHandler(fn: (res: HandoffResponse) => void | Promise<void>): Handler {
  return (res) => fn(res);
}
