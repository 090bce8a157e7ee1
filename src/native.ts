/**
 * The addon, loaded once, with its types. `GRACEFUL_ADDON_PATH` names a build
 * of it (the cmake-js one, say); otherwise node-gyp-build picks one: a build
 * from source in build/Release first, else the prebuilt binary for this
 * platform in prebuilds/<platform>-<arch>/ (the package ships Linux ones).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { AddonLoadFailedError, AddonNotFoundError } from './errors.js';

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
  /** socketpair: a connected pair of UNIX stream sockets, non-blocking and close-on-exec; throws the errno (EMFILE). */
  socketpair(): [number, number];
  /** accept returns -1 when no connection waits. */
  accept(fd: number): number;
  close(fd: number): void;
  /**
   * closeFds closes fds[0..count) in one call, going on past a failure, and
   * returns how many failed; each entry close(2) failed on becomes -errno
   * (EINTR counts as closed), a negative entry fails with EBADF untried.
   */
  closeFds(fds: Int32Array, count: number): number;
  /** sendmsg returns bytes sent, -1 for EAGAIN, -2 for ETOOMANYREFS. */
  sendmsg(fd: number, bytes: Uint8Array, offset: number, length: number,
    fds: Int32Array | readonly number[] | null, nfds: number): number;
  /** recvmsg returns bytes read (0 at EOF) or -1 for EAGAIN; fdsOut[0] is the count. */
  recvmsg(fd: number, bytes: Uint8Array, offset: number, length: number, fdsOut: Int32Array): number;
  /**
   * bindReceive binds bytes and fdsOut (at least 254 entries) for
   * recvmsgBound, which then reads into them as recvmsg(fd, bytes, 0, length,
   * fdsOut) would, with numbers only; they stay alive until others are bound.
   * It returns the binding's number, which every recvmsgBound names: one
   * whose buffers were bound again since (another copy of the module in this
   * process) returns STALE and does nothing: bind again, then retry.
   * recvmsgMany needs reads too (at least 3 entries: 1 + 2 per read).
   */
  bindReceive(bytes: Uint8Array, fdsOut: Int32Array, reads?: Int32Array): number;
  recvmsgBound(binding: number, fd: number, length: number): number;
  /**
   * recvmsgMany reads ahead: recvmsg after recvmsg into the bound buffers, end
   * to end, until EAGAIN, maxReads reads, maxFds descriptors, less than 4096
   * bytes of room (of length) or of room for 253 descriptors, or the end of
   * the stream (a read of 0). It returns how many reads it made, AGAIN when
   * the first found nothing, STALE as recvmsgBound; the first read's failure
   * throws as recvmsg's. Read i brought reads[1 + 2i] bytes and reads[2 + 2i]
   * descriptors, end to end in bytes (from 0) and fdsOut (from 1; fdsOut[0]
   * is the total). reads[0]: 1 when it stopped at EAGAIN, 0 at a bound or
   * the end, or the negative status of a later read that failed, to raise
   * with recvmsgFailure once the reads before it are handled.
   */
  recvmsgMany(binding: number, fd: number, length: number, maxReads: number, maxFds: number): number;
  /** recvmsgFailure throws the error of a negative status of recvmsgMany. */
  recvmsgFailure(status: number): never;
  /**
   * bindSend binds bytes and fds for sendmsgBound, which then sends
   * bytes[offset, offset + length) with fds[fdsOffset, fdsOffset + nfds) as
   * sendmsg would, with numbers only, or returns STALE as recvmsgBound does.
   */
  bindSend(bytes: Uint8Array, fds: Int32Array): number;
  sendmsgBound(binding: number, fd: number, offset: number, length: number, fdsOffset: number, nfds: number): number;
  peercred(fd: number): PeerCredentials;
  setCloexec(fd: number, on: boolean): void;
  /** shutdownWrite: shutdown(fd, SHUT_WR): the peer reads the end of the stream; this side can still read. */
  shutdownWrite(fd: number): void;
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
  /** listenReusePort: a TCP socket (non-blocking, close-on-exec) with SO_REUSEPORT, bound to a numeric host, listening unless listen is false. */
  listenReusePort(host: string, port: number, backlog: number, ipv6Only: boolean, listen?: boolean): { fd: number; port: number };
  /**
   * setReusePort sets SO_REUSEPORT on fd, a socket already bound: Linux then
   * lets a socket with SO_REUSEPORT (same uid) bind an overlapping address on
   * its port. Throws as Node would (code, errno, syscall).
   */
  setReusePort(fd: number): void;
  /**
   * dropIncoming attaches a socket filter (SO_ATTACH_FILTER) that drops every
   * packet to fd: a listening socket then takes no new connection (a SYN is
   * sent again by the client, later) but what it queued can still be accepted.
   */
  dropIncoming(fd: number): void;
  /** bindUdp: a UDP socket (non-blocking, close-on-exec) bound to a numeric host, which nobody reads yet. */
  bindUdp(host: string, port: number, ipv6Only: boolean): { fd: number; port: number };
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
/** Returned by recvmsgBound/sendmsgBound: the buffers were bound again since; bind, then retry. */
export const STALE = -3;

/** The package's root: dist/src/native.js lives two levels below it. */
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * rebuildAdvice says how to build the addon where the package is: inside a
 * project's node_modules, `npm rebuild graceful-restart` (`npm ci` inside the
 * package fails there, and `npm run build:native` needs its dev dependencies);
 * in a checkout, `npm ci` or `npm run build:native` there.
 */
export function rebuildAdvice(root: string): string {
  const inNodeModules = root.split(path.sep).includes('node_modules');
  return inNodeModules
    ? 'run `npm rebuild graceful-restart` in your project (compiling needs a C++ compiler, make and Python 3)'
    : `run \`npm ci\` (or \`npm run build:native\`) in ${root}`;
}

/**
 * missingAddonMessage is the message of ERR_GRACEFUL_ADDON_NOT_FOUND: what was
 * looked for where, and what to run. override is GRACEFUL_ADDON_PATH resolved.
 */
export function missingAddonMessage(root: string, override?: string): string {
  if (override) {
    return `the native addon is missing at ${override}: fix GRACEFUL_ADDON_PATH, or unset it to use the package's own build`;
  }
  return (
    `the native addon is not built, and no prebuilt one fits ${process.platform}-${process.arch}: ` +
    `nothing in ${path.join(root, 'build/Release')} or ${path.join(root, 'prebuilds')}; ${rebuildAdvice(root)}`
  );
}

/** The addon as `npm ci` or `npm run build:native` builds it in the package (binding.gyp's target). */
const OWN_BUILD = 'build/Release/graceful_fdpass.node';

function resolveAddon(root: string): string {
  const override = process.env.GRACEFUL_ADDON_PATH;
  if (override) {
    const file = path.resolve(root, override);
    if (!existsSync(file)) throw new AddonNotFoundError(missingAddonMessage(root, file));
    return file;
  }
  // node-gyp-build's first choice, build/Release, unless told to look elsewhere: found without
  // loading it (two CommonJS modules and the package.json read, about 2 ms of every process).
  if (!process.env.GRACEFUL_RESTART_PREBUILD && !process.env.PREBUILDS_ONLY) {
    const own = path.join(root, OWN_BUILD);
    if (existsSync(own)) return own;
  }
  const require = createRequire(import.meta.url);
  const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };
  try {
    return nodeGypBuild.path(root);
  } catch (cause) {
    throw new AddonNotFoundError(missingAddonMessage(root), { cause });
  }
}

function load(): Addon {
  const file = resolveAddon(packageRoot);
  try {
    // What require() of a .node file does, without the CommonJS loader around it.
    const module = { exports: {} as Addon };
    process.dlopen(module, file);
    return module.exports;
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
    throw new AddonLoadFailedError(
      `the native addon at ${file} cannot be loaded (${reason}): ` +
        (process.env.GRACEFUL_ADDON_PATH ? 'fix GRACEFUL_ADDON_PATH, or ' : '') +
        rebuildAdvice(packageRoot),
      { cause },
    );
  }
}

// A copy with fast properties: the addon's own exports object is a dictionary
// (one property added at a time by Node-API), so every call on the hot path,
// addon.recvmsg, addon.sendmsg, addon.closeFds, would look its function up in
// a hash table.
export const addon: Addon = { ...load() };
