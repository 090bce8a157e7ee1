/**
 * Control commands: what a command is, the registry, and how replies are
 * written in each mode.
 */
import type { PeerCredentials } from '../native.js';
import { DuplicateNameError, NotConfiguredError, UnknownCommandError, invalidArgument } from '../errors.js';

/** CommandContext: what a command's handler gets for one invocation. */
export interface CommandContext {
  /** The command name as typed (an alias included). */
  readonly name: string;
  readonly args: string[];
  /** The client asked in JSON mode. */
  readonly json: boolean;
  /** SO_PEERCRED of the client. */
  readonly peer: PeerCredentials;
  /**
   * write sends a line of output (in JSON mode: {"event":"output","line":...}).
   * It returns false when the client is behind (or gone): a streaming command
   * then awaits drain() before it writes more. A client that leaves more than
   * maxOutputBytes unread, or reads nothing for writeTimeout, is dropped (and
   * signal fires).
   */
  write(line: string): boolean;
  /** event sends a progress event: as is in JSON mode, as `text` in plain mode; returns as write does. */
  event(event: { event: string } & Record<string, unknown>, text: string): boolean;
  /** drain resolves once the client has read what was written (or left). */
  drain(): Promise<void>;
  /** signal fires when the client leaves: a streaming command stops then. */
  readonly signal: AbortSignal;
  /**
   * handover marks this connection to go to the new instance of a redeploy
   * this command starts, once the command's reply is written (for `redeploy`).
   */
  handover(): void;
}

/** Command: a control command. run's return value is the result (JSON mode) or printed (plain mode). */
export interface Command {
  /** One line: `telinit 0|1|3   switch runlevel`. */
  usage: string;
  /** Several lines, for `help <command>`. */
  help?: string;
  /** Smallest and largest number of arguments (default: any). */
  minArgs?: number;
  maxArgs?: number;
  /**
   * A streaming command that goes on across a redeploy (after gone/daemon/ctrl):
   * its connection moves to the new instance, which runs the same command
   * line again on it after one line saying which pid now serves. The old
   * instance's run is aborted (ctx.signal), and its reply never written.
   */
  persistent?: boolean;
  run(ctx: CommandContext): unknown | Promise<unknown>;
}

const NAME = /^[A-Za-z][\w.-]*$/;

/** CommandRegistry: built-in and application commands, by name, with aliases. */
/** editDistance: the Levenshtein distance of a and b (insertions, deletions, substitutions, and a swap of two neighbours). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * nearest: the name closest to word among names, when it is close enough
 * to be a typo (at most 2 edits, and fewer than half its letters); else null.
 */
export function nearest(word: string, names: readonly string[]): string | null {
  if (word.length === 0 || word.length > 64) return null;
  let best: string | null = null;
  let bestD = Infinity;
  for (const n of names) {
    if (n === word) continue; // a name that does not resolve (a dangling alias) is no suggestion
    const dist = editDistance(word.toLowerCase(), n.toLowerCase());
    // A tie goes to the name of the word's length (letters swapped, not one left out).
    if (dist < bestD || (dist === bestD && best !== null && n.length === word.length && best.length !== word.length)) [best, bestD] = [n, dist];
  }
  return best !== null && bestD <= 2 && bestD < Math.max(word.length, best.length) / 2 ? best : null;
}

export class CommandRegistry {
  private readonly commands = new Map<string, Command>();
  private readonly aliases = new Map<string, string>();

  /** add registers a command; names are letters, digits, '_', '.', '-'. */
  add(name: string, command: Command): void {
    if (typeof name !== 'string' || !NAME.test(name)) throw invalidArgument('command', `a command name must match ${NAME}, got ${JSON.stringify(name)}`);
    if (!command || typeof command.run !== 'function' || typeof command.usage !== 'string') {
      throw invalidArgument('command', `"${name}" needs a usage line and a run(ctx) function`);
    }
    if (command.persistent !== undefined && typeof command.persistent !== 'boolean') {
      throw invalidArgument('command', `"${name}": persistent must be true or false, got ${JSON.stringify(command.persistent)}`);
    }
    if (this.commands.has(name) || this.aliases.has(name)) throw new DuplicateNameError(`the command "${name}" exists already: choose another name`);
    this.commands.set(name, command);
  }

  /** Commands this service does not have, with what they need (scale without workers). */
  private readonly missing = new Map<string, string>();

  /**
   * unavailable names a command this service does not offer and why (what it
   * needs): get() then refuses it with ERR_GRACEFUL_NOT_CONFIGURED and that
   * reason instead of "unknown command". A command added later by that name wins.
   */
  unavailable(name: string, why: string): void {
    this.missing.set(name, why);
  }

  alias(alias: string, name: string): void {
    this.aliases.set(alias, name);
  }

  /** fallback runs every command that is not registered (a supervisor forwards them to its application). */
  fallback: Command | null = null;

  /** get finds a command by name or alias, else the fallback; throws UnknownCommandError. */
  get(name: string): { name: string; command: Command } {
    const real = this.aliases.get(name) ?? name;
    const command = this.commands.get(real) ?? this.fallback;
    const why = command ? undefined : this.missing.get(real);
    if (why !== undefined) throw new NotConfiguredError(why);
    if (!command) {
      const near = nearest(name, this.names());
      throw new UnknownCommandError(`unknown command "${name.slice(0, 64)}": ${near ? `did you mean ${near}? ` : ''}type help for the list`);
    }
    return { name: real, command };
  }

  has(name: string): boolean {
    return this.commands.has(this.aliases.get(name) ?? name);
  }

  names(): string[] {
    return [...this.commands.keys(), ...this.aliases.keys()].sort();
  }

  /** list: every command's usage line, sorted, with aliases named. */
  list(): string[] {
    return [...this.commands.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, c]) => {
      const aliases = [...this.aliases.entries()].filter(([, n]) => n === name).map(([a]) => a);
      return aliases.length ? `${c.usage}  (also: ${aliases.join(', ')})` : c.usage;
    });
  }
}

/** formatResult lives with the other renderers (render.ts). */
export { formatResult } from './render.js';
