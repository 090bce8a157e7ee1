/**
 * The service's stderr in a process that starts from a hand-off (a new
 * instance, a new primary, a worker). Until ready(), its fd 2 is a pipe read
 * by the process that spawned it, so that a failed start is told with its
 * last words; the service's own stderr came with the hand-off's end record.
 * PipedStderr holds that descriptor and puts it back at fd 2 at ready(), or
 * at once when the reader of the pipe dies (Predecessor watches it), so that
 * no later write meets a dead pipe. Between the death and that moment, a
 * write fails with EPIPE: while the pipe is fd 2 (and one turn of the event
 * loop after, for the errors of writes made before), process.stderr's
 * closed-pipe errors are swallowed (and put the service's stderr back at
 * once) instead of killing the process; no other error is hidden.
 */
import { errorCode } from '../errors.js';
import { closeAll } from '../handoff/connection.js';
import { addon } from '../native.js';

/** The errors of a write to a pipe (or socket pair) whose reader is gone. */
const CLOSED_PIPE = new Set(['EPIPE', 'ECONNRESET']);

/** The one PipedStderr of this process, while it holds the service's stderr. */
let current: PipedStderr | null = null;

/**
 * serviceStderr: the descriptor that is this service's stderr, to hand a
 * process this one spawns (a worker, a successor): the held one while fd 2
 * is still the predecessor's pipe, else 2. Valid until the next turn of the
 * event loop; the caller sends a copy and keeps nothing.
 */
export function serviceStderr(): number {
  return current?.held ?? 2;
}

export class PipedStderr {
  private fd: number | null;
  private piped = true;
  private guarded = true;
  private readonly guard = (err: unknown): void => {
    if (CLOSED_PIPE.has(errorCode(err) ?? '')) {
      this.restore(); // the reader is gone: every later write goes to the service's stderr
      return;
    }
    // Not ours to judge: as if this listener were not there.
    if (process.stderr.listenerCount('error') === 1) throw err;
  };

  /**
   * PipedStderr takes fd (the service's stderr, received in the end record;
   * it owns it from now on, closed by close()) while fd 2 is the
   * predecessor's pipe, and guards process.stderr.
   */
  constructor(fd: number) {
    this.fd = fd;
    current = this;
    process.stderr.on('error', this.guard);
  }

  /** held: the service's stderr while this holds it and fd 2 is still the pipe; else null. */
  get held(): number | null {
    return this.piped ? this.fd : null;
  }

  /** restored: the service's stderr is back at fd 2. */
  get restored(): boolean {
    return !this.piped;
  }

  /**
   * restore puts the service's stderr at fd 2 (dup2: fd 2 no longer is the
   * pipe), once; true when it did now. After close() it cannot (false): fd 2
   * stays the pipe, and stays guarded. Never throws.
   */
  restore(): boolean {
    if (!this.piped || this.fd === null) return false;
    try {
      addon.dup2(this.fd, 2);
    } catch {
      return false; // fd 2 stays the pipe, and guarded
    }
    this.piped = false;
    // Writes made before failed with errors emitted later in this turn: they are still swallowed.
    setImmediate(() => this.unguard()).unref();
    return true;
  }

  /** close closes the held descriptor (once it was put back, or when the start is given up). Idempotent. */
  close(): void {
    if (this.fd === null) return;
    closeAll([this.fd]);
    this.fd = null;
    if (current === this) current = null;
  }

  private unguard(): void {
    if (!this.guarded) return;
    this.guarded = false;
    process.stderr.off('error', this.guard);
  }
}
