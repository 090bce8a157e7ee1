/**
 * How the CLI reads its words in any order: `status app.sock --json`,
 * `redeploy app.sock`, `app.sock status` and `-s app.sock status` all mean
 * the same. The CLI's own flags may stand anywhere before a literal `--`;
 * the socket is told from a command by being a socket file (or by the form).
 */
import fs from 'node:fs';

/** The CLI's flags that take a value; `--json` takes none. */
const VALUE_FLAGS = new Set(['-s', '--socket', '--timeout', '--server-uid']);
const BARE_FLAGS = new Set(['--json']);

/**
 * hoistFlags moves the CLI's own flags (and their values) in front of the
 * other words, keeping both orders; a literal `--` ends the flags, and what
 * follows it stays as it is (a command's own `--json` may come after `--`).
 * A flag that ends argv without its value stays in place, for commander to
 * report.
 */
export function hoistFlags(argv: readonly string[]): string[] {
  const flags: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    const eq = word.indexOf('=');
    const name = word.startsWith('--') && eq > 0 ? word.slice(0, eq) : word;
    if (BARE_FLAGS.has(word) || (VALUE_FLAGS.has(name) && eq > 0)) flags.push(word);
    else if (VALUE_FLAGS.has(word) && i + 1 < argv.length) flags.push(word, argv[++i]!);
    else rest.push(word);
  }
  return [...flags, ...rest];
}

/** The CLI's flags as commander gives them to main(). */
export interface CliFlags {
  socket?: string;
  json?: boolean;
  timeout: string;
  serverUid?: string;
}

/** The default of --timeout, as commander's option declares it. */
export const DEFAULT_TIMEOUT = '60000';

const FLAG_KEYS: Record<string, keyof CliFlags> = { '-s': 'socket', '--socket': 'socket', '--timeout': 'timeout', '--server-uid': 'serverUid' };

/**
 * readFlags reads the common forms of argv (after hoistFlags) without
 * commander: each flag once, as `-s <path>`, `--socket <path>`, `--timeout
 * <ms>`, `--server-uid <user>` or `--json`, then the words, which commander
 * passes through as they are. It returns null for anything else (help,
 * version, `--name=value`, a flag given twice, one without its value or with
 * a value that starts with a dash, an unknown flag), which commander then
 * reads, and reports. Where it answers, commander answers the same.
 */
export function readFlags(argv: readonly string[]): { flags: CliFlags; args: string[] } | null {
  const flags: CliFlags = { timeout: DEFAULT_TIMEOUT };
  const seen = new Set<string>();
  let i = 0;
  for (; i < argv.length && argv[i]!.startsWith('-'); i++) {
    const word = argv[i]!;
    const key = word === '--json' ? 'json' : FLAG_KEYS[word];
    if (key === undefined || seen.has(key)) return null;
    seen.add(key);
    if (key === 'json') {
      flags.json = true;
      continue;
    }
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('-')) return null;
    flags[key] = value;
    i++;
  }
  return { flags, args: argv.slice(i) };
}

/** isSocketFile: path names a UNIX socket (following links); false for anything else or nothing. */
export function isSocketFile(path: string): boolean {
  try {
    return fs.statSync(path).isSocket();
  } catch {
    return false;
  }
}

/** A command on a socket, as the words said it in whichever order. */
export interface Placed {
  socket: string;
  command: string;
  args: string[];
}

/**
 * placeSocket finds the socket among words given without -s: first
 * (`app.sock status`) or second (`status app.sock --json`, `redeploy
 * app.sock`), told by being a socket file. Null when neither is one.
 */
export function placeSocket(words: readonly string[], isSocket: (p: string) => boolean = isSocketFile): Placed | null {
  if (words.length < 2) return null;
  const [first, second, ...rest] = words as [string, string, ...string[]];
  if (isSocket(first) && !isSocket(second)) return { socket: first, command: second, args: rest };
  if (isSocket(second) && !isSocket(first)) return { socket: second, command: first, args: rest };
  return null;
}

/**
 * suggestForm: for words the CLI could not read, the form that was likely
 * meant, naming the word that looks like a socket path.
 */
export function suggestForm(words: readonly string[]): string {
  const path = words.find((w) => w.includes('/') || w.endsWith('.sock'));
  if (!path) return 'name the control socket with -s: graceful-restart -s <socket> <command> [args]';
  const others = words.filter((w) => w !== path);
  const exists = fs.existsSync(path);
  return `${exists ? `${path} is not a socket` : `there is no socket ${path} (is the server running?)`}; ` +
    `the form is graceful-restart -s ${path} ${others.join(' ') || '<command>'}`;
}
