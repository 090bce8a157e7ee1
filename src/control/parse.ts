/**
 * The control protocol's request lines. Plain mode, for people: `command arg
 * ...` with single quotes, double quotes and backslash escapes as in a shell.
 * JSON mode, for programs: a line starting with `{`, such as
 * `{"cmd":"status","args":[]}`.
 */
import { ControlParseError } from '../errors.js';

/** The longest request line a control connection accepts. */
export const MAX_LINE_BYTES = 64 * 1024;

export interface ControlRequest {
  cmd: string;
  args: string[];
  json: boolean;
  /** An id a JSON client may give; echoed in every reply line. */
  id?: string | number;
}

/** tokenize splits a plain line into words; throws ControlParseError on an unterminated quote. */
export function tokenize(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) word += line[++i];
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) throw new ControlParseError(`unterminated ${quote === '"' ? 'double' : 'single'} quote: close it, or escape it with \\`);
  if (inWord) words.push(word);
  return words;
}

/** quote renders words back into a line that tokenize reads the same. */
export function quote(words: readonly string[]): string {
  return words.map((w) => (w !== '' && /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * parseRequest reads one request line (without its newline). Returns null for
 * a blank line; throws ControlParseError for a line it cannot read.
 */
export function parseRequest(line: string): ControlRequest | null {
  const text = line.endsWith('\r') ? line.slice(0, -1) : line;
  if (text.trimStart().startsWith('{')) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (err) {
      throw new ControlParseError(`a line starting with { must be JSON: ${(err as Error).message}`, { json: true });
    }
    const o = v as { cmd?: unknown; args?: unknown; id?: unknown };
    if (typeof o !== 'object' || o === null || typeof o.cmd !== 'string' || o.cmd === '') {
      throw new ControlParseError('a JSON request needs "cmd", a non-empty string, e.g. {"cmd":"status","args":[]}', { json: true });
    }
    const args = o.args ?? [];
    if (!Array.isArray(args) || !args.every((a) => typeof a === 'string' || typeof a === 'number')) {
      throw new ControlParseError('"args" must be an array of strings', { json: true });
    }
    const id = typeof o.id === 'string' || typeof o.id === 'number' ? o.id : undefined;
    return { cmd: o.cmd, args: args.map(String), json: true, id };
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0e-\x1f\x7f]/.test(text)) throw new ControlParseError('the line holds control characters: send text, one command per line');
  const words = tokenize(text);
  if (words.length === 0) return null;
  if (words[0] === '') throw new ControlParseError('the command name is empty: type a command, e.g. help');
  return { cmd: words[0]!, args: words.slice(1), json: false };
}
