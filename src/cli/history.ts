/**
 * The shell's history between sessions: one file, `graceful-restart/history`
 * under $XDG_STATE_HOME (or ~/.local/state), one command a line, oldest
 * first, at most HISTORY_SIZE lines, mode 0600 in a directory of mode 0700.
 * Every component of its path is checked first (safefile's checkPath): a
 * link planted by another user in a directory others can write to (HOME or
 * XDG_STATE_HOME in /tmp) is never followed; the history is then neither
 * read nor written, and the save says why.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkPath, openFile, writeFileAtomic } from '../safefile.js';

const API = 'shell history';
const WHAT = 'the shell history';

/** The most lines kept, in the file and in a session. */
export const HISTORY_SIZE = 500;

/** historyFile: where the history lives for env (null when there is no home to keep it in). */
export function historyFile(env: NodeJS.ProcessEnv = process.env): string | null {
  const state = env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : null;
  const home = env.HOME && path.isAbsolute(env.HOME) ? env.HOME : os.homedir();
  const base = state ?? (home ? path.join(home, '.local', 'state') : null);
  return base === null ? null : path.join(base, 'graceful-restart', 'history');
}

/**
 * loadHistory reads the history, most recent first (readline's order); a
 * missing or unreadable file, or one on a path saveHistory refuses, is an
 * empty history.
 */
export function loadHistory(file: string | null): string[] {
  if (file === null) return [];
  let text: string;
  try {
    if (!checkPath(path.dirname(file), API, WHAT)) return [];
    const fd = openFile(file, 'r', 0, API);
    try {
      text = fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => l.trim() !== '').slice(-HISTORY_SIZE).reverse();
}

/**
 * saveHistory writes lines (most recent first) as the history, keeping the
 * last HISTORY_SIZE: the path is checked and its missing directories made
 * (0700), the file replaced atomically with mode 0600. Throws the error that
 * stopped it (ERR_GRACEFUL_UNSAFE_FILE for a planted link on the way,
 * ERR_GRACEFUL_UNSAFE_DIRECTORY for a directory of another user), having
 * written nothing.
 */
export function saveHistory(file: string, lines: readonly string[]): void {
  checkPath(path.dirname(file), API, WHAT, 0o700);
  const kept = lines.filter((l) => l.trim() !== '' && !l.includes('\n')).slice(0, HISTORY_SIZE).reverse();
  writeFileAtomic(file, kept.length ? `${kept.join('\n')}\n` : '', 0o600, API);
}
