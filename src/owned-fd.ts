/**
 * OwnedFd: a descriptor with exactly one owner. It is closed once (a second
 * close() does nothing, so a reused number is never hit), or given away with
 * take(), after which this object no longer closes it.
 */
import { ClosedError } from './errors.js';
import { addon } from './native.js';
import type { Meta } from './meta.js';

export class OwnedFd {
  private n: number | null;

  /** The caller gives up fd: from here on this object closes it, or hands it on with take(). */
  constructor(fd: number, readonly meta: Meta = {}) {
    this.n = fd;
  }

  /** open: this object still owns its descriptor. */
  get open(): boolean {
    return this.n !== null;
  }

  /** fd: the number, to look at (it stays owned here); throws ERR_GRACEFUL_CLOSED once closed or taken. */
  get fd(): number {
    if (this.n === null) throw new ClosedError(`the descriptor "${String(this.meta.name ?? '?')}" was closed or given away already`);
    return this.n;
  }

  /** take gives the descriptor to the caller, who must close it or give it to something that will. */
  take(): number {
    const fd = this.fd;
    this.n = null;
    return fd;
  }

  /** close closes the descriptor if this object still owns it; idempotent. Throws the kernel's errno (EBADF is a bug). */
  close(): void {
    if (this.n === null) return;
    const fd = this.n;
    this.n = null;
    addon.close(fd);
  }
}

/** closeOwned closes each; an error is kept and thrown after all were closed. */
export function closeOwned(fds: Iterable<OwnedFd>): void {
  let first: unknown;
  for (const f of fds) {
    try {
      f.close();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}
