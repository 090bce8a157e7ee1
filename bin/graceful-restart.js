#!/usr/bin/env node
// The graceful-restart command line; see `graceful-restart --help`.
// The addon loads with the program: when it is missing or cannot load, this says so in one line
// (the message says what to run) and exits 1, as a failed command does, instead of a stack trace.
const addonErrors = ['ERR_GRACEFUL_ADDON_NOT_FOUND', 'ERR_GRACEFUL_ADDON_LOAD_FAILED'];

let cli;
try {
  cli = await import('../dist/src/cli.js');
} catch (err) {
  if (!addonErrors.includes(err?.code)) throw err;
  process.stderr.write(`error: ${err.message} (${err.code})\n`);
  process.exitCode = 1;
}
if (cli) process.exitCode = await cli.main(process.argv.slice(2));
