/**
 * The CLI's exit codes, its Exit error, and how it connects to a control
 * socket: who it trusts, and what it says when nothing answers.
 */
import fs from 'node:fs';
import { ControlClient } from '../control/client.js';
import { errorCode } from '../errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_CONNECT = 3;

/** Exit: ends the CLI with code, after message (a line starting with `error:`) on stderr. */
export class Exit extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** uids, besides root and ours, whose servers the CLI talks to (--server-uid). */
export const serverUids: number[] = [];

/** connect opens the control socket at path; throws Exit (code 3) saying what is wrong. */
export async function connect(path: string, timeout: number): Promise<ControlClient> {
  try {
    return await ControlClient.connect(path, timeout, { serverUids });
  } catch (err) {
    if (errorCode(err) === 'ERR_GRACEFUL_UNTRUSTED_SERVER') throw new Exit(EXIT_CONNECT, `error: cannot use ${path}: ERR_GRACEFUL_UNTRUSTED_SERVER: ${(err as Error).message}`);
    throw new Exit(EXIT_CONNECT, `error: cannot connect to ${path}: ${whyNoConnection(path, err)}`);
  }
}

/** whyNoConnection says what is wrong at path, beyond the errno: not a socket, no permission, nobody listening. */
export function whyNoConnection(path: string, err: unknown): string {
  const code = errorCode(err) ?? 'ERROR';
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(path);
  } catch {
    // the errno below says enough
  }
  if (code === 'ENOENT') return `ENOENT: there is no such file; is the server running with this control socket?`;
  if (code === 'EACCES' || code === 'EPERM') return `${code}: permission denied for uid ${uid}; run as the server's user or root, or ask for controlMode 0o660 and a shared group`;
  if (st && st.isDirectory()) return `${code}: it is a directory, not a socket; name the socket file inside it`;
  if (st && !st.isSocket()) return `${code}: it is a regular file or another kind of file, not a socket; check the path`;
  if (code === 'ECONNREFUSED') return `ECONNREFUSED: nobody listens on this socket (a stale file left by a server that is gone?); is the server running?`;
  return `${code} (${(err as Error).message}); is the server running with this control socket?`;
}
