/**
 * receive: take descriptors from a hand-off socket, as gobwas/graceful's
 * Receive does; and sendTo / receiveFrom on a connection already open.
 */
import { CallbackFailedError, TimeoutError, invalidArgument } from '../errors.js';
import type { Meta } from '../meta.js';
import type { MetaFormat } from '../gob.js';
import { HandoffConnection, type ConnectionOptions, type ReceivedFd } from './connection.js';
import { sendConfirmation } from './confirm.js';

/** ReceiveCallback: takes ownership of fd. */
export type ReceiveCallback = (fd: number, meta: Meta | null, raw: Buffer) => void | Promise<void>;

export interface ReceiveOptions extends ConnectionOptions {
  /** Give up, closing everything received, after this many ms (default: no limit). */
  timeout?: number;
  /**
   * Once every callback returned, tell the server that every descriptor was
   * taken (default true; see confirm.ts): a server that waits for it (its
   * `confirm` option) stops only then. A server that does not read it (Go's
   * gobwas/graceful) is not affected.
   */
  confirm?: boolean;
}

/**
 * receive connects to path and calls cb for every descriptor, in order,
 * until the server closes the connection, then confirms (options.confirm);
 * it resolves with how many arrived.
 * On bad input, a timeout, or a callback that throws or rejects, it rejects
 * with a coded error after closing every descriptor not yet given to cb.
 */
export async function receive(path: string, cb: ReceiveCallback, options: ReceiveOptions = {}): Promise<number> {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('receive', 'path must be a non-empty string');
  if (typeof cb !== 'function') throw invalidArgument('receive', 'cb must be a function');
  const { timeout } = options;
  if (timeout !== undefined && !(timeout > 0)) throw invalidArgument('receive', `timeout must be a positive number of ms, got ${String(timeout)}`);
  const conn = await HandoffConnection.connect(path, options);
  let timer: NodeJS.Timeout | undefined;
  if (timeout !== undefined) {
    timer = setTimeout(() => conn.close(), timeout);
  }
  let count = 0;
  try {
    for (;;) {
      let next: ReceivedFd | null;
      try {
        next = await conn.receive();
      } catch (err) {
        if (timer && conn.isClosed) {
          throw new TimeoutError(`receive: ${path} did not finish sending within ${timeout} ms`, { cause: err });
        }
        throw err;
      }
      if (next === null) {
        if (options.confirm !== false) await sendConfirmation(conn);
        return count;
      }
      count++;
      try {
        await cb(next.fd, next.meta, next.raw);
      } catch (err) {
        throw new CallbackFailedError(
          `receive: the callback failed on descriptor ${count} (fd ${next.fd}): ${(err as Error)?.message ?? String(err)}`,
          { cause: err },
        );
      }
    }
  } finally {
    if (timer) clearTimeout(timer);
    conn.close();
  }
}

/**
 * sendTo sends one descriptor with its meta on an open connection; it
 * resolves once the kernel has the message. The caller keeps the fd.
 * `metaFormat` ('json' or 'gob') overrides the connection's for this send.
 */
export function sendTo(connection: HandoffConnection, fd: number, meta?: Meta | Uint8Array | null,
  options: { metaFormat?: MetaFormat } = {}): Promise<void> {
  if (!(connection instanceof HandoffConnection)) throw invalidArgument('sendTo', 'connection must be a HandoffConnection');
  if (!Number.isInteger(fd) || fd < 0) throw invalidArgument('sendTo', `fd must be a non-negative integer, got ${String(fd)}`);
  return connection.send([{ fd, meta }], options);
}

/**
 * receiveFrom resolves with the next descriptor on an open connection (the
 * caller owns its fd), or null once the peer closed between messages.
 */
export function receiveFrom(connection: HandoffConnection): Promise<ReceivedFd | null> {
  if (!(connection instanceof HandoffConnection)) throw invalidArgument('receiveFrom', 'connection must be a HandoffConnection');
  return connection.receive();
}

