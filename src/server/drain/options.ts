/**
 * The drain's contract with the application: the options of a listener's
 * drain (DrainOptions, checked by checkDrainOptions), what onDrain receives
 * (DrainEvent) and what became of the connections (MoveCounts).
 */
import type net from 'node:net';
import { invalidArgument } from '../../errors.js';

/** DrainOptions: what a listener does with the connections the library does not close itself. */
export interface DrainOptions {
  /**
   * onDrain is called when a drain of this listener starts, with its upgraded
   * connections (WebSocket, CONNECT, any `Upgrade:`) and its other-protocol
   * connections, then again with each connection upgraded while the drain
   * runs. The application ends them its own way (a WebSocket close 1012,
   * staggered); whatever is left open at the deadlines is destroyed.
   */
  onDrain?: (event: DrainEvent) => void;
  /**
   * ms an upgraded connection may stay open once a drain started (default: the
   * shutdown timeout). It may be longer than the shutdown timeout: the old
   * instance then lives until its last upgraded connection ends, or this limit.
   */
  upgradedTimeout?: number;
  /**
   * handOver: at a redeploy, idle HTTP/1.1 keep-alive connections of this
   * listener move to the new instance instead of being closed (plain
   * `http.Server` only; TLS, HTTP/2 and upgraded connections drain). Default
   * false: connection-scoped state of the application (a per-connection
   * authentication, a `WeakMap` keyed by socket) does not move with it.
   */
  handOver?: boolean;
  /**
   * handOverSockets: at a redeploy, the application may hand this listener's
   * upgraded connections (WebSocket) or, on a plain net.Server, its
   * connections to the new instance with their state (`app.handOver()`),
   * which gets each with the 'adopt-socket' event. Default false.
   */
  handOverSockets?: boolean;
}

/** DrainEvent: what onDrain receives. */
export interface DrainEvent {
  /** The listener's name. */
  listener: string;
  /** Upgraded connections still open (the sockets 'upgrade' and 'connect' gave the application). */
  upgraded: net.Socket[];
  /** Connections of a protocol the library does not know (a plain net.Server or tls.Server). */
  connections: net.Socket[];
  /** When (ms since the epoch) upgraded connections still open are destroyed. */
  upgradedDeadline: number;
  /** When (ms since the epoch) every other connection still open is destroyed. */
  deadline: number;
}

/** MoveCounts: what became of the connections of drains, for status and the redeploy events. */
export interface MoveCounts {
  /** Passed to the new instance. */
  handedOver: number;
  /** Closed by the drain where no request could be lost (or by the client). */
  drained: number;
  /** Destroyed at a deadline. */
  forced: number;
}

/** addMoved adds b's counts to a, and returns a. */
export function addMoved(a: MoveCounts, b: MoveCounts): MoveCounts {
  a.handedOver += b.handedOver;
  a.drained += b.drained;
  a.forced += b.forced;
  return a;
}

/**
 * checkDrainOptions throws ERR_GRACEFUL_INVALID_ARGUMENT (naming `listen`)
 * for an option of the wrong type or range; it returns nothing else.
 */
export function checkDrainOptions(options: DrainOptions): void {
  const t = options.upgradedTimeout;
  if (t !== undefined && !(Number.isFinite(t) && t >= 0)) {
    throw invalidArgument('listen', `upgradedTimeout must be a number of ms >= 0, got ${String(t)}`);
  }
  if (options.handOver !== undefined && typeof options.handOver !== 'boolean') {
    throw invalidArgument('listen', `handOver must be true or false, got ${String(options.handOver)}`);
  }
  if (options.handOverSockets !== undefined && typeof options.handOverSockets !== 'boolean') {
    throw invalidArgument('listen', `handOverSockets must be true or false, got ${String(options.handOverSockets)}`);
  }
  if (options.onDrain !== undefined && typeof options.onDrain !== 'function') {
    throw invalidArgument('listen', 'onDrain must be a function (it receives the upgraded connections when a drain starts)');
  }
}
