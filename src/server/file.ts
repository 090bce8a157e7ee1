/**
 * GracefulFile: a writable stream on a file that can be re-opened by path
 * (after logrotate moved it) without losing or reordering a write. Its
 * descriptor is what a redeploy hands over, so every generation appends
 * through the same open file description until the next reopen.
 *
 * Writes and reopens run one after another in one queue: a chunk is written
 * whole to the descriptor that was current when its turn came, and a reopen
 * swaps descriptors (and closes the old one) only between two chunks, never
 * while a write still uses the old one.
 */
import fs from 'node:fs';
import { promisify } from 'node:util';
import { Writable } from 'node:stream';
import { openFile } from '../safefile.js';
import { ClosedError } from '../errors.js';

const write = promisify(fs.write);
const close = promisify(fs.close);

export class GracefulFile extends Writable {
  private current: number;
  /** The queue: settles once every write and reopen queued so far is done. */
  private tail: Promise<void> = Promise.resolve();

  /** The constructor takes ownership of fd, an open descriptor of path. */
  constructor(fd: number, readonly path: string, private readonly flags = 'a', private readonly mode = 0o644) {
    super({ decodeStrings: true });
    this.current = fd;
  }

  /** fd: the descriptor writes go to now (-1 once destroyed). */
  get fd(): number {
    return this.current;
  }

  /** enqueue runs task after everything queued before it; a failure does not stop the queue. */
  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.tail.then(task);
    this.tail = run.then(() => undefined, () => undefined);
    return run;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.enqueue(async () => {
      const fd = this.current;
      for (let off = 0; off < chunk.length;) {
        off += (await write(fd, chunk, off, chunk.length - off, null)).bytesWritten;
      }
    }).then(() => cb(), (err: Error) => cb(err));
  }

  /**
   * reopen opens path again and sends later writes there. The swap waits in
   * the write queue: every write queued before it finishes on the old
   * descriptor, which is then closed; every later one goes to the new file.
   * It emits 'reopen' (with the new descriptor) once the swap is done.
   * When path cannot be opened it rejects with the errno and writes go on to
   * the old descriptor; after destroy() it rejects with ERR_GRACEFUL_CLOSED.
   */
  async reopen(): Promise<void> {
    if (this.destroyed) throw this.closedError();
    const fd = openFile(this.path, this.flags, this.mode, 'reopen');
    return this.enqueue(async () => {
      if (this.current < 0) {
        await close(fd);
        throw this.closedError();
      }
      const old = this.current;
      this.current = fd;
      await close(old);
      this.emit('reopen', fd);
    });
  }

  private closedError(): Error {
    return new ClosedError(`reopen() of ${this.path}: the GracefulFile was destroyed; open the file again with file()`);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.enqueue(async () => undefined).then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    void this.enqueue(async () => {
      const fd = this.current;
      this.current = -1;
      if (fd >= 0) await close(fd);
    }).then(() => cb(err), (closeErr: Error) => cb(err ?? closeErr));
  }
}
