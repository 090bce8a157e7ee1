/**
 * The taker's confirmation, an addition to gobwas/graceful's protocol: once a
 * taker has every descriptor (the server's end of the stream) and its
 * callbacks took them, it writes CONFIRMATION, plain data with no descriptor,
 * and closes. A server that asks for it (listenAndServe's `confirm`) shuts
 * its writing side after the last record, so that a peer that does not
 * confirm (a Go gobwas/graceful client, which reads to the end and closes) is
 * told at once by its close; a taker that writes to a Go server (which closes
 * after sending) gets an error that is ignored.
 */
import { addon } from '../native.js';
import type { HandoffConnection } from './connection.js';

/** CONFIRMATION: a record's frame (uint32 little-endian length, then JSON meta) that carries no descriptor. */
export const CONFIRMATION: Buffer = (() => {
  const meta = Buffer.from('{"graceful":"served"}');
  const header = Buffer.alloc(4);
  header.writeUInt32LE(meta.length);
  return Buffer.concat([header, meta]);
})();

/**
 * awaitConfirmation, on a server's connection opened with applicationData,
 * after its last record: shuts its writing side and resolves true once the
 * peer sent CONFIRMATION, false when it sent anything else, closed first, or
 * said nothing within timeoutMs. Never rejects; the caller closes conn.
 */
export async function awaitConfirmation(conn: HandoffConnection, timeoutMs: number): Promise<boolean> {
  try {
    addon.shutdownWrite(conn.fd);
  } catch {
    return false; // the peer is gone
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([conn.readData(CONFIRMATION.length).then((got) => got.equals(CONFIRMATION), () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** sendConfirmation, on a taker's connection after the server's end: writes CONFIRMATION; a server gone or not reading is no error. */
export async function sendConfirmation(conn: HandoffConnection): Promise<boolean> {
  try {
    await conn.writeData(CONFIRMATION);
    return true;
  } catch {
    return false;
  }
}
