/**
 * ControlPort: what the engine needs from a control socket, owned here so
 * that the engine never imports the control socket (control/ implements it:
 * ControlServer satisfies it structurally). The redeploy hands its listening
 * socket and connections over and takes them back; the halt lets its last
 * replies out and closes it; the start binds it or listens on the one inherited.
 */
import type { OutgoingFd } from '../handoff/connection.js';
import type { Meta } from '../meta.js';

export interface ControlPort {
  /** Open connections (status). */
  readonly connectionCount: number;
  /** listen binds the socket file, or listens on inheritedFd (activated: systemd's, whose file is kept). */
  listen(inheritedFd?: number, options?: { activated?: boolean }): Promise<void>;
  /** start accepts on a socket inherited from a predecessor (from ready()). */
  start(): void;
  /** adopt takes over a connection a predecessor handed over. */
  adopt(fd: number, meta: Meta | string): void;
  /** The loop is no longer held by the socket (a start step failed), or held again. */
  unref(): void;
  ref(): void;
  /** handoff: the listening socket and the idle connections, for the new instance. */
  handoff(): OutgoingFd[];
  /** The new instance holds them now; or it failed and they are ours again. */
  handoffDone(): void;
  handoffFailed(): void;
  /** takeBack: the new instance died in the take-back window: listen and serve again. */
  takeBack(): Promise<void>;
  /** settle resolves once the replies under way are out, or at deadline (ms since the epoch). */
  settle(deadline: number): Promise<void>;
  /** close stops the socket; release: remove its file (not after a hand-over). */
  close(release: boolean): void;
}

/**
 * ControlLimits: the bounds of the control socket, as the controlLimits
 * option takes them (the same fields as the control socket's options).
 */
export interface ControlLimits {
  /** Most connections at once (default 64). */
  maxConnections?: number;
  /** Connections kept, beyond maxConnections, for `status` probes (default 4). */
  probeConnections?: number;
  /** Refused connections being answered at once; more are closed without an answer (default 16). */
  maxRefused?: number;
  /** ms a line may take from its first byte to its newline (default 10 s). */
  lineTimeout?: number;
  /** ms a client may leave its output unread before it is dropped (default 10 s). */
  writeTimeout?: number;
  /** Lines a connection may queue while a command runs; reading stops beyond (default 32). */
  maxQueuedLines?: number;
  /** Unread output a connection may hold before it is dropped (default 1 MiB). */
  maxOutputBytes?: number;
}
