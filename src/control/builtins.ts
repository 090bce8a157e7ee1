/**
 * The built-in control commands, over ControlTarget: what the control socket
 * needs from the server it administers (the graceful server implements it).
 */
import { builtin } from '../node-builtins.js';
import { CommandFailedError, NotConfiguredError, UsageError } from '../errors.js';
import type { CommandContext, CommandRegistry } from './commands.js';
import type { ControlEvent } from './client.js';
import { formatStats, renderEvent } from './render.js';
import type { RedeployEvent } from '../server/redeploy.js';

/** ControlTarget: what the built-in commands act on. */
export interface ControlTarget {
  status(): Record<string, unknown> | Promise<Record<string, unknown>>;
  /** stats: requests and connections per listener, redeploys and their timings (no stats command without it). */
  stats?(): Record<string, unknown>;
  telinit(level: string): Promise<void>;
  redeploy(onEvent: (event: RedeployEvent) => void): Promise<{ pid: number; readyMs: number }>;
  /** reopen re-opens the registered files; resolves with their names. */
  reopen(): Promise<string[]>;
  /** The application's named tasks (the ones SIGUSR1 / SIGUSR2 may run). */
  tasks(): string[];
  runTask(name: string, args: string[]): Promise<unknown>;
  /** Shell commands for update and rebuild, if configured. */
  readonly shellCommands: { update?: string; rebuild?: string };
}

/** runShell runs a configured shell command, streaming its output lines to the client. */
async function runShell(ctx: CommandContext, what: string, command: string | undefined): Promise<void> {
  if (!command) throw new NotConfiguredError(`${what} is not configured: set commands.${what} in the GracefulServer options`);
  ctx.write(`$ ${command}`);
  const child = builtin('child_process').spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = (s: NodeJS.ReadableStream) => builtin('readline').createInterface({ input: s }).on('line', (l) => ctx.write(l));
  lines(child.stdout!);
  lines(child.stderr!);
  const onAbort = () => child.kill('SIGTERM');
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.once('error', (err) => {
      ctx.write(err.message);
      resolve([127, null]);
    });
    child.once('close', (c, s) => resolve([c, s]));
  });
  ctx.signal.removeEventListener('abort', onAbort);
  if (code !== 0) throw new CommandFailedError(`${what} failed (${signal ? `killed by ${signal}` : `exit code ${code}`}): ${command}`);
}

/** eventOf: the control event of a redeploy step (a failure is the command's error instead); renderEvent gives its text. */
function eventOf(event: Exclude<RedeployEvent, { type: 'failed' }>): ControlEvent {
  return {
    event: event.type, pid: 'pid' in event ? event.pid : undefined, ms: event.ms, connections: 'connections' in event ? event.connections : undefined,
    ...('predecessor' in event ? { predecessor: event.predecessor } : {}),
    ...('worker' in event ? { worker: event.worker } : {}),
    ...('timeoutMs' in event ? { timeoutMs: event.timeoutMs } : {}),
  };
}

/** aborted resolves once signal fires. */
function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** addBuiltins registers help, status, telinit, redeploy (restart), update, rebuild, upgrade, reopen, CUSTOM. */
export function addBuiltins(registry: CommandRegistry, target: ControlTarget): void {
  registry.add('help', {
    usage: 'help [command]          list the commands, or explain one',
    maxArgs: 1,
    run: (ctx) => {
      if (ctx.args.length === 0) {
        return [...registry.list(), 'quit                    close this connection', 'oneshot <command ...>   run one command, then close'];
      }
      const { name, command } = registry.get(ctx.args[0]!);
      return command.help ? `${command.usage}\n\n${command.help}` : `${command.usage}\n\n(${name} has no further help)`;
    },
  });
  registry.add('status', {
    usage: 'status                  pid, generation, runlevel, listeners, connections, memory',
    help: 'Prints the state of this instance. In JSON mode the result is an object with the same fields.',
    maxArgs: 0,
    run: () => target.status(),
  });
  const stats = target.stats?.bind(target);
  if (stats) registry.add('stats', {
    usage: 'stats                   requests and connections per listener, redeploys done, failed, taken back, their timings',
    help: 'Totals carry over a redeploy (the old instance\'s, as it hands over); openConnections are this instance\'s own.\n' +
      'In JSON mode the result is an object: { pid, since, listeners: [...], redeploys: { done, failed, takenBack }, last: [...] }.',
    maxArgs: 0,
    run: (ctx) => (ctx.json ? stats() : formatStats(stats())),
  });
  registry.add('telinit', {
    usage: 'telinit 0|1|3           switch runlevel: 0 halt, 1 single user, 3 serving',
    help: '1 closes the listeners (another process may take the port) and drains open connections; the control socket stays.\n3 binds the listeners again. 0 halts: drain, hooks, exit.',
    minArgs: 1,
    maxArgs: 1,
    run: async (ctx) => {
      const done = target.telinit(ctx.args[0]!);
      if (Number(ctx.args[0]) === 0 && ctx.args[0]!.trim() !== '') {
        // The halt closes this connection before it resolves: the connection
        // says so (ctx.signal) and writes this answer before it closes.
        done.catch(() => undefined); // a refusal still rejects the race below
        await Promise.race([done, aborted(ctx.signal)]);
      } else await done;
      return ctx.json ? { runlevel: Number(ctx.args[0]) } : `runlevel ${ctx.args[0]}`;
    },
  });
  registry.add('redeploy', {
    usage: 'redeploy                start a new instance, hand it every socket, drain this one',
    help: 'Streams the steps (spawned, ready, draining) and ends with ok once the new instance serves,\nor with an error saying why it failed (this instance then goes on serving).\nThis connection stays open and is served by the new instance afterwards.',
    maxArgs: 0,
    run: async (ctx) => {
      ctx.handover();
      const result = await target.redeploy((event) => {
        if (event.type !== 'failed') ctx.event(eventOf(event), renderEvent(eventOf(event)));
      });
      return ctx.json ? result : undefined;
    },
  });
  registry.alias('restart', 'redeploy');
  registry.add('update', {
    usage: 'update                  run the configured update command (e.g. git pull)',
    maxArgs: 0,
    run: (ctx) => runShell(ctx, 'update', target.shellCommands.update),
  });
  registry.add('rebuild', {
    usage: 'rebuild                 run the configured rebuild command (e.g. npm ci && npm run build)',
    maxArgs: 0,
    run: (ctx) => runShell(ctx, 'rebuild', target.shellCommands.rebuild),
  });
  registry.add('upgrade', {
    usage: 'upgrade                 update, then rebuild; stops at the first failure (does not redeploy)',
    maxArgs: 0,
    run: async (ctx) => {
      if (!target.shellCommands.update && !target.shellCommands.rebuild) {
        throw new NotConfiguredError('upgrade is not configured: set commands.update and commands.rebuild in the GracefulServer options');
      }
      await runShell(ctx, 'update', target.shellCommands.update);
      await runShell(ctx, 'rebuild', target.shellCommands.rebuild);
    },
  });
  registry.add('reopen', {
    usage: 'reopen                  re-open the log files (after logrotate moved them)',
    maxArgs: 0,
    run: async (ctx) => {
      const names = await target.reopen();
      return ctx.json ? { reopened: names } : `reopened ${names.length} file(s)${names.length ? `: ${names.join(', ')}` : ''}`;
    },
  });
  registry.add('task', {
    usage: 'task [name [args...]]   run a named task of the application (as SIGUSR1/SIGUSR2 do); alone, list them',
    run: async (ctx) => {
      if (ctx.args.length === 0) return ctx.json ? { tasks: target.tasks() } : target.tasks().join('\n');
      return target.runTask(ctx.args[0]!, ctx.args.slice(1));
    },
  });
  registry.add('CUSTOM', {
    usage: 'CUSTOM <command> [args] run an application command (diamond\'s form)',
    minArgs: 1,
    run: (ctx) => {
      const { name, command } = registry.get(ctx.args[0]!);
      if (name === 'CUSTOM') throw new UsageError('usage: CUSTOM <command> [args...]');
      return command.run({ ...ctx, name, args: ctx.args.slice(1) });
    },
  });
}
