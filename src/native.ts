/**
 * The addon, loaded once, with its types. `GRACEFUL_ADDON_PATH` names another
 * build of it (the cmake-js one, say); otherwise node-gyp's build is used.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { AddonNotFoundError } from './errors.js';

/** PeerCredentials: SO_PEERCRED of a connection, as the kernel saw the peer at connect time. */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** DatagramSender: a datagram's length and who sent it; null credentials: nobody vouched for the sender. */
export interface DatagramSender {
  length: number;
  pid: number | null;
  uid: number | null;
  gid: number | null;
}

/** ReapedChild: a child reaped by addon.reap(); code is null when a signal (its number) ended it. */
export interface ReapedChild {
  pid: number;
  code: number | null;
  signal: number | null;
}

/** Poller: a libuv poll handle over a descriptor the addon owns. */
export interface Poller {
  /** start asks for events: 1 readable, 2 writable, 3 both (0 stops). */
  start(events: number): void;
  stop(): void;
  /** close releases the handle; call it before closing the descriptor. */
  close(): void;
  ref(): void;
  unref(): void;
}

export interface Addon {
  listen(path: string, mode: number, backlog: number): number;
  /** connect returns -1 when the listener's backlog is full. */
  connect(path: string): number;
  /** accept returns -1 when no connection waits. */
  accept(fd: number): number;
  close(fd: number): void;
  /** sendmsg returns bytes sent, -1 for EAGAIN, -2 for ETOOMANYREFS. */
  sendmsg(fd: number, bytes: Uint8Array, offset: number, length: number,
    fds: Int32Array | readonly number[] | null, nfds: number): number;
  /** recvmsg returns bytes read (0 at EOF) or -1 for EAGAIN; fdsOut[0] is the count. */
  recvmsg(fd: number, bytes: Uint8Array, offset: number, length: number, fdsOut: Int32Array): number;
  peercred(fd: number): PeerCredentials;
  setCloexec(fd: number, on: boolean): void;
  /** dup returns a close-on-exec duplicate of fd. */
  dup(fd: number): number;
  dup2(oldFd: number, newFd: number): number;
  sendDatagram(path: string, bytes: Uint8Array, offset: number, length: number,
    fds: Int32Array | readonly number[] | null, nfds: number): number;
  /** bindDatagram binds a datagram socket that receives its senders' credentials (SO_PASSCRED). */
  bindDatagram(path: string, mode: number): number;
  /**
   * recvDatagram reads one datagram into bytes; null when none waits.
   * Descriptors sent with it are closed. pid, uid and gid are null when no
   * credentials came with it (the sender is unknown). Throws EMSGSIZE (too
   * long) or ERR_GRACEFUL_FDS_TRUNCATED (ancillary data cut): that datagram
   * is dropped, the next one reads.
   */
  recvDatagram(fd: number, bytes: Uint8Array): DatagramSender | null;
  /** setChildSubreaper: orphaned descendants are reparented to this process (PR_SET_CHILD_SUBREAPER). */
  setChildSubreaper(): void;
  /** reap reaps exited children except the pids in skip (libuv's own); code or signal (a number) says how each ended. */
  reap(skip: readonly number[]): ReapedChild[];
  /** pidfdOpen returns a pidfd of pid (close-on-exec), readable once the process exits. */
  pidfdOpen(pid: number): number;
  Poller: new (fd: number, callback: (status: number, events: number) => void) => Poller;
  maxFds: number;
}

export const POLL_READABLE = 1;
export const POLL_WRITABLE = 2;
/** Returned by connect/accept/sendmsg/recvmsg: try again when ready. */
export const AGAIN = -1;
/** Returned by sendmsg: too many descriptors in flight; retry once the peer reads. */
export const TOO_MANY_REFS = -2;

function load(): Addon {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const override = process.env.GRACEFUL_ADDON_PATH;
  const file = override ? path.resolve(root, override) : path.join(root, 'build/Release/graceful_fdpass.node');
  if (!existsSync(file)) {
    throw new AddonNotFoundError(
      `the native addon is missing at ${file}: run \`npm ci\` (or \`npm run build:native\`) in ${root}` +
        (override ? ', or fix GRACEFUL_ADDON_PATH' : ''),
    );
  }
  return createRequire(import.meta.url)(file) as Addon;
}

export const addon: Addon = load();
