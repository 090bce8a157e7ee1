/**
 * Files: the files and other descriptors the application registers by name
 * (GracefulServer.file() and descriptor()), each the inherited one when a
 * predecessor passed it, else opened here; files re-open by path (logrotate).
 */
import { fdOf } from '../fds.js';
import type { LogFields } from '../log.js';
import { openFile } from '../safefile.js';
import { GracefulFile } from './file.js';
import type { Registry } from './registry.js';

export class Files {
  private readonly files = new Map<string, GracefulFile>();
  /** A reopen ran: an inherited file description may be the rotated file's, so a later file() opens the path. */
  private reopened = false;

  constructor(private readonly registry: Registry, private readonly log: (msg: string, fields?: LogFields) => void) {}

  /** file: the inherited open file description of name, or a fresh open of path; registered for hand-offs. */
  file(name: string, path: string, options: { flags?: string; mode?: number }): GracefulFile {
    const claimed = this.registry.claim(name, 'file', this.log);
    if (claimed && this.reopened) claimed.fd.close(); // inherited before a reopen: it may name the rotated file
    const fd = claimed && !this.reopened ? claimed.fd.take() : openFile(path, options.flags ?? 'a', options.mode ?? 0o644, 'file');
    const file = new GracefulFile(fd, path, options.flags ?? 'a', options.mode ?? 0o644);
    try {
      this.registry.register(name, 'file', () => (file.destroyed ? null : { fd: file.fd, meta: { name, kind: 'file', path } }));
    } catch (err) {
      file.destroy();
      throw err;
    }
    this.files.set(name, file);
    return file;
  }

  /** descriptor: the inherited descriptor of name, or what open() returns (kept open); registered for hand-offs. */
  async descriptor(name: string, open: () => number | Promise<number>): Promise<number> {
    const claimed = this.registry.claim(name, 'fd', this.log);
    const fd = claimed ? claimed.fd.take() : fdOf(await open());
    this.registry.register(name, 'fd', () => ({ fd, meta: { name, kind: 'fd' } }));
    return fd;
  }

  /** reopen re-opens every file by its path (and a file registered later opens its path, not what was inherited); resolves with their names. */
  async reopen(): Promise<string[]> {
    this.reopened = true;
    for (const f of this.files.values()) await f.reopen();
    return [...this.files.keys()];
  }
}
