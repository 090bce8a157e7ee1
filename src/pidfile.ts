/** Pid files written atomically, and removed only by the process they name. */
import fs from 'node:fs';
import { removeFile, writeFileAtomic } from './safefile.js';

/**
 * writePidFile writes pid to file atomically (a temporary file with a random
 * name, created O_EXCL|O_NOFOLLOW in the same directory, then renamed), so a
 * reader never sees a partial or empty file and nothing planted in a shared
 * directory is followed. A directory of another user, or one others may write
 * to without the sticky bit, throws UnsafeDirectoryError; a link or file of
 * another user at file throws UnsafeFileError (see safefile.ts).
 */
export function writePidFile(file: string, pid = process.pid): void {
  writeFileAtomic(file, `${pid}\n`, 0o644, 'pidFile');
}

/** readPidFile returns the pid in file, or null when it is missing or not a pid. */
export function readPidFile(file: string): number | null {
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    let text: string;
    try {
      text = fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
    const pid = Number(text.trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** removePidFile removes file if it still names pid (a successor may have rewritten it). */
export function removePidFile(file: string, pid = process.pid): boolean {
  if (readPidFile(file) !== pid) return false;
  removeFile(file);
  return true;
}
