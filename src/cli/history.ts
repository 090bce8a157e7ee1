/**
 * The shell's history between sessions: one file, `graceful-restart/history`
 * under $XDG_STATE_HOME (or ~/.local/state), one command a line, oldest
 * first, at most HISTORY_SIZE lines, mode 0600 in a directory of mode 0700.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomic } from '../safefile.js';

/** The most lines kept, in the file and in a session. */
export const HISTORY_SIZE = 500;

/** historyFile: where the history lives for env (null when there is no home to keep it in). */
export function historyFile(env: NodeJS.ProcessEnv = process.env): string | null {
  const state = env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : null;
  const home = env.HOME && path.isAbsolute(env.HOME) ? env.HOME : os.homedir();
  const base = state ?? (home ? path.join(home, '.local', 'state') : null);
  return base === null ? null : path.join(base, 'graceful-restart', 'history');
}

/** loadHistory reads the history, most recent first (readline's order); a missing or unreadable file is an empty history. */
export function loadHistory(file: string | null): string[] {
  if (file === null) return [];
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => l.trim() !== '').slice(-HISTORY_SIZE).reverse();
}

/**
 * saveHistory writes lines (most recent first) as the history, keeping the
 * last HISTORY_SIZE: the directory is made (0700) if missing, the file
 * replaced atomically with mode 0600. Throws the error that stopped it.
 */
export function saveHistory(file: string, lines: readonly string[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const kept = lines.filter((l) => l.trim() !== '' && !l.includes('\n')).slice(0, HISTORY_SIZE).reverse();
  writeFileAtomic(file, kept.length ? `${kept.join('\n')}\n` : '', 0o600, 'shell history');
}
