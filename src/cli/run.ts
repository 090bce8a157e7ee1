/**
 * `graceful-restart run`: the supervisor from the command line, with the
 * flags that run an unmodified Node program under graceful-restart/register
 * (run-env.ts).
 */
import { Command } from 'commander';
import { errorCode } from '../errors.js';
import { Supervisor, type RestartPolicy } from '../supervisor/supervisor.js';
import { EXIT_FAILED, EXIT_USAGE, Exit } from './connect.js';
import { parse } from './parse-argv.js';
import { registerEnv, type RegisterFlags } from './run-env.js';

const RUN_HELP_AFTER = `
A Node program that does not use graceful-restart runs under graceful-restart/register
(preloaded by NODE_OPTIONS): every listen becomes a listener kept across redeploys, SIGHUP
and the control socket redeploy it, SIGTERM and SIGINT drain it (docs/unmodified.md).
--no-register (or --no-notify) runs the command as it is.
It makes itself the subreaper of <command>'s descendants and reaps them all, knows the
current generation (the application tells it by sd_notify: NOTIFY_SOCKET is set for it),
forwards SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 to that generation, and exits with
its exit code (128 + n if signal n killed it) once no generation is left.
A command that cannot be started exits 127 (not found) or 126 (not executable).`;

function wholeNumber(name: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new Exit(EXIT_USAGE, `error: ${name} must be a whole number >= 0, got ${JSON.stringify(value)}`);
  return n;
}

/** supervise runs `graceful-restart run`: the supervisor, until no generation is left. */
export async function supervise(argv: string[], out: (l: string) => void, err: (l: string) => void): Promise<number> {
  const program = new Command('graceful-restart run')
    .description('Run <command> and stay in the foreground across its redeploys: a container entrypoint, a systemd main process, a PM2 app.')
    .usage('[options] -- <command> [args...]')
    .option('-s, --socket <path>', 'the supervisor\'s control socket (other commands go on to the application\'s)')
    .option('--restart <policy>', 'start the command again when it ended: no, on-failure or always', 'no')
    .option('--restart-delay <ms>', 'wait before a restart', '1000')
    .option('--max-restarts <n>', 'restart at most this many times')
    .option('--kill-timeout <ms>', 'processes left behind at the end get SIGTERM, then SIGKILL after this', '10000')
    .option('--no-notify', 'the application does not speak sd_notify: count it ready once started (and no register)')
    .option('--no-register', 'do not preload graceful-restart/register into a Node program')
    .option('--workers <n>', 'run the program as n workers (or auto: one per core), with the register')
    .option('--ready <when>', 'when the program is ready: listen (its listens settled), message (process.send(\'ready\')) or http:/path (answers 2xx)')
    .option('--settle <ms>', 'ms after the last listen before the program counts as ready (--ready listen)')
    .option('--log <file>', 'send the program\'s standard output and error to file, re-opened by reopen and SIGUSR1')
    .option('--config <file>', 'a JSON configuration file with GracefulServer options')
    .option('--pid-file <file>', 'a pid file, rewritten by each new instance')
    .argument('[command...]', 'the command and its arguments')
    .passThroughOptions()
    .addHelpText('after', RUN_HELP_AFTER);
  const parsed = parse(program, argv, out, err);
  if (parsed !== null) return parsed;
  const o = program.opts<{ socket?: string; restart: string; restartDelay: string; maxRestarts?: string; killTimeout: string; notify: boolean; register: boolean }
    & Omit<RegisterFlags, 'register' | 'socket'>>();
  const [command, ...args] = program.args;
  if (!command) throw new Exit(EXIT_USAGE, 'error: no command given; usage: graceful-restart run [options] -- <command> [args...]');
  if (!['no', 'on-failure', 'always'].includes(o.restart)) throw new Exit(EXIT_USAGE, `error: --restart must be no, on-failure or always, got ${JSON.stringify(o.restart)}`);
  const registered = o.register && o.notify;
  const env = registerEnv({ ...o, register: registered, socket: o.socket });
  const supervisor = new Supervisor({
    command,
    env,
    registered,
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
    const code = errorCode(e) ?? 'ERROR';
    const message = (e as Error).message;
    throw new Exit(EXIT_FAILED, `error: cannot start the supervisor: ${message.includes(code) ? '' : `${code}: `}${message}`);
  }
  return supervisor.exited;
}

