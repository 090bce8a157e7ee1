/** Pid files written atomically, and removed only by the process they name. */
import fs from 'node:fs';
import path from 'node:path';

/**
 * writePidFile writes pid to file atomically (a temporary file in the same
 * directory, then rename), so a reader never sees a partial or empty file.
 */
export function writePidFile(file: string, pid = process.pid): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${pid}.tmp`);
  try {
    fs.writeFileSync(tmp, `${pid}\n`, { mode: 0o644 });
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** readPidFile returns the pid in file, or null when it is missing or not a pid. */
export function readPidFile(file: string): number | null {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** removePidFile removes file if it still names pid (a successor may have rewritten it). */
export function removePidFile(file: string, pid = process.pid): boolean {
  if (readPidFile(file) !== pid) return false;
  fs.rmSync(file, { force: true });
  return true;
}
