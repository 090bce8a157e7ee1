/**
 * ServiceControl: the control socket of a graceful server, made (not bound)
 * when the server is, so that commands can be added at once: the built-in
 * commands over a ControlTarget, `scale` and `reload` when the service has workers, and
 * the application's commands. With workers, an application's command runs
 * on every ready worker through the primary (the fan-out is given as ask);
 * in a worker, which has no control socket, the commands are kept to run on
 * its primary's request.
 */
import { WorkerFailedError, invalidArgument } from '../errors.js';
import type { ControlLimits } from '../server/control-port.js';
import { addBuiltins, type ControlTarget } from './builtins.js';
import { CommandRegistry, type Command, type CommandContext } from './commands.js';
import { formatWorkerAnswers, type WorkerAnswer } from './render.js';
import { ControlServer } from './server.js';

/** Ask: each ready worker's answer to a request (the primary's pool), with each output line of a worker as it comes. */
export type Ask = (op: string, fields: Record<string, unknown>,
  onLine: (id: number, line: string, link: { pause(): void; resume(): void }) => void, signal: AbortSignal) => Promise<WorkerAnswer[]>;

export interface ServiceControlOptions {
  /** The socket's path; none: no control socket. */
  socket?: string;
  /** 'worker': no socket here, the commands run on the primary's request. */
  role: 'single' | 'primary' | 'worker';
  mode?: number;
  allowUids?: number[];
  idleTimeout?: number;
  limits?: ControlLimits;
  log(message: string): void;
  target: ControlTarget;
  /** With workers: the fan-out to every worker, and the scale. */
  ask?: Ask;
  scale?: { run(n: number): Promise<void>; count(): number };
}

export class ServiceControl {
  /** The control socket, or null (no controlSocket option, or a worker). */
  readonly server: ControlServer | null = null;
  /** A worker's application commands, which its primary runs through the link. */
  private readonly workerCommands = new CommandRegistry();

  constructor(private readonly options: ServiceControlOptions) {
    if (!options.socket || options.role === 'worker') return;
    const control = new ControlServer(options.socket, {
      mode: options.mode, allowUids: options.allowUids, idleTimeout: options.idleTimeout, log: options.log, ...options.limits,
    });
    this.server = control;
    addBuiltins(control.commands, options.target);
    const scale = options.scale;
    if (!scale) {
      control.commands.unavailable('scale', 'scale: this service runs without workers: set the workers option (or GRACEFUL_WORKERS) to scale it');
      control.commands.unavailable('reload', 'reload: this service runs without workers, and reload replaces the workers alone: use redeploy, which replaces the whole process');
      return;
    }
    control.commands.add('reload', {
      usage: 'reload                  replace every worker by a new one of the code on disk; the primary stays',
      help: 'A rolling reload as node:cluster and PM2 do it: new workers (the program as it is on disk now) start, all become ready, accept, then the old ones drain; the primary, its listeners, options and control socket stay as they are, so it costs the workers\' start alone. A change to the primary (options, listeners, the number of workers, this library) needs redeploy. If a new worker fails, the old ones serve on.',
      maxArgs: 0,
      run: async (ctx) => {
        const n = scale.count();
        await scale.run(n);
        return ctx.json ? { workers: scale.count(), reloaded: n } : `${scale.count()} new worker(s) serving`;
      },
    });
    control.commands.add('scale', {
      usage: 'scale <n>               run n workers: new ones start, then the old ones drain',
      help: 'Replaces every worker by n new ones under load without a failed request: the new workers all become ready, then accept, then the old ones drain. If one fails, the old ones serve on. The number carries over to later generations until a new version configures another.',
      minArgs: 1,
      maxArgs: 1,
      run: async (ctx) => {
        const n = /^\d+$/.test(ctx.args[0]!) ? Number(ctx.args[0]) : NaN;
        await scale.run(n);
        return ctx.json ? { workers: scale.count() } : `${scale.count()} worker(s) serving`;
      },
    });
  }

  /** command: see GracefulServer.command(). */
  command(name: string, command: Command, options: { where?: 'workers' | 'primary' } = {}): void {
    const where = options?.where ?? 'workers';
    if (where !== 'workers' && where !== 'primary') throw invalidArgument('command', `where must be 'workers' or 'primary', got ${JSON.stringify(where)}`);
    if (this.options.role === 'worker') {
      // The primary owns the control socket and runs this here through the link.
      if (where === 'workers') this.workerCommands.add(name, command);
      return;
    }
    if (!this.server) throw invalidArgument('command', 'there is no control socket: set the controlSocket option');
    const ask = this.options.ask;
    this.server.commands.add(name, ask && where === 'workers' ? onEveryWorker(name, command, ask) : command);
  }

  /** runWorkerCommand: in a worker, run an application command on its primary's request. */
  async runWorkerCommand(name: string, ctx: Omit<CommandContext, 'peer' | 'event' | 'handover'> & { peer: never; event(e: unknown, text: string): boolean; handover(): undefined }): Promise<unknown> {
    const { command } = this.workerCommands.get(name);
    return command.run(ctx as CommandContext);
  }
}

/**
 * onEveryWorker: in the primary, a command that runs on every ready worker:
 * each output line comes labelled `worker <id>: `, and the result is every
 * worker's, by slot (in JSON mode { workers: [{ id, pid, result | error }] }).
 */
function onEveryWorker(name: string, command: Command, ask: Ask): Command {
  return {
    usage: command.usage,
    help: command.help,
    minArgs: command.minArgs,
    maxArgs: command.maxArgs,
    run: async (ctx) => {
      const answers = await ask('run', { name, args: ctx.args, json: ctx.json, peer: ctx.peer }, (id, line, link) => {
        if (!ctx.write(`worker ${id}: ${line}`)) {
          link.pause();
          void ctx.drain().then(() => link.resume());
        }
      }, ctx.signal);
      if (answers.length === 0) throw new WorkerFailedError(`${name}: no worker is ready to run it (see status)`);
      return ctx.json ? { workers: answers } : formatWorkerAnswers(answers);
    },
  };
}
