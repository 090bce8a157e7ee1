/** Running a commander program on argv with the CLI's output functions and exit codes. */
import { CommanderError, type Command } from 'commander';
import { EXIT_OK, EXIT_USAGE } from './connect.js';

/**
 * parse runs a commander program on argv with its output sent to out and
 * err; resolves with the exit code when parsing ended the run (--help, a
 * usage error), else null.
 */
export function parse(program: Command, argv: string[], out: (l: string) => void, err: (l: string) => void): number | null {
  program.exitOverride().configureOutput({ writeOut: (s) => out(s.trimEnd()), writeErr: (s) => err(s.trimEnd()) });
  try {
    program.parse(argv, { from: 'user' });
    return null;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    throw e;
  }
}
