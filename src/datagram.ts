/** sendDatagram: one datagram, with optional descriptors, to a UNIX datagram socket (sd_notify's transport). */
import { addon } from './native.js';
import { invalidArgument } from './errors.js';
import { checkSocketPathLength } from './socketpath.js';

/**
 * sendDatagram sends data, and fds in one SCM_RIGHTS message, to the
 * datagram socket at path (a leading '@' names the abstract namespace, as in
 * NOTIFY_SOCKET). The caller keeps the fds. Throws the kernel's errno.
 */
export function sendDatagram(path: string, data: string | Uint8Array, fds: readonly number[] = []): number {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('sendDatagram', 'path must be a non-empty string');
  if (fds.length > addon.maxFds) throw invalidArgument('sendDatagram', `at most ${addon.maxFds} descriptors fit one message, got ${fds.length}`);
  checkSocketPathLength(path, 'sendDatagram');
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return addon.sendDatagram(path, bytes, 0, bytes.byteLength, fds, fds.length);
}
