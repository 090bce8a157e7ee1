/**
 * closeAll and closeFds: closing descriptors in batches, in one call to the
 * addon per batch (a caller that discards what it received pays one crossing
 * into native code, not one per descriptor), loudly when one was closed
 * already.
 */
import { debuglog, getSystemErrorMap } from 'node:util';
import { addon } from '../native.js';
import { invalidArgument, type SystemError } from '../errors.js';

const debug = debuglog('graceful');

/** The largest descriptor number (an int). */
const MAX_FD = 0x7fffffff;

// One batch buffer, grown to the largest batch and reused: closing is synchronous.
let batchBuffer = new Int32Array(256);

function batchOf(n: number): Int32Array {
  if (batchBuffer.length < n) batchBuffer = new Int32Array(Math.max(n, batchBuffer.length * 2));
  return batchBuffer;
}

function isFd(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_FD;
}

/** closeError is the error fs.closeSync would throw for errno err (positive), as the addon shapes it. */
function closeError(err: number): SystemError {
  const [code, text] = getSystemErrorMap().get(-err) ?? [`Unknown system error ${err}`, 'unknown error'];
  return Object.assign(new Error(`close ${code} (${text})`), { code, errno: -err, syscall: 'close' });
}

/**
 * closeAll closes every descriptor of fds, going on past a failure. EBADF
 * means one was closed already: a double close, which may have closed a
 * number reused meanwhile; it is a bug, so it becomes a process warning
 * (code GRACEFUL_EBADF), never silence. An entry that is no descriptor
 * number is skipped (said under NODE_DEBUG=graceful).
 */
export function closeAll(fds: readonly number[]): void {
  const n = fds.length;
  if (n === 0) return;
  const batch = batchOf(n);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const fd = fds[i];
    if (isFd(fd)) batch[count++] = fd;
    else debug('close(%s) skipped: not a descriptor', fd);
  }
  if (addon.closeFds(batch, count) === 0) return;
  // Failed entries became -errno; the numbers they were are still in fds, in the same order.
  for (let i = 0, j = 0; i < n; i++) {
    const fd = fds[i];
    if (!isFd(fd)) continue;
    const err = -batch[j++]!;
    if (err <= 0) continue;
    if (err === 9 /* EBADF */) {
      process.emitWarning(`close(${fd}) failed with EBADF: the descriptor was closed already (closed twice, or never ours)`, { code: 'GRACEFUL_EBADF' });
    } else {
      debug('close(%d) failed: %s', fd, closeError(err).code);
    }
  }
}

/**
 * closeFds closes the descriptor of every item, a number or a record with an
 * `fd` (a ReceivedFd that receive() or receiveBatch() gave), in one call to
 * the addon: the way to discard a batch of received descriptors. Every item
 * is checked first: if one is not a descriptor number, it throws
 * ERR_GRACEFUL_INVALID_ARGUMENT and closes none (the caller still owns them
 * all). Then it closes every one, going on past a failure, and throws the
 * first failure afterwards, shaped like Node's (`close EBADF`, with code,
 * errno and syscall), as fs.closeSync does. Give each descriptor once: a
 * number closed twice may be one that something else opened meanwhile.
 */
export function closeFds(items: readonly (number | { readonly fd: number })[]): void {
  if (!Array.isArray(items)) throw invalidArgument('closeFds', 'items must be an array of descriptors (numbers, or records with an fd)');
  const n = items.length;
  // Grown as items prove good, so a huge sparse array allocates nothing before it is refused.
  let batch = batchBuffer;
  for (let i = 0; i < n; i++) {
    const item: unknown = items[i];
    const fd = typeof item === 'number' ? item : typeof item === 'object' && item !== null ? (item as { fd?: unknown }).fd : undefined;
    if (!isFd(fd)) {
      throw invalidArgument('closeFds',
        `item ${i} is not a descriptor (a whole number from 0 to ${MAX_FD}, or a record with one as its fd), got ${describe(item)}: nothing was closed`);
    }
    if (i === batch.length) {
      const bigger = new Int32Array(batch.length * 2);
      bigger.set(batch);
      batch = batchBuffer = bigger;
    }
    batch[i] = fd;
  }
  if (n === 0 || addon.closeFds(batch, n) === 0) return;
  for (let i = 0; i < n; i++) {
    if (batch[i]! < 0) throw closeError(-batch[i]!);
  }
}

function describe(v: unknown): string {
  if (typeof v === 'object' && v !== null) return `an object with fd ${String((v as { fd?: unknown }).fd)}`;
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}
