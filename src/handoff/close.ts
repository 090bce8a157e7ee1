/** closeAll: closing descriptors the hand-off owns, loudly when one was closed already. */
import { debuglog } from 'node:util';
import { addon } from '../native.js';
import { errorCode } from '../errors.js';

const debug = debuglog('graceful');

/**
 * closeAll closes every descriptor of fds, going on past a failure. EBADF
 * means one was closed already: a double close, which may have closed a
 * number reused meanwhile; it is a bug, so it becomes a process warning
 * (code GRACEFUL_EBADF), never silence.
 */
export function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      addon.close(fd);
    } catch (err) {
      if (errorCode(err) === 'EBADF') {
        process.emitWarning(`close(${fd}) failed with EBADF: the descriptor was closed already (closed twice, or never ours)`, { code: 'GRACEFUL_EBADF' });
      } else {
        debug('close(%d) failed: %s', fd, errorCode(err));
      }
    }
  }
}
