/**
 * The graceful-restart command line: redeploy a server, run any control
 * command, open an interactive shell, probe health.
 *
 * Exit codes: 0 ok, 1 the command failed (or the new instance did, and the
 * old one kept serving), 2 usage, 3 cannot connect to the socket.
 */
import { Command, CommanderError } from 'commander';
import readline from 'node:readline';
import { ControlClient, ControlReplyError } from './control/client.js';
import { formatCommandResult, renderEvent } from './control/render.js';
import { errorCode } from './errors.js';
import { Supervisor, type RestartPolicy } from './supervisor/supervisor.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_CONNECT = 3;

const HELP_AFTER = `
Forms:
  graceful-restart <socket>                      redeploy, printing each step
  graceful-restart -s <socket> <command> [args]  run a command, built-in or custom
                                                 (CUSTOM <name> [args] works too)
  graceful-restart -s <socket>                   interactive shell (on a terminal)
  graceful-restart health <socket>               exit 0 if ready (and in runlevel 3, if it has one)
  graceful-restart status <socket>               a readable summary
  graceful-restart run [options] -- <cmd> [args] supervise an application: stay in the
                                                 foreground across its redeploys (see run --help)

Exit codes: 0 ok, 1 command failed, 2 usage, 3 cannot connect.`;

class Exit extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

async function connect(path: string, timeout: number): Promise<ControlClient> {
  try {
    return await ControlClient.connect(path, timeout);
  } catch (err) {
    const code = errorCode(err) ?? 'ERROR';
    throw new Exit(EXIT_CONNECT, `cannot connect to ${path}: ${code} (${(err as Error).message}); is the server running with this control socket?`);
  }
}

async function run(path: string, cmd: string, args: string[], opts: { json?: boolean; timeout: number }, out: (l: string) => void): Promise<number> {
  const client = await connect(path, opts.timeout);
  try {
    const result = await client.request(cmd, args, (e) => out(opts.json ? JSON.stringify(e) : renderEvent(e)), opts.timeout);
    if (opts.json) out(JSON.stringify({ ok: true, result: result ?? null }));
    else for (const line of formatCommandResult(cmd, result)) out(line);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof ControlReplyError) {
      if (opts.json) out(JSON.stringify({ ok: false, error: { code: err.code, message: err.message } }));
      throw new Exit(err.code === 'ERR_GRACEFUL_UNKNOWN_COMMAND' || err.code === 'ERR_GRACEFUL_USAGE' ? EXIT_USAGE : EXIT_FAILED, `error: ${err.message}`);
    }
    throw new Exit(EXIT_FAILED, `error: ${(err as Error).message}`);
  } finally {
    client.close();
  }
}

async function health(path: string, timeout: number, out: (l: string) => void): Promise<number> {
  const client = await connect(path, timeout);
  try {
    const s = (await client.request('status', [], undefined, timeout)) as { ready?: boolean; runlevel?: number; pid?: number };
    // A supervisor's status has no runlevel when its application is not a GracefulServer.
    if (s.ready && (s.runlevel === 3 || s.runlevel === undefined)) {
      out(`healthy: pid ${s.pid} ready${s.runlevel === undefined ? '' : ' in runlevel 3'}`);
      return EXIT_OK;
    }
    out(`unhealthy: pid ${s.pid} ${s.ready ? 'ready' : 'not ready'} in runlevel ${s.runlevel}`);
    return EXIT_FAILED;
  } catch (err) {
    out(`unhealthy: ${(err as Error).message}`);
    return EXIT_FAILED;
  } finally {
    client.close();
  }
}

async function shell(path: string, timeout: number): Promise<number> {
  const client = await connect(path, timeout);
  let names: string[] = [];
  try {
    const help = (await client.request('help', [], undefined, timeout)) as string[];
    names = help.map((l) => l.split(/\s+/)[0]!).filter(Boolean);
  } catch {
    // completion is a nicety
  }
  const rl = readline.createInterface({
    input: process.stdin,
    output: process.stdout,
    prompt: 'graceful> ',
    terminal: true,
    historySize: 500,
    completer: (line: string) => {
      const hits = names.filter((n) => n.startsWith(line));
      return [hits.length ? hits : names, line];
    },
  });
  rl.prompt();
  for await (const line of rl) {
    if (line.trim() === '') {
      rl.prompt();
      continue;
    }
    const lines = await client.raw(line, (l) => console.log(l));
    if (lines.length === 0 || /^(quit|exit)\b/.test(line.trim())) break;
    rl.prompt();
  }
  rl.close();
  client.close();
  return EXIT_OK;
}

const RUN_HELP_AFTER = `
It makes itself the subreaper of <command>'s descendants and reaps them all, knows the
current generation (the application tells it by sd_notify: NOTIFY_SOCKET is set for it),
forwards SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 to that generation, and exits with
its exit code (128 + n if signal n killed it) once no generation is left.
A command that cannot be started exits 127 (not found) or 126 (not executable).`;

function wholeNumber(name: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new Exit(EXIT_USAGE, `${name} must be a whole number >= 0, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * parse runs a commander program on argv with its output sent to out and
 * err; resolves with the exit code when parsing ended the run (--help, a
 * usage error), else null.
 */
function parse(program: Command, argv: string[], out: (l: string) => void, err: (l: string) => void): number | null {
  program.exitOverride().configureOutput({ writeOut: (s) => out(s.trimEnd()), writeErr: (s) => err(s.trimEnd()) });
  try {
    program.parse(argv, { from: 'user' });
    return null;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    throw e;
  }
}

/** supervise runs `graceful-restart run`: the supervisor, until no generation is left. */
async function supervise(argv: string[], out: (l: string) => void, err: (l: string) => void): Promise<number> {
  const program = new Command('graceful-restart run')
    .description('Run <command> and stay in the foreground across its redeploys: a container entrypoint, a systemd main process, a PM2 app.')
    .usage('[options] -- <command> [args...]')
    .option('-s, --socket <path>', 'the supervisor\'s control socket (other commands go on to the application\'s)')
    .option('--restart <policy>', 'start the command again when it ended: no, on-failure or always', 'no')
    .option('--restart-delay <ms>', 'wait before a restart', '1000')
    .option('--max-restarts <n>', 'restart at most this many times')
    .option('--kill-timeout <ms>', 'processes left behind at the end get SIGTERM, then SIGKILL after this', '10000')
    .option('--no-notify', 'the application does not speak sd_notify: count it ready once started')
    .argument('[command...]', 'the command and its arguments')
    .passThroughOptions()
    .addHelpText('after', RUN_HELP_AFTER);
  const parsed = parse(program, argv, out, err);
  if (parsed !== null) return parsed;
  const o = program.opts<{ socket?: string; restart: string; restartDelay: string; maxRestarts?: string; killTimeout: string; notify: boolean }>();
  const [command, ...args] = program.args;
  if (!command) throw new Exit(EXIT_USAGE, 'usage: graceful-restart run [options] -- <command> [args...]: no command given');
  if (!['no', 'on-failure', 'always'].includes(o.restart)) throw new Exit(EXIT_USAGE, `--restart must be no, on-failure or always, got ${JSON.stringify(o.restart)}`);
  const supervisor = new Supervisor({
    command,
    args,
    socket: o.socket,
    restart: o.restart as RestartPolicy,
    restartDelay: wholeNumber('--restart-delay', o.restartDelay),
    maxRestarts: o.maxRestarts === undefined ? undefined : wholeNumber('--max-restarts', o.maxRestarts),
    killTimeout: wholeNumber('--kill-timeout', o.killTimeout),
    notify: o.notify,
  });
  try {
    await supervisor.start();
  } catch (e) {
    throw new Exit(EXIT_FAILED, `cannot start the supervisor: ${errorCode(e) ?? 'ERROR'}: ${(e as Error).message}`);
  }
  return supervisor.exited;
}

/** main runs the CLI on argv and resolves with the exit code; it writes to out and err. */
export async function main(argv: string[], out: (l: string) => void = console.log, err: (l: string) => void = console.error): Promise<number> {
  if (argv[0] === 'run') {
    try {
      return await supervise(argv.slice(1), out, err);
    } catch (e) {
      if (!(e instanceof Exit)) throw e;
      err(e.message);
      return e.code;
    }
  }
  const program = new Command('graceful-restart')
    .description('Redeploy and administer a server built with graceful-restart, through its control socket.')
    .option('-s, --socket <path>', 'the control socket')
    .option('--json', 'print the JSON replies')
    .option('--timeout <ms>', 'give up after this many ms without an answer', '60000')
    .argument('[args...]', 'a socket to redeploy, or a command and its arguments')
    .allowUnknownOption(false)
    .passThroughOptions()
    .addHelpText('after', HELP_AFTER);
  const parsed = parse(program, argv, out, err);
  if (parsed !== null) return parsed;
  const opts = program.opts<{ socket?: string; json?: boolean; timeout: string }>();
  const timeout = Number(opts.timeout);
  const args = program.args;
  try {
    if (!(timeout > 0)) throw new Exit(EXIT_USAGE, `--timeout must be a positive number of ms, got ${opts.timeout}`);
    if (opts.socket) {
      if (args.length === 0) {
        if (!process.stdin.isTTY) throw new Exit(EXIT_USAGE, 'no command given, and standard input is not a terminal: name a command, e.g. status');
        return await shell(opts.socket, timeout);
      }
      return await run(opts.socket, args[0]!, args.slice(1), { json: opts.json, timeout }, out);
    }
    if ((args[0] === 'health' || args[0] === 'status') && args.length === 2) {
      if (args[0] === 'health') return await health(args[1]!, timeout, out);
      return await run(args[1]!, 'status', [], { json: opts.json, timeout }, out);
    }
    if (args.length === 1) return await run(args[0]!, 'redeploy', [], { json: opts.json, timeout }, out);
    throw new Exit(EXIT_USAGE, `usage: graceful-restart <socket> | -s <socket> <command> [args...] | health <socket> | status <socket> (see --help)`);
  } catch (e) {
    if (e instanceof Exit) {
      err(e.message);
      return e.code;
    }
    err(`error: ${(e as Error).message}`);
    return EXIT_FAILED;
  }
}
