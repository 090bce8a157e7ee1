/**
 * The graceful-restart command line: redeploy a server, run any control
 * command, open an interactive shell, probe health.
 *
 * Exit codes, one rule for every form and command: 0 ok; 1 the command ran
 * and failed (or the new instance did, and the old one kept serving); 2 usage:
 * bad arguments to the CLI or to a command (an unknown command or task, a
 * bad runlevel); 3 cannot connect to the socket; 4 the server ended a
 * streaming command as it closed its control socket (a redeploy handed over
 * to a new instance, or a halt: ERR_GRACEFUL_STREAM_ENDED). Every error line
 * on stderr starts with `error:`.
 */
import type { Command as CommandType } from 'commander';
import fs from 'node:fs';
import { builtin } from './node-builtins.js';
import { resolveUid, type ControlClient } from './control/client.js';
import { tokenize } from './control/parse.js';
import { parseHealthArgs, probeListeners, type ProbedListener } from './health.js';
import { EXIT_CONNECT, EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit, connect, serverUids } from './cli/connect.js';
import { humanStatus, requestOn } from './cli/reply.js';
import { DEFAULT_TIMEOUT, hoistFlags, placeSocket, readFlags, suggestForm, type CliFlags } from './cli/args.js';

export { EXIT_CONNECT, EXIT_FAILED, EXIT_OK, EXIT_USAGE, humanStatus };
export { whyNoConnection } from './cli/connect.js';

/**
 * commander, loaded by loadCommander() where argv needs it: help, a usage
 * error, an uncommon form of a flag. The common forms are read without it
 * (readFlags), which saves a command its start-up; `run` (cli/run.ts, with
 * the supervisor) is loaded only for that form.
 */
let Command: typeof CommandType;
let parse: typeof import('./cli/parse-argv.js').parse;

async function loadCommander(): Promise<void> {
  ({ Command } = await import('commander'));
  ({ parse } = await import('./cli/parse-argv.js'));
}

const HELP_AFTER = `
Forms:
  graceful-restart <socket>                      redeploy, printing each step
  graceful-restart -s <socket> <command> [args]  run a command, built-in or custom
                                                 (CUSTOM <name> [args] works too)
  graceful-restart -s <socket>                   interactive shell (on a terminal)
  graceful-restart health <socket>               exit 0 if ready (and in runlevel 3, if it has one)
    [--probe-listeners] [--http-path </path>]    also connect to each listener (GET the path: 2xx)
  graceful-restart status <socket>               a readable summary
  graceful-restart run [options] -- <cmd> [args] supervise an application: stay in the
                                                 foreground across its redeploys (see run --help)

The socket may also come before or after the command (app.sock status,
redeploy app.sock), and the flags anywhere before a literal --.

Commands are read one per line from standard input when it is not a terminal:
  echo status | graceful-restart -s <socket>

Exit codes: 0 ok, 1 command failed, 2 usage (bad arguments, unknown command,
task or runlevel), 3 cannot connect, 4 a stream ended by the server (a redeploy
or a halt): run the command again.`;

/** The forms' words: `graceful-restart status` alone is a usage error, not a socket named "status". */
const FORM_WORDS = new Set(['health', 'status', 'help', 'run']);

const USAGE = 'usage: graceful-restart <socket> | -s <socket> [command [args...]] | health <socket> | status <socket> | run [options] -- <command> (see --help)';

async function run(path: string, cmd: string, args: string[], opts: { json?: boolean; timeout: number }, out: (l: string) => void): Promise<number> {
  const client = await connect(path, opts.timeout);
  try {
    return await requestOn(client, cmd, args, { ...opts, socket: path }, out);
  } finally {
    client.close();
  }
}

/** version: this package's version, from its package.json. */
function version(): string {
  try {
    return String(JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
  } catch {
    return 'unknown';
  }
}

async function health(path: string, timeout: number, out: (l: string) => void, probe?: { httpPath?: string }): Promise<number> {
  const client = await connect(path, timeout);
  try {
    const s = (await client.request('status', [], undefined, timeout)) as {
      ready?: boolean; runlevel?: number; pid?: number; workersWanted?: number; workersReady?: number; workers?: { id: number; state: string }[];
      supervisor?: number; notified?: boolean; state?: string; handedOverTo?: number | null;
    };
    // An old instance that handed over answers for the service: its successor, ready, serves.
    const handedOver = !s.ready && !!s.handedOverTo && (s.state === 'handing-over' || s.state === 'draining');
    // A service with workers is healthy only with every worker ready.
    if (s.ready && s.workersWanted !== undefined && (s.workersReady ?? 0) < s.workersWanted) {
      const down = (s.workers ?? []).filter((w) => w.state !== 'ready').map((w) => `worker ${w.id} ${w.state}`);
      out(`unhealthy: pid ${s.pid} ready with ${s.workersReady ?? 0} of ${s.workersWanted} workers (${down.join(', ')})`);
      return EXIT_FAILED;
    }
    // A supervisor's status has no runlevel when its application is not a GracefulServer.
    if ((s.ready || handedOver) && (s.runlevel === 3 || s.runlevel === undefined)) {
      out(handedOver ? `healthy: pid ${s.handedOverTo} serves (pid ${s.pid} handed over to it and drains)`
        : `healthy: pid ${s.pid} ready${s.runlevel === undefined ? '' : ' in runlevel 3'}${s.workersWanted ? ` with ${s.workersWanted} workers` : ''}`);
      if (!probe) return EXIT_OK;
      const stats = (await client.request('stats', [], undefined, timeout)) as { listeners: ProbedListener[] };
      const probed = await probeListeners(stats.listeners, { httpPath: probe.httpPath, timeout });
      for (const line of probed.lines) out(line);
      return probed.ok ? EXIT_OK : EXIT_FAILED;
    }
    // Under a supervisor, a program that never spoke sd_notify is never ready unless run with --no-notify.
    const why = !s.ready && s.supervisor !== undefined && s.notified === false ? ' (it never said READY=1 by sd_notify: a program that does not speak it needs `graceful-restart run --no-notify`)' : '';
    out(`unhealthy: pid ${s.pid} ${s.ready ? 'ready' : 'not ready'}${s.runlevel === undefined ? '' : ` in runlevel ${s.runlevel}`}${why}`);
    return EXIT_FAILED;
  } catch (err) {
    out(`unhealthy: ${(err as Error).message}`);
    return EXIT_FAILED;
  } finally {
    client.close();
  }
}

/**
 * piped runs the commands read from standard input, one per line, on one
 * connection (blank lines and lines starting with # are skipped). It stops at
 * the first command that fails and exits with that command's code, as `sh -e`
 * does, so a script never goes on after a refusal.
 */
async function piped(path: string, opts: { json?: boolean; timeout: number }, out: (l: string) => void, err: (l: string) => void): Promise<number> {
  const lines = builtin('readline').createInterface({ input: process.stdin, terminal: false });
  let client: ControlClient | null = null;
  try {
    for await (const raw of lines) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      let words: string[];
      try {
        words = tokenize(line);
      } catch (e) {
        throw new Exit(EXIT_USAGE, `error: ${JSON.stringify(line)}: ${(e as Error).message}`);
      }
      if (words.length === 0) continue;
      if (words[0] === 'quit' || words[0] === 'exit') break;
      client ??= await connect(path, opts.timeout);
      const code = await requestOn(client, words[0]!, words.slice(1), opts, out);
      if (code !== EXIT_OK) return code;
    }
    if (client === null) err('error: no command on standard input; name one, e.g. echo status | graceful-restart -s <socket>');
    return client === null ? EXIT_USAGE : EXIT_OK;
  } catch (e) {
    if (e instanceof Exit) {
      err(e.message);
      return e.code;
    }
    throw e;
  } finally {
    lines.close();
    client?.close();
  }
}

/**
 * readArgs reads the CLI's flags and words from argv, which may have the
 * flags anywhere (hoistFlags): the common forms without commander
 * (readFlags), the others with it. A number is the exit code when commander
 * ended the run (--help, --version, a usage error, written to out and err).
 */
export async function readArgs(argv: readonly string[], out: (l: string) => void, err: (l: string) => void): Promise<{ flags: CliFlags; args: string[] } | number> {
  const hoisted = hoistFlags(argv);
  return readFlags(hoisted) ?? (await readWithCommander(hoisted, out, err));
}

/** readWithCommander reads hoisted argv with commander, as readArgs does where readFlags does not answer. */
export async function readWithCommander(hoisted: string[], out: (l: string) => void, err: (l: string) => void): Promise<{ flags: CliFlags; args: string[] } | number> {
  await loadCommander();
  const program = new Command('graceful-restart')
    .description('Redeploy and administer a server built with graceful-restart, through its control socket.')
    .version(version(), '-V, --version', 'print the version of graceful-restart')
    .option('-s, --socket <path>', 'the control socket')
    .option('--json', 'print the JSON replies')
    .option('--timeout <ms>', 'give up after this many ms without an answer', DEFAULT_TIMEOUT)
    .option('--server-uid <user>', 'also talk to a server running as this uid or user name (default: only root and yourself)')
    .argument('[args...]', 'a socket to redeploy, or a command and its arguments')
    .allowUnknownOption(false)
    .passThroughOptions()
    .addHelpText('after', HELP_AFTER);
  const parsed = parse(program, hoisted, out, err);
  if (parsed !== null) return parsed;
  return { flags: program.opts<CliFlags>(), args: program.args };
}

/** main runs the CLI on argv and resolves with the exit code; it writes to out and err. */
export async function main(argv: string[], out: (l: string) => void = console.log, err: (l: string) => void = console.error): Promise<number> {
  if (argv[0] === 'run') {
    const { supervise } = await import('./cli/run.js');
    try {
      return await supervise(argv.slice(1), out, err);
    } catch (e) {
      if (!(e instanceof Exit)) throw e;
      err(e.message);
      return e.code;
    }
  }
  const read = await readArgs(argv, out, err);
  if (typeof read === 'number') return read;
  const { flags: opts, args } = read;
  const timeout = Number(opts.timeout);
  try {
    serverUids.length = 0; // main may run more than once in a process
    if (opts.serverUid !== undefined) {
      try {
        serverUids.push(resolveUid(opts.serverUid));
      } catch (e) {
        throw new Exit(EXIT_USAGE, `error: --server-uid: ${(e as Error).message}`);
      }
    }
    if (!(timeout > 0)) throw new Exit(EXIT_USAGE, `error: --timeout must be a positive number of ms, got ${opts.timeout}`);
    if (opts.socket) {
      if (args.length === 0) {
        if (!process.stdin.isTTY) return await piped(opts.socket, { json: opts.json, timeout }, out, err);
        const { shell } = await import('./cli/shell.js'); // the interactive shell: readline, history, completion
        return await shell({ path: opts.socket, timeout, json: opts.json });
      }
      return await run(opts.socket, args[0]!, args.slice(1), { json: opts.json, timeout }, out);
    }
    if (args[0] === 'health' && args.length > 1) {
      const h = parseHealthArgs(args.slice(1));
      if (typeof h === 'string') throw new Exit(EXIT_USAGE, h);
      return await health(h.socket, timeout, out, h.probeListeners ? { httpPath: h.httpPath } : undefined);
    }
    if ((args[0] === 'health' || args[0] === 'status') && args.length === 2) {
      if (args[0] === 'health') return await health(args[1]!, timeout, out);
      return await run(args[1]!, 'status', [], { json: opts.json, timeout }, out);
    }
    if (args.length === 1 && FORM_WORDS.has(args[0]!) && !fs.existsSync(args[0]!)) {
      throw new Exit(EXIT_USAGE, `error: "${args[0]}" needs a control socket: graceful-restart ${args[0] === 'help' ? '-s <socket> help' : `${args[0]} <socket>`}\n${USAGE}`);
    }
    if (args.length === 1) return await run(args[0]!, 'redeploy', [], { json: opts.json, timeout }, out);
    // The socket before or after the command: `app.sock status`, `redeploy app.sock`.
    const placed = placeSocket(args);
    if (placed) return await run(placed.socket, placed.command, placed.args, { json: opts.json, timeout }, out);
    throw new Exit(EXIT_USAGE, `error: ${args.length === 0 ? 'no socket given' : `cannot read ${JSON.stringify(args.join(' '))}: ${suggestForm(args)}`}\n${USAGE}`);
  } catch (e) {
    if (e instanceof Exit) {
      err(e.message);
      return e.code;
    }
    err(`error: ${(e as Error).message}`);
    return EXIT_FAILED;
  }
}
