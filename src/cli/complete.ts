/**
 * Completion for the shell, beyond the first word. What a command takes is
 * read from its usage line, as the server lists it in `help`, so every
 * registered command completes, the application's too: `telinit 0|1|3`
 * offers 0, 1 and 3; a `<command>` or `[command]` parameter offers the
 * command names, `<SIGNAL>` the signal names, `task`'s name the tasks, and
 * `<file>` or `<path>` file names. Any word that looks like a path (`/`,
 * `./`, `../`, `~/`) completes as a file name.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const NAME = /^[A-Za-z][\w.-]*$/;

/** A command's parameters, as its usage line names them: `0|1|3`, `command`, `args`... */
export type Specs = Map<string, string[]>;

/** parseHelp reads `help`'s lines (usage, then text; `(also: alias)` at the end) into command names and parameters. */
export function parseHelp(lines: readonly string[]): Specs {
  const specs: Specs = new Map();
  for (const line of lines) {
    const words = line.trim().split(/\s+/);
    const name = words[0] ?? '';
    // A usage line: the name, then its parameters or two spaces before the text (not a sentence such as "The application's ...").
    if (!NAME.test(name) || !/^\s*\S+(\s*$|\s{2,}|\s+[[<]|\s+\S*\|)/.test(line)) continue;
    const params: string[] = [];
    for (const w of words.slice(1)) {
      if (!/^[[<]/.test(w) && !w.includes('|')) break; // the description begins
      const p = w.replace(/[[\]<>]/g, '').replace(/\.\.\.$/, '');
      if (p) params.push(p);
    }
    specs.set(name, params);
    const also = /\(also: ([^)]*)\)\s*$/.exec(line);
    for (const alias of also?.[1]?.split(/,\s*/) ?? []) if (NAME.test(alias)) specs.set(alias, params);
  }
  return specs;
}

/** What completion knows besides the usage lines. */
export interface CompletionSources {
  specs: Specs;
  tasks: readonly string[];
}

const SIGNALS = Object.keys(os.constants.signals).filter((s) => s !== 'SIGKILL' && s !== 'SIGSTOP').sort();
/** Words the shell itself takes. */
const OWN = ['exit', 'quit'];

/** choicesFor: the words a parameter may take, or 'files', or null when it is free text. */
function choicesFor(cmd: string, param: string | undefined, sources: CompletionSources): string[] | 'files' | null {
  if (param === undefined) return null;
  if (param.includes('|')) return param.split('|').filter(Boolean);
  const p = param.toLowerCase();
  if (p === 'command') return [...sources.specs.keys()].sort();
  if (p === 'signal') return SIGNALS;
  if (p === 'file' || p === 'path' || p === 'dir') return 'files';
  if (cmd === 'task' && p === 'name') return [...sources.tasks];
  return null;
}

/** looksLikePath: a word a person starts as a path. */
function looksLikePath(word: string): boolean {
  return /^(\/|\.\.?\/|~\/)/.test(word);
}

/** files: the entries of word's directory that start with its last part; directories end with '/'. */
export function files(word: string): string[] {
  const home = os.homedir();
  const expanded = word.startsWith('~/') ? path.join(home, word.slice(2)) : word;
  const dir = expanded.endsWith('/') ? expanded : path.dirname(expanded);
  const base = expanded.endsWith('/') ? '' : path.basename(expanded);
  const prefix = word.slice(0, word.length - base.length);
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir || '.', { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.name.startsWith(base) && (base.startsWith('.') || !e.name.startsWith('.')))
    .map((e) => `${prefix}${e.name}${e.isDirectory() ? '/' : ''}`)
    .sort();
}

/** complete: readline's completer: [the candidates for the word under the cursor, that word]. */
export function complete(line: string, sources: CompletionSources): [string[], string] {
  const words = line.trimStart().split(/\s+/);
  const word = words.at(-1) ?? '';
  if (words.length <= 1) {
    const names = [...new Set([...sources.specs.keys(), ...OWN])].sort();
    return [names.filter((n) => n.startsWith(word)), word];
  }
  const cmd = words[0]!;
  const params = sources.specs.get(cmd) ?? [];
  const choices = choicesFor(cmd, params[words.length - 2], sources);
  if (choices === 'files' || (looksLikePath(word) && (choices === null || choices.length === 0))) return [files(word), word];
  return [(choices ?? []).filter((c) => c.startsWith(word)), word];
}
