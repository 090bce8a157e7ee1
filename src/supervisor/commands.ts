/**
 * The supervisor's control commands. status, redeploy and signal are its
 * own; every other command goes to the control socket the application
 * announced (X_GRACEFUL_CONTROL=), so a deploy script needs one path.
 */
import os from 'node:os';
import { ControlClient } from '../control/client.js';
import type { CommandContext, CommandRegistry } from '../control/commands.js';
import { renderEvent } from '../control/render.js';
import { CommandFailedError, NotConfiguredError, UsageError, errorCode } from '../errors.js';
import { rssOf } from './procfs.js';

/** What the commands need of the supervisor. */
export interface SupervisedTarget {
  readonly currentPid: number;
  readonly ready: boolean;
  readonly appControl: string | null;
  /** The application spoke sd_notify: a GracefulServer (a plain program does not). */
  readonly notified: boolean;
  readonly generationPids: number[];
  readonly restarts: number;
  readonly uptime: number;
  readonly options: { command: string; args?: readonly string[]; registered?: boolean };
  forward(sig: NodeJS.Signals): boolean;
}

const CONNECT_TIMEOUT = 5_000;

/**
 * noControl says why a command cannot reach the application and what works
 * instead. SIGHUP is advised only to an application that speaks sd_notify (a
 * GracefulServer without a control socket): a plain program may die of it.
 */
export function noControl(target: SupervisedTarget, cmd: string): string {
  const redeploy = cmd === 'redeploy' || cmd === 'restart';
  if (target.notified) {
    return `the application (pid ${target.currentPid}) announced no control socket, so "${cmd}" cannot reach it: give its GracefulServer the controlSocket option` +
      (redeploy ? ', or send SIGHUP (signal SIGHUP) to have it redeploy' : '');
  }
  if (target.options.registered) {
    return `the application (pid ${target.currentPid}) runs under graceful-restart/register and is not ready yet, so "${cmd}" cannot reach it: `
      + 'it is ready once its listens settled (or as --ready says); try again then (`status` says ready: true once it is). '
      + 'A program that listens on no address the register keeps (it never listens, or only on port 0) is never ready: see --ready';
  }
  return `the application (pid ${target.currentPid}) is not a GracefulServer (it never spoke sd_notify), so "${cmd}" cannot reach it` +
    (redeploy
      ? ': a plain program has no control socket and cannot be redeployed; build it on GracefulServer with the controlSocket option, or restart it (its connections drop) with `signal SIGTERM` under --restart always'
      : ': only the supervisor\'s own commands work (help lists them)');
}

/** forward runs a command on the application's control socket, relaying its output and events. */
async function forward(target: SupervisedTarget, ctx: CommandContext, cmd: string, args: string[], timeoutMs = Infinity): Promise<unknown> {
  const socket = target.appControl;
  if (!socket) throw new NotConfiguredError(noControl(target, cmd));
  let client: ControlClient;
  try {
    client = await ControlClient.connect(socket, CONNECT_TIMEOUT);
  } catch (err) {
    throw new CommandFailedError(`cannot reach the application's control socket ${socket}: ${errorCode(err) ?? ''} ${(err as Error).message}`.replace(/\s+/g, ' '), { cause: err });
  }
  const onAbort = () => client.close();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await client.request(cmd, args, (e) => {
      if (e.event === 'output') ctx.write(String(e.line));
      else ctx.event(e, renderEvent(e));
    }, timeoutMs);
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    client.close();
  }
}

function signalArg(name: string): NodeJS.Signals {
  const sig = (name.toUpperCase().startsWith('SIG') ? name.toUpperCase() : `SIG${name.toUpperCase()}`) as NodeJS.Signals;
  if (!(sig in os.constants.signals) || sig === 'SIGKILL' || sig === 'SIGSTOP') {
    throw new UsageError(`signal: ${JSON.stringify(name)} is not a signal that can be sent here (e.g. SIGHUP, SIGUSR1, SIGTERM)`);
  }
  return sig;
}

export function addSupervisorCommands(registry: CommandRegistry, target: SupervisedTarget): void {
  registry.add('help', {
    usage: 'help                    list the supervisor\'s commands and the application\'s',
    maxArgs: 1,
    run: async (ctx) => {
      if (ctx.args.length === 1 && registry.has(ctx.args[0]!)) return registry.get(ctx.args[0]!).command.help ?? registry.get(ctx.args[0]!).command.usage;
      const own = [...registry.list(), 'quit                    close this connection'];
      if (!target.appControl) return ctx.args.length ? forward(target, ctx, 'help', ctx.args) : own;
      const app = await forward(target, ctx, 'help', ctx.args).catch((err: Error) => [`(the application's commands are unavailable: ${err.message})`]);
      if (ctx.args.length) return app;
      return [...own, '', 'The application\'s, forwarded to it:', ...(Array.isArray(app) ? app.map(String) : [String(app)])];
    },
  });
  registry.add('status', {
    usage: 'status                  the supervisor, its generations, and the application\'s own status',
    help: 'supervisor is the supervisor\'s pid; pid the current generation (the application) and rss its memory; generations every one alive.\n' +
      'When the application has a control socket, its own status fields come too.',
    maxArgs: 0,
    run: async (ctx) => {
      const own = {
        supervisor: process.pid,
        pid: target.currentPid,
        // The application's memory, whoever answers below (an old instance still draining answers with its own).
        rss: rssOf(target.currentPid),
        generations: target.generationPids,
        ready: target.ready,
        notified: target.notified,
        restarts: target.restarts,
        supervisorUptime: target.uptime,
        command: [target.options.command, ...(target.options.args ?? [])].join(' '),
        appControl: target.appControl,
      };
      if (!target.appControl || !target.generationPids.length) return own;
      try {
        // Bounded: a probe must answer even if the application's instance it reached is going away.
        const app = (await forward(target, ctx, 'status', [], CONNECT_TIMEOUT)) as Record<string, unknown>;
        // ready is the supervisor's own view (sd_notify): the instance that answered may be the old one, draining.
        return { ...app, ...own };
      } catch (err) {
        return { ...own, appError: (err as Error).message };
      }
    },
  });
  registry.add('redeploy', {
    usage: 'redeploy                redeploy the application (through its control socket)',
    help: 'Streams the steps and ends with ok once the new instance serves, or an error saying why it failed\n(the old instance then goes on serving).',
    maxArgs: 0,
    run: (ctx) => forward(target, ctx, 'redeploy', []),
  });
  registry.alias('restart', 'redeploy');
  registry.add('signal', {
    usage: 'signal <SIGNAL>         send a signal to the current generation (e.g. SIGHUP, SIGUSR1)',
    minArgs: 1,
    maxArgs: 1,
    run: (ctx) => {
      const sig = signalArg(ctx.args[0]!);
      if (!target.forward(sig)) throw new CommandFailedError(`${sig}: no generation is running`);
      return ctx.json ? { pid: target.currentPid, signal: sig } : `sent ${sig} to pid ${target.currentPid}`;
    },
  });
  registry.fallback = {
    usage: '',
    run: (ctx) => forward(target, ctx, ctx.name, ctx.args),
  };
}
