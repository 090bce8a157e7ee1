/**
 * The output side of one control connection: writes that hold the client to
 * its bounds (past maxOutputBytes unread, or nothing read for writeTimeout,
 * it is dropped), what is still unwritten (lines not yet in the kernel, for a
 * hand-off that must drop them), and waits for the client to read.
 */
import type net from 'node:net';
import { SlowClientError } from '../errors.js';

export interface OutputLimits {
  maxOutputBytes: number;
  writeTimeout: number;
}

export class ConnectionOutput {
  /** Lines written whose write has not completed yet (still in this process, or in part). */
  private unwrittenLines = 0;
  private writeTimer: NodeJS.Timeout | null = null;
  private drainWaiters: (() => void)[] = [];
  /** Resolves once everything written so far went to the kernel. */
  flushed: Promise<void> = Promise.resolve();

  /** drop is called with the reason when the client does not keep up. */
  constructor(private readonly socket: net.Socket, private readonly limits: () => OutputLimits, private readonly drop: (err: Error) => void) {}

  /** lines: how many lines written here have not reached the kernel yet. */
  get lines(): number {
    return this.unwrittenLines;
  }

  /**
   * write writes text and tells whether the client keeps up: past
   * maxOutputBytes unread it is dropped; output unread for writeTimeout too.
   * The caller checks first that the socket may still be written.
   */
  write(text: string): boolean {
    let ok = false;
    let lines = 0;
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
    this.unwrittenLines += lines;
    this.flushed = new Promise((resolve) => {
      ok = this.socket.write(text, () => { // called once in the kernel, or with the error that ended it
        this.unwrittenLines -= lines;
        resolve();
      });
    });
    const { maxOutputBytes, writeTimeout } = this.limits();
    if (this.socket.writableLength > maxOutputBytes) {
      this.drop(new SlowClientError(`the client left ${this.socket.writableLength} bytes of output unread (the limit is ${maxOutputBytes}): dropping it`));
      return false;
    }
    if (!ok && !this.writeTimer) {
      this.writeTimer = setTimeout(() => {
        this.writeTimer = null;
        this.drop(new SlowClientError(`the client read none of its output for ${writeTimeout} ms: dropping it`));
      }, writeTimeout);
      this.writeTimer.unref();
    }
    return ok;
  }

  /** onDrain: the client read what was queued: the write timer stops, the waiters go on. */
  onDrain(): void {
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.writeTimer = null;
    this.drainWaiters.splice(0).forEach((w) => w());
  }

  /** drained resolves once the client read what was written (or the connection ended: see close). */
  drained(closed: boolean): Promise<void> {
    if (!this.socket.writableNeedDrain || closed) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** close: the connection ended: no timer stays, no waiter waits. */
  close(): void {
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.writeTimer = null;
    this.drainWaiters.splice(0).forEach((w) => w());
  }
}
