/**
 * GracefulFile: a writable stream on a file that can be re-opened by path
 * (after logrotate moved it) without losing or reordering a write. Its
 * descriptor is what a redeploy hands over, so every generation appends
 * through the same open file description until the next reopen.
 */
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { openFile } from '../safefile.js';

export class GracefulFile extends Writable {
  private current: number;
  private writing: Promise<void> = Promise.resolve();

  /** The constructor takes ownership of fd, an open descriptor of path. */
  constructor(fd: number, readonly path: string, private readonly flags = 'a', private readonly mode = 0o644) {
    super({ decodeStrings: true });
    this.current = fd;
  }

  /** fd: the descriptor writes go to now. */
  get fd(): number {
    return this.current;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const run = async () => {
      let off = 0;
      while (off < chunk.length) {
        off += await new Promise<number>((resolve, reject) =>
          fs.write(this.current, chunk, off, chunk.length - off, null, (err, n) => (err ? reject(err) : resolve(n))));
      }
    };
    const p = run();
    this.writing = p.catch(() => undefined);
    p.then(() => cb(), (err: Error) => cb(err));
  }

  /**
   * reopen opens path again and sends later writes there, after the write in
   * progress finished on the old descriptor, which is then closed.
   */
  async reopen(): Promise<void> {
    const fd = openFile(this.path, this.flags, this.mode, 'reopen');
    await this.writing;
    const old = this.current;
    this.current = fd;
    fs.closeSync(old);
  }

  override _final(cb: (err?: Error | null) => void): void {
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.writing.then(() => {
      try {
        fs.closeSync(this.current);
      } catch {
        // already closed
      }
      cb(err);
    });
  }
}
