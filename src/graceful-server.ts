/**
 * GracefulServer: the application's listeners, sockets and files, kept across
 * redeploys. Model (after cloudflare/tableflip): at any time there are one or
 * two instances of the program, at most one of them not yet ready. A redeploy
 * spawns the same program, hands it every registered descriptor, and once it
 * says ready, this instance stops accepting, drains and exits. If the new
 * instance fails in any way, it is killed and this one goes on as before.
 *
 * This class is the facade: it composes the parts, each with one role and
 * its own state, and none of which imports it:
 *   options.ts    the options, their defaults and environment overrides
 *   registry.ts   the named descriptors: inherited, activated, registered
 *   listener-set.ts  the listeners together: start, stop, drain, take-back
 *   lifecycle.ts  the state machine and the invariants, every transition
 *   redeploy.ts   spawn, hand-over, take-back (successor.ts, predecessor.ts)
 *   shutdown.ts   what a halt does, in order
 *   primary.ts    with workers: the sockets held, the pool of worker processes
 *   worker.ts     with workers: the role of this process, a worker's watch on its primary
 */
import dns from 'node:dns';
import { EventEmitter } from 'node:events';
import type dgram from 'node:dgram';
import net from 'node:net';
import path from 'node:path';
import { debuglog } from 'node:util';
import { DuplicateNameError, HandoffFailedError, HookFailedError, NotPrimaryError, TerminatingError, UnknownTaskError, UpgradeInProgressError, WorkerFailedError, invalidArgument } from './errors.js';
import type { Meta } from './meta.js';
import { fdOf } from './fds.js';
import type { OutgoingFd } from './handoff/connection.js';
import { writePidFile } from './pidfile.js';
import { notify, takeListenFds } from './systemd.js';
import { openFile } from './safefile.js';
import { ManagedListener, type ListenOptions } from './server/listeners.js';
import { Listeners, type ListenerInfo, type ListenerStatus } from './server/listener-set.js';
import { emptyStates } from './conn-states.js';
import { GracefulFile } from './server/file.js';
import { Hooks, type Hook, type StopHook } from './server/hooks.js';
import { installSignals } from './server/signals.js';
import { ControlServer } from './control/server.js';
import { addBuiltins, type ControlTarget } from './control/builtins.js';
import type { Command } from './control/commands.js';
import { makeLogger, type LogFields } from './log.js';
import { Predecessor } from './server/predecessor.js';
import { CONTROL_FIELD, SUPERVISOR_ENV } from './protocol.js';
import { checkRunlevel, DEFAULT_CONTROL_FD_NAME, readConfigFile, resolveOptions, type Config, type GracefulServerOptions, type Runlevel } from './server/options.js';
import { Registry } from './server/registry.js';
import { Lifecycle, type InstanceState } from './server/lifecycle.js';
import { Redeployer, type RedeployEvent, type RedeployResult } from './server/redeploy.js';
import { Stats } from './server/stats.js';
import { Shutdown } from './server/shutdown.js';
import { OwnedFd } from './owned-fd.js';
import { addon } from './native.js';
import { Adopter } from './server/adopt.js';
import { ADOPT_FIELD, ADOPT_LISTENERS_FIELD, ADOPT_SOCKETS_FIELD } from './server/conn-handover.js';
import { isSocket, type HandOverOptions } from './server/socket-handover.js';
import { webSocketBoundary } from './server/ws-boundary.js';
import { TicketKeys, checkRotation } from './server/ticket-keys.js';
import { MAX_WORKERS } from './server/options.js';
import { GO_NAME, waitForGo } from './workers/go.js';
import { bindListener, bindMember, extraName, forSlot, memberName, memberOf, type PrimaryListener } from './workers/listener-groups.js';
import { WorkerPool } from './workers/pool.js';
import type { WorkerInfo } from './workers/slots.js';
import { roleOf, watchPrimary, type RoleInfo } from './workers/worker.js';
import { LINK_NAME, serveLink, type WorkerLink } from './workers/worker-link.js';
import { CommandRegistry } from './control/commands.js';
import { formatCommandResult, formatWorkerAnswers } from './control/render.js';

export {
  DEFAULT_UPGRADE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_IDLE_GRACE, DEFAULT_TAKE_BACK_WINDOW,
  type GracefulServerOptions, type Runlevel,
} from './server/options.js';
export type { RedeployEvent, RedeployResult } from './server/redeploy.js';
export type { InstanceState } from './server/lifecycle.js';
export type { AdoptedSocket, HandOverOptions } from './server/socket-handover.js';
export type { WorkerInfo, WorkerState } from './workers/slots.js';

const debug = debuglog('graceful');

/** probeFree rejects with Node's EADDRINUSE error when something listens on port already (a plain bind, closed at once). */
function probeFree(port: number | string, host: string | undefined, ipv6Only: boolean | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen({ port: Number(port), host, ipv6Only }, () => probe.close(() => resolve()));
  });
}
/** The tasks of the library itself: with workers they run in the primary (which tells the workers what they need). */
const BUILTIN_TASKS: ReadonlySet<string> = new Set(['reopen', 'rotate-tickets']);
/** How long the primary waits for each worker to run a task (reopen included); one that takes longer answers with an error. */
const WORKER_TASK_TIMEOUT_MS = 30_000;
/** The highest member index of a listener's group looked for in what a predecessor sent. */
const MAX_MEMBER_INDEX = 16 * MAX_WORKERS;

export class GracefulServer extends EventEmitter {
  readonly upgradeTimeout: number;
  readonly shutdownTimeout: number;
  /** 1 for the first instance, then one more for each redeploy. */
  generation = 1;
  private readonly config: Config;
  private readonly log: (msg: string, fields?: LogFields) => void;
  private readonly registry = new Registry();
  private readonly lifecycle: Lifecycle;
  private readonly redeployer: Redeployer;
  private readonly shutdown: Shutdown;
  private readonly hooks = new Hooks();
  private readonly levelHooks = new Map<Runlevel, ((level: Runlevel) => void | Promise<void>)[]>();
  private readonly listenerSet = new Listeners();
  private readonly files = new Map<string, GracefulFile>();
  private readonly tasks = new Map<string, (args: string[]) => unknown>();
  private readonly startedAt = Date.now();
  /** The live statistics of the stats command. */
  private readonly stats = new Stats();
  /** The control socket, made (not bound) in the constructor so commands can be added at once. */
  private readonly control: ControlServer | null;
  private initPromise: Promise<void> | null = null;
  /** What a new instance starts only in ready(), so that it accepts nothing before. */
  private pendingStarts: (() => Promise<void>)[] = [];
  private predecessor: Predecessor | null = null;
  /** A new instance's receiver of the connections its predecessor hands over while it drains. */
  private adopter: Adopter | null = null;
  /** The runlevel to enter at ready(). */
  private targetLevel: Runlevel;
  private readonly haltPromise: Promise<void>;
  private resolveHalt!: () => void;
  /** Keeps the process alive from start to halt, even with every listener closed (runlevel 1). */
  private keepAlive: NodeJS.Timeout | null = null;
  private removeSignals: (() => void) | null = null;
  /** A halt asked by SIGTERM/SIGINT is under way (a second SIGINT then forces the exit). */
  private signalStop = false;
  /** single, primary or worker, and the worker's slot. */
  private readonly roleInfo: RoleInfo;
  /** The primary's workers. */
  private readonly pool: WorkerPool | null;
  /** The primary's listening sockets, on which it never accepts. */
  private readonly held = new Map<string, PrimaryListener[]>();
  /** The primary's UDP sockets, which its workers read. */
  private readonly heldDgrams = new Map<string, PrimaryListener>();
  /** The names of the group members registered for hand-offs. */
  private readonly registeredMembers = new Set<string>();
  /** The primary's session-ticket keys of its TLS listeners, which every worker it starts gets. */
  private readonly heldTickets = new Map<string, TicketKeys>();
  /** A worker's application commands, which its primary runs on every worker through the link. */
  private readonly workerCommands = new CommandRegistry();
  /** A worker's end of the link to its primary. */
  private link: WorkerLink | null = null;

  constructor(options: GracefulServerOptions = {}) {
    super();
    this.config = resolveOptions(options);
    this.on('redeploy', (event: RedeployEvent) => this.stats.onRedeploy(event));
    this.log = makeLogger(options.log);
    this.upgradeTimeout = this.config.upgradeTimeout;
    this.shutdownTimeout = this.config.shutdownTimeout;
    this.targetLevel = this.config.runlevel;
    this.roleInfo = roleOf(this.config.workers);
    this.pool = this.roleInfo.role === 'primary'
      ? new WorkerPool({
        count: this.roleInfo.workers,
        descriptors: (slot, count) => forSlot(this.registry.handoffList(), slot, count),
        grow: (count) => this.growGroups(count),
        state: () => ({ runlevel: this.lifecycle.level, generation: this.generation }),
        generation: () => this.generation,
        timeoutMs: this.config.upgradeTimeout,
        shutdownTimeoutMs: this.config.shutdownTimeout,
        spawn: this.config.spawn,
        log: this.log,
        retired: (counts) => this.stats.retire(counts),
        changed: (info) => {
          // A slot that stopped restarting: its member of each group closes, so
          // that the kernel sends new connections to the members still served.
          if (info.state === 'crash-loop') {
            for (const members of this.held.values()) {
              if (members.length > 1) members.filter((m) => m.fd.open && memberOf(m.meta.member, info.id, this.pool!.count)).forEach((m) => m.fd.close());
            }
          }
          this.emit('worker', info);
        },
      })
      : null;
    if (this.pool) this.stats.fromWorkers(() => this.pool!.reported());
    this.haltPromise = new Promise((resolve) => {
      this.resolveHalt = resolve;
    });
    this.lifecycle = new Lifecycle({
      predecessorRunning: () => {
        const p = this.predecessor;
        return p?.running ? { pid: p.pid, exited: p.exited(), commit: (ms: number) => p.commit(ms) } : null;
      },
      onState: (from, to) => debug('state %s -> %s', from, to),
    });
    this.shutdown = new Shutdown({
      lifecycle: this.lifecycle,
      config: this.config,
      log: this.log,
      listeners: this.listenerSet,
      hooks: this.hooks,
      runLevelHooks: (level) => this.runLevelHooks(level),
      control: () => this.control,
      predecessor: () => this.predecessor,
      draining: (open) => this.emit('draining', open),
      workers: () => this.pool?.drain() ?? Promise.resolve(),
      keepSocketFiles: this.roleInfo.role === 'worker',
      release: () => {
        // The primary's sockets: its workers are gone, and a successor holds its own copies.
        for (const members of this.held.values()) for (const m of members) m.fd.close();
        for (const t of this.heldTickets.values()) t.pause();
        for (const d of this.heldDgrams.values()) d.fd.close();
        this.link?.close();
        this.removeSignals?.();
        this.adopter?.close();
        if (this.keepAlive) clearInterval(this.keepAlive);
      },
      halted: ({ forced, handedOver, bySignal }) => {
        this.emit('runlevel', 0);
        this.emit('halt', { forced, handedOverTo: this.lifecycle.handedOverTo });
        this.resolveHalt();
        if (this.config.exitProcess ?? (handedOver || bySignal || this.signalStop)) setImmediate(() => process.exit(0));
      },
    });
    this.redeployer = new Redeployer({
      lifecycle: this.lifecycle,
      config: this.config,
      log: this.log,
      descriptors: () => this.handoffList(),
      state: () => ({
        runlevel: this.lifecycle.level, generation: this.generation, ...this.listenerSet.closedPorts(),
        ...(this.pool ? { workersScaled: this.pool.count, workersConfigured: this.config.workers } : {}),
        ...this.stats.state(),
      }),
      listeners: this.listenerSet,
      control: () => this.control,
      drain: (release) => this.drainListeners(release),
      serving: () => this.serving(),
      finishHalt: (how) => this.shutdown.finish({ ...how, bySignal: false }),
      emit: (name, value) => this.emit(name, value),
      takeBack: this.pool ? () => this.pool!.restart() : undefined,
      retire: this.pool ? (slot) => this.pool!.retire(slot) : undefined,
      refill: this.pool ? () => this.pool!.refill() : undefined,
    });
    this.tasks.set('reopen', async () => `reopened ${(await this.reopen()).join(', ') || 'nothing'}`);
    this.tasks.set('rotate-tickets', () => (this.roleInfo.role === 'worker'
      ? 'a worker serves with the TLS ticket keys of its primary: run rotate-tickets on the primary'
      : `rotated the TLS ticket keys of ${this.rotateTicketKeys().join(', ') || 'nothing (no TLS listener)'}`));
    if (options.controlSocket && this.roleInfo.role !== 'worker') {
      this.control = new ControlServer(options.controlSocket, {
        mode: options.controlMode,
        allowUids: options.controlAllowUids,
        idleTimeout: options.controlIdleTimeout,
        log: (message) => this.log(message),
        ...options.controlLimits,
      });
      addBuiltins(this.control.commands, this.controlTarget());
      if (this.pool) {
        this.control.commands.add('scale', {
          usage: 'scale <n>               run n workers: new ones start, then the old ones drain',
          help: 'Replaces every worker by n new ones under load without a failed request: the new workers all become ready, then accept, then the old ones drain. If one fails, the old ones serve on. The number carries over to later generations until a new version configures another.',
          minArgs: 1,
          maxArgs: 1,
          run: async (ctx) => {
            const n = /^\d+$/.test(ctx.args[0]!) ? Number(ctx.args[0]) : NaN;
            await this.scale(n);
            return ctx.json ? { workers: this.pool!.count } : `${this.pool!.count} worker(s) serving`;
          },
        });
      }
    } else {
      this.control = null;
    }
  }

  /**
   * fromConfig builds a server from a JSON configuration file whose values
   * may hold {$NAME} placeholders from the environment; code options win.
   * Unknown keys are an error (ERR_GRACEFUL_CONFIG), so a typo never goes unnoticed.
   */
  static fromConfig(file: string, options: GracefulServerOptions = {}): GracefulServer {
    return new GracefulServer({ ...readConfigFile(file), ...options });
  }

  /** onStart: hooks run before any listener is bound or inherited (register them before the first listen/file/ready). */
  onStart(hook: Hook): this {
    if (this.initPromise) throw invalidArgument('onStart', 'start hooks must be registered before the first listen(), file(), dgram(), descriptor() or ready()');
    this.hooks.add('start', hook);
    return this;
  }

  /** onReady: hooks run by ready() before anything is accepted; an error aborts the start (and a redeploy in a new instance). */
  onReady(hook: Hook): this {
    this.hooks.add('ready', hook);
    return this;
  }

  /** onStarted: hooks run once ready() finished (the predecessor is draining). */
  onStarted(hook: Hook): this {
    this.hooks.add('started', hook);
    return this;
  }

  /** onStop: hooks run at halt after the drain, given an AbortSignal that fires at the shutdown timeout. */
  onStop(hook: StopHook): this {
    this.hooks.add('stop', hook);
    return this;
  }

  /** onTerminate: hooks run last, right before halted resolves (and the process exits, if it does). */
  onTerminate(hook: Hook): this {
    this.hooks.add('terminate', hook);
    return this;
  }

  /** onRunlevel adds a hook run, in registration order, each time runlevel level is entered. */
  onRunlevel(level: Runlevel, hook: (level: Runlevel) => void | Promise<void>): this {
    const l = checkRunlevel(level);
    const hooks = this.levelHooks.get(l) ?? [];
    hooks.push(hook);
    this.levelHooks.set(l, hooks);
    return this;
  }

  /** state: where this instance is in its lifecycle (starting, ready, handing-over, taken-back, draining, halting, halted). */
  get state(): InstanceState {
    return this.lifecycle.state;
  }

  /** running: started and not yet halted. */
  get running(): boolean {
    return this.initPromise !== null && this.lifecycle.state !== 'halted';
  }

  /** started: ready() finished. */
  get started(): boolean {
    return this.lifecycle.wasReady;
  }

  /** terminating: handed over, halting or halted. */
  get terminating(): boolean {
    return this.lifecycle.terminating;
  }

  /** isReady: ready() ran and this instance serves (it has not handed over, and is not halting). */
  get isReady(): boolean {
    return this.lifecycle.state === 'ready';
  }

  /** isPrimary: not a worker (the primary of a service with workers, or a single instance), as in node:cluster. */
  get isPrimary(): boolean {
    return this.roleInfo.role !== 'worker';
  }

  /** workerId: this worker's slot, 0..workers-1, stable across restarts of the slot; null outside a worker. */
  get workerId(): number | null {
    return this.roleInfo.workerId;
  }

  /** workers: how many worker processes the service runs (0: one process, without workers). */
  get workers(): number {
    return this.pool?.count ?? this.roleInfo.workers;
  }

  /** workerInfo: each worker of the primary (id, pid, state, uptime, restarts); empty elsewhere. */
  workerInfo(): WorkerInfo[] {
    return this.pool?.info() ?? [];
  }

  /** runlevel: 0 halted, 1 single user, 3 serving. */
  get runlevel(): Runlevel {
    return this.lifecycle.level;
  }

  /** halted resolves once this instance reached runlevel 0 and closed everything. */
  get halted(): Promise<void> {
    return this.haltPromise;
  }

  /** predecessorPid: the instance this one replaced, if any. */
  get predecessorPid(): number | null {
    return this.predecessor?.pid ?? null;
  }

  /** redeployInProgress: the pending redeploy, if any. */
  get redeployInProgress(): { pid?: number; since: number } | null {
    const r = this.lifecycle.redeploying;
    return r && { pid: r.pid, since: r.since };
  }

  /**
   * task registers a named task: SIGUSR1/SIGUSR2 run it when the options name
   * it, and the control command `task <name> [args]` runs it with arguments.
   * `reopen` is built in.
   */
  task(name: string, run: (args: string[]) => unknown): this {
    if (typeof name !== 'string' || !/^[\w.-]+$/.test(name)) throw invalidArgument('task', `a task name must be letters, digits, '_', '.', '-', got ${JSON.stringify(name)}`);
    if (typeof run !== 'function') throw invalidArgument('task', 'run must be a function');
    if (this.tasks.has(name)) throw new DuplicateNameError(`the task "${name}" exists already`);
    this.tasks.set(name, run);
    return this;
  }

  /** runTask runs a task by name; rejects with ERR_GRACEFUL_UNKNOWN_TASK when there is none. */
  async runTask(name: string, args: string[] = []): Promise<unknown> {
    const run = this.tasks.get(name);
    if (!run) throw new UnknownTaskError(`no task "${name}": the tasks are ${[...this.tasks.keys()].sort().join(', ')}`);
    // With workers an application's task runs where its state is: on every worker.
    if (this.pool && !BUILTIN_TASKS.has(name)) return { workers: await this.pool.ask('task', { name, args }, undefined, AbortSignal.timeout(WORKER_TASK_TIMEOUT_MS)) };
    return run(args);
  }

  /** taskNames: the registered tasks. */
  taskNames(): string[] {
    return [...this.tasks.keys()].sort();
  }

  /**
   * command registers a control command of the application: `usage` is its
   * line in `help`, `help` its long text, `run(ctx)` its handler (it may
   * stream with ctx.write until ctx.signal says the client left). It may be
   * called before anything else; a name taken (by a built-in or an earlier
   * call) throws ERR_GRACEFUL_DUPLICATE_NAME here.
   */
  command(name: string, command: Command, options: { where?: 'workers' | 'primary' } = {}): this {
    const where = options?.where ?? 'workers';
    if (where !== 'workers' && where !== 'primary') throw invalidArgument('command', `where must be 'workers' or 'primary', got ${JSON.stringify(where)}`);
    if (this.roleInfo.role === 'worker') {
      // The primary owns the control socket and runs this here through the link.
      if (where === 'workers') this.workerCommands.add(name, command);
      return this;
    }
    if (!this.control) throw invalidArgument('command', 'there is no control socket: set the controlSocket option');
    this.control.commands.add(name, this.pool && where === 'workers' ? this.onEveryWorker(name, command) : command);
    return this;
  }

  /**
   * onEveryWorker: in the primary, a command that runs on every ready worker:
   * each output line comes labelled `worker <id>: `, and the result is every
   * worker's, by slot (in JSON mode { workers: [{ id, pid, result | error }] }).
   */
  private onEveryWorker(name: string, command: Command): Command {
    return {
      usage: command.usage,
      help: command.help,
      minArgs: command.minArgs,
      maxArgs: command.maxArgs,
      run: async (ctx) => {
        const answers = await this.pool!.ask('run', { name, args: ctx.args, json: ctx.json, peer: ctx.peer }, (id, line, link) => {
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

  /** serveWorkerLink: a worker answers its primary's stats and command requests on the link. */
  private serveWorkerLink(fd: number): void {
    this.link = serveLink(fd, {
      stats: () => ({ connections: this.connectionCount(), requests: this.listenerSet.requestCount(), rss: process.memoryUsage().rss }),
      task: (name, args) => this.runTask(name, args),
      run: async (name, args, json, peer, write, drain, signal) => {
        const { command } = this.workerCommands.get(name);
        return command.run({
          name, args, json, signal,
          peer: (peer ?? { pid: 0, uid: 0, gid: 0 }) as never,
          write,
          event: (_e, text) => write(text),
          drain,
          handover: () => undefined,
        });
      },
    }, (msg) => this.log(msg));
  }

  /**
   * starting runs a start step (listen, dgram, file). When one fails before
   * ready(), the library no longer keeps the process alive: its keep-alive
   * timer stops and the control socket no longer holds the event loop (it is
   * closed, and its file removed, when the process exits, whether or not the
   * application calls telinit(0)). ready() holds the loop again, so an
   * application may still try another port.
   */
  private async starting<T>(step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (err) {
      if (!this.isReady && !this.terminating) {
        if (this.keepAlive) clearInterval(this.keepAlive);
        this.keepAlive = null;
        this.control?.unref();
      }
      throw err;
    }
  }

  /** init takes what a predecessor or systemd passed, once, before anything is bound. */
  private init(): Promise<void> {
    this.initPromise ??= (async () => {
      this.predecessor = await Predecessor.connect();
      if (this.predecessor) {
        this.registry.inherit(this.predecessor.fds);
        this.targetLevel = checkRunlevel(this.predecessor.state.runlevel ?? 3);
        // A worker belongs to its primary's generation; a new instance is the next one.
        this.generation = Number(this.predecessor.state.generation ?? 1) + (this.roleInfo.role === 'worker' ? 0 : 1);
        // A scale carries over while the version keeps the configured number.
        const scaled = this.predecessor.state.workersScaled;
        if (this.pool && typeof scaled === 'number' && this.predecessor.state.workersConfigured === this.config.workers && scaled !== this.pool.count) {
          this.pool.resize(scaled);
        }
        this.stats.restore(this.predecessor.state);
        debug('took %d descriptor(s) from pid %d', this.registry.inheritedCount, this.predecessor.pid);
      } else {
        this.registry.activate(takeListenFds());
      }
      this.lifecycle.level = this.targetLevel === 3 ? 3 : 1;
      this.keepAlive = setInterval(() => undefined, 2 ** 31 - 1);
      if (this.control) await this.openControl(this.control);
      if (this.roleInfo.role !== 'primary') await this.hooks.run('start'); // the hooks run where the application serves
      if (this.config.signals !== false || this.roleInfo.role === 'worker') this.removeSignals = this.installSignals();
    })();
    return this.initPromise;
  }

  private async openControl(control: ControlServer): Promise<void> {
    const inherited = this.registry.claim('control', 'control', this.log);
    for (const f of this.registry.takeConnections()) {
      control.adopt(f.take(), f.meta);
    }
    if (inherited && this.predecessor) {
      const activated = inherited.fd.meta.systemd === true;
      this.pendingStarts.push(async () => {
        await control.listen(inherited.fd.take(), { activated });
        control.start();
      });
      return;
    }
    // Socket activation: systemd's socket named controlFdName, instead of one bound here.
    const passed = this.registry.takeActivated(this.config.controlFdName ?? DEFAULT_CONTROL_FD_NAME);
    if (passed) await control.listen(passed.take(), { activated: true });
    else await control.listen();
  }

  private controlTarget(): ControlTarget {
    return {
      status: () => this.statusOfService(),
      stats: () => this.stats.snapshot(this.listenerInfo()),
      telinit: (level) => this.telinit(level),
      redeploy: (onEvent) => this.redeploy(onEvent),
      reopen: () => this.reopen(),
      tasks: () => this.taskNames(),
      runTask: (name, args) => this.runTask(name, args),
      shellCommands: this.config.commands ?? {},
    };
  }

  /** reopen re-opens every registered file by its path (logrotate); resolves with their names. */
  async reopen(): Promise<string[]> {
    for (const f of this.files.values()) await f.reopen();
    // Each worker has its own descriptors of the files: they re-open theirs too.
    if (this.pool) {
      for (const a of await this.pool.ask('task', { name: 'reopen', args: [] }, undefined, AbortSignal.timeout(WORKER_TASK_TIMEOUT_MS))) {
        if (a.error) this.log(`reopen: worker ${a.id} (pid ${a.pid}): ${a.error.message}`, { event: 'reopen.failed', worker: a.id, code: a.error.code });
      }
    }
    return [...this.files.keys()];
  }

  /**
   * rotateTicketKeys rotates the session-ticket keys of every TLS listener
   * now (the task rotate-tickets); returns their names. Tickets under the
   * key before still resume where Node allows it (see ticket-keys.ts).
   */
  rotateTicketKeys(): string[] {
    const names: string[] = [];
    if (this.roleInfo.role === 'worker') return names; // the primary's keys: rotated there
    for (const [name, tickets] of this.heldTickets) {
      tickets.rotate();
      names.push(name);
    }
    for (const l of this.listenerSet) {
      if (!l.tickets) continue;
      l.tickets.rotate();
      names.push(l.name);
    }
    return names;
  }

  /** status: the state of this instance, as the control command status shows it. */
  status(): Record<string, unknown> {
    const mem = process.memoryUsage();
    const r = this.lifecycle.redeploying;
    return {
      pid: process.pid,
      ppid: process.ppid,
      generation: this.generation,
      runlevel: this.lifecycle.level,
      ready: this.isReady,
      state: this.lifecycle.state,
      uptime: Math.round((Date.now() - this.startedAt) / 1000),
      listeners: this.listenerStatus(),
      connections: this.connectionCount(),
      connectionStates: this.listenerSet.states(),
      handover: { ...this.listenerSet.moveCounts(), adopted: this.adopter?.adoptedCount ?? 0 },
      controlConnections: this.control?.connectionCount ?? 0,
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      node: process.version,
      redeploy: r ? `pid ${r.pid ?? '(starting)'} for ${Date.now() - r.since} ms` : 'none',
      ...(this.pool ? { workers: this.pool.info(), workersWanted: this.pool.wanted, workersReady: this.pool.readyCount } : {}),
    };
  }

  /**
   * handOver passes socket, an upgraded connection (WebSocket) or one of a
   * plain net.Server of a listener with handOverSockets: true, to the new
   * instance with state (JSON-able, at most 16 KiB as JSON) and head (the
   * bytes read but not parsed, at most 16 KiB), which gets them with its
   * 'adopt-socket' event. Call it from the listener's onDrain, during a
   * redeploy. It stops reading the socket at once; resolves once the new
   * instance holds it (this process's socket is then destroyed, the client
   * sees nothing); rejects with a coded error and the socket still here and
   * read again (see the README's Connection hand-over).
   */
  async handOver(socket: net.Socket, state: unknown, options?: HandOverOptions): Promise<void> {
    if (!isSocket(socket)) throw invalidArgument('handOver', 'pass the net.Socket of a connection (for a ws WebSocket use handOverWebSocket)');
    const owner = this.listenerSet.owner(socket);
    if (!owner) {
      throw invalidArgument('handOver', 'the socket is no open connection of a listener of this instance (closed already, or never accepted by a listener registered with listen())');
    }
    return owner.tracker.handOverSocket(socket, state, options);
  }

  /**
   * handOverWebSocket hands a `ws` WebSocket over at a frame boundary: its
   * socket and the bytes its parser holds travel with state. Rejects with
   * ERR_GRACEFUL_MID_FRAME when it is inside a frame (try again after its
   * next 'message'), else as handOver().
   */
  async handOverWebSocket(ws: unknown, state: unknown): Promise<void> {
    const { socket, head } = webSocketBoundary(ws);
    return this.handOver(socket, state, { head });
  }

  /**
   * statusOfService: status, and with workers each worker's open connections,
   * requests served and RSS, asked over its link (null for a worker that did
   * not answer within a second); connections is then the workers' sum.
   */
  async statusOfService(): Promise<Record<string, unknown>> {
    const s = this.status();
    if (!this.pool) return s;
    const answers = await this.pool.ask('stats', {}, undefined, AbortSignal.timeout(1000));
    const byId = new Map(answers.map((a) => [a.id, (a.result ?? null) as { connections?: number; requests?: number; rss?: number } | null]));
    const workers = this.pool.info().map((w) => {
      const st = byId.get(w.id);
      return { ...w, connections: st?.connections ?? null, requests: st?.requests ?? null, rss: st?.rss ?? null };
    });
    // The workers as they are now, after the wait: their counts from the same moment.
    return { ...s, workers, workersWanted: this.pool.wanted, workersReady: this.pool.readyCount, connections: workers.reduce((n, w) => n + (w.connections ?? 0), 0) };
  }

  /** connectionCount: connections open on every listener. */
  connectionCount(): number {
    return this.listenerSet.connectionCount();
  }

  /** listenerStatus: the listeners as status reports them; in a primary with workers, the sockets it holds (the connections are the workers'). */
  private listenerStatus(): ListenerStatus[] {
    if (!this.pool) return this.listenerSet.status();
    return [...this.held].map(([name, members]) => {
      const open = members.filter((m) => m.fd.open);
      const { family, host, port, path: where } = members[0]!.meta;
      const at = family === 'unix' ? { path: typeof where === 'string' ? where : null } : { host: typeof host === 'string' ? host : null, port: typeof port === 'number' ? port : null };
      return { name, state: open.length > 0 ? 'open' : 'closed', kind: family === 'unix' ? 'unix' : 'tcp', ...at, fd: open[0]?.fd.fd ?? null, connections: 0, systemd: members[0]!.meta.systemd === true, members: open.length };
    });
  }

  /** listenerInfo: name, address and state of every listener, for status. */
  listenerInfo(): ListenerInfo[] {
    if (this.pool) {
      // The primary holds the sockets; the connections are the workers'.
      return [...this.held].map(([name, members]) => {
        const { family, host, port, path: where } = members[0]!.meta;
        const address: Meta = family === 'unix' ? { family, path: where ?? null } : { family: family ?? 'tcp', host: host ?? null, port: port ?? null };
        return { name, open: members.some((m) => m.fd.open), draining: false, connections: 0, states: emptyStates(), address: members.length > 1 ? { ...address, members: members.length } : address };
      });
    }
    return this.listenerSet.info();
  }

  /** deferStart: a new instance accepts (and reads datagrams) only from ready(): if it fails before, it took nothing. */
  private get deferStart(): boolean {
    return this.predecessor !== null && this.lifecycle.state === 'starting';
  }

  /**
   * listen registers server (net, http, https or http2) under name. It
   * listens on the socket inherited under that name if it is bound where
   * `bind` asks (same path, or same host and port), else on one systemd
   * passed with that name (kept across every redeploy, whatever `bind` says),
   * else binds fresh per bind. In runlevel 1 it only registers; telinit 3
   * binds. A new instance starts accepting in ready(). Resolves with the server.
   */
  listen<S extends net.Server>(name: string, server: S, bind: ListenOptions = {}): Promise<S> {
    return this.starting(() => this.listenNow(name, server, bind));
  }

  private async listenNow<S extends net.Server>(name: string, server: S, bind: ListenOptions): Promise<S> {
    if (this.terminating) throw new TerminatingError(`listen("${name}"): this instance is halting`);
    const rotation = checkRotation(`listen("${name}")`, bind.ticketKeyRotation ?? this.config.ticketKeyRotation);
    await this.init();
    // A worker serves with its primary's keys, as its siblings do: rotating alone, it would differ from them.
    const ticketRotation = this.roleInfo.role === 'worker' ? 0 : rotation;
    const listener = new ManagedListener(name, server, bind);
    if (this.roleInfo.role === 'primary') {
      this.stats.watch(name, server, false); // its workers accept: they count
      const inherited = await this.holdListener(listener, bind);
      const tickets = TicketKeys.attach(server, { name, rotation, inherited, log: this.log,
        rotated: (rotations) => this.emit('ticketkeys', { listener: name, rotations }) });
      if (tickets) {
        this.heldTickets.set(name, tickets);
        tickets.resume();
      }
      return server;
    }
    this.registry.register(name, 'listener', () => (listener.isOpen
      ? { fd: listener.fd(), meta: { name, kind: 'listener', ...listener.address(), ...listener.tickets?.meta() } }
      : null));
    this.listenerSet.add(listener);
    this.stats.watch(name, server);
    const claimed = this.registry.claim(name, 'listener', this.log, (c) => c.source === 'systemd' || listener.matches(c.fd.meta));
    if (claimed?.source === 'systemd') listener.activated = true;
    if (this.roleInfo.role === 'worker') {
      // The primary learns of the worker's open connections (to say what a crash lost).
      const report = () => this.link?.report(() => ({ connections: this.connectionCount(), listeners: this.stats.own() }));
      server.on('connection', (socket: net.Socket) => {
        report();
        socket.once('close', report);
      });
      server.on('request', report);
      server.on('stream', report);
    }
    listener.tickets = TicketKeys.attach(server, { name, rotation: ticketRotation, inherited: claimed?.source === 'predecessor' ? claimed.fd.meta : undefined, log: this.log,
      rotated: (rotations) => this.emit('ticketkeys', { listener: name, rotations }) });
    // A worker may accept on several members of the listener's group.
    for (let k = 1; claimed && this.roleInfo.role === 'worker'; k++) {
      const extra = this.registry.claim(extraName(name, k), 'listener', this.log);
      if (!extra) break;
      listener.addExtra(extra.fd);
    }
    // A listener closed in runlevel 1 comes back on the port it had.
    const lastPort = this.predecessor?.state[`port:${name}`];
    if (!claimed && typeof lastPort === 'number') listener.rememberPort(lastPort);
    if (this.lifecycle.level !== 3) {
      claimed?.fd.close(); // runlevel 1: the port must be free
      listener.dropExtras();
    } else if (this.deferStart) {
      this.pendingStarts.push(() => listener.start(claimed?.fd));
    } else {
      await listener.start(claimed?.fd);
    }
    return server;
  }

  /**
   * holdListener: in the primary, the listener's socket is inherited (from a
   * predecessor or systemd) or bound, and held for the workers: the primary
   * never accepts on it, and the application's server stays unbound here.
   * Resolves with the meta of the socket a predecessor sent, if it did.
   */
  private async holdListener(listener: ManagedListener, bind: ListenOptions): Promise<Meta | undefined> {
    const name = listener.name;
    if (this.held.has(name)) throw new DuplicateNameError(`listen("${name}"): a listener of that name exists already`);
    const claimed = this.registry.claim(name, 'listener', this.log, (c) => c.source === 'systemd' || listener.matches(c.fd.meta));
    const lastPort = this.predecessor?.state[`port:${name}`];
    const where = typeof lastPort === 'number' && !bind.port && bind.path === undefined ? { ...bind, port: lastPort } : bind;
    // An SO_REUSEPORT group, one member per slot, unless the socket is systemd's,
    // a UNIX one, or inherited from an instance that shared one socket.
    const group = this.config.balance === 'reuseport' && bind.path === undefined && claimed?.source !== 'systemd' &&
      (claimed === undefined || typeof claimed.fd.meta.group === 'string');
    const members: PrimaryListener[] = [];
    try {
      // Every member a predecessor's group had comes along, however many
      // workers run now: closing one would reset what waits in its queue.
      for (let i = 1; group && i <= MAX_MEMBER_INDEX; i++) {
        const inherited = this.registry.claim(memberName(name, i), 'listener', this.log);
        if (inherited) members.push({ fd: inherited.fd, meta: inherited.fd.meta });
      }
      if (claimed) {
        members.unshift({ fd: claimed.fd, meta: { ...claimed.fd.meta, name, kind: 'listener', ...(claimed.source === 'systemd' ? { systemd: true } : {}) } });
      } else {
        const port = members[0] ? Number(members[0].meta.port) : where.port;
        // SO_REUSEPORT would let a second copy of the service join the port silently: a
        // plain bind first fails with EADDRINUSE where anyone else listens, as without workers.
        if (group && !members[0] && port) await probeFree(port, where.host, where.ipv6Only);
        members.unshift(group ? await bindMember(name, 0, { ...where, port }) : await bindListener(listener, where));
      }
      for (const m of members) this.registerMember(name, m);
    } catch (err) {
      for (const m of members) m.fd.close();
      throw err;
    }
    this.held.set(name, members);
    return claimed?.source === 'predecessor' ? claimed.fd.meta : undefined;
  }

  /**
   * holdDgram: in the primary, the UDP socket is inherited or bound (and
   * read by nobody here); every worker gets it and reads from it, and the
   * kernel gives each datagram to one of them. The application's socket
   * stays unbound in the primary.
   */
  private async holdDgram(name: string, socket: dgram.Socket, bind: { port?: number; address?: string }): Promise<void> {
    if (this.heldDgrams.has(name)) throw new DuplicateNameError(`dgram("${name}"): "${name}" is already registered: give each listener, socket and file its own name`);
    const claimed = this.registry.claim(name, 'dgram', this.log);
    let held: OwnedFd;
    if (claimed) {
      held = claimed.fd;
    } else {
      const ipv6 = (socket as unknown as { type?: string }).type === 'udp6';
      const host = bind.address ?? (ipv6 ? '::' : '0.0.0.0');
      const numeric = net.isIP(host) ? host : (await dns.promises.lookup(host, { family: ipv6 ? 6 : 4 })).address;
      const { fd, port } = addon.bindUdp(numeric, bind.port ?? 0, false);
      held = new OwnedFd(fd, { name, kind: 'dgram', port });
    }
    const meta = { ...held.meta, name, kind: 'dgram' };
    try {
      this.registry.register(name, 'dgram', () => (held.open ? { fd: held.fd, meta } : null));
    } catch (err) {
      held.close();
      throw err;
    }
    this.heldDgrams.set(name, { fd: held, meta });
  }

  /** registerMember lists a member of a held listener for hand-offs, under its own name (once: a name comes back after a failed scale). */
  private registerMember(name: string, m: PrimaryListener): void {
    const regName = String(m.meta.name);
    if (this.registeredMembers.has(regName)) return;
    this.registeredMembers.add(regName);
    this.registry.register(regName, 'listener', () => {
      const cur = this.held.get(name)?.find((x) => x.meta.name === regName && x.fd.open);
      return cur ? { fd: cur.fd.fd, meta: { ...cur.meta, ...this.heldTickets.get(name)?.meta() } } : null;
    });
  }

  /**
   * growGroups gives each listener's SO_REUSEPORT group at least count open
   * members, binding (without listening) what is missing: a member joins the
   * group only when the worker that gets it listens. Resolves with what
   * closes the members added, should their workers not start.
   */
  private async growGroups(count: number): Promise<() => void> {
    const added: PrimaryListener[] = [];
    try {
      for (const [name, members] of this.held) {
        const first = members.find((m) => m.fd.open);
        if (!first || typeof first.meta.group !== 'string') continue; // one shared socket
        let open = members.filter((m) => m.fd.open).length;
        let next = Math.max(...members.map((m) => Number(m.meta.member ?? 0))) + 1;
        for (; open < count; open++, next++) {
          const m = await bindMember(name, next, {
            host: String(first.meta.host), port: Number(first.meta.port),
            ipv6Only: first.meta.ipv6Only === true, backlog: typeof first.meta.backlog === 'number' ? first.meta.backlog : undefined,
          }, false);
          members.push(m);
          added.push(m);
          this.registerMember(name, m);
        }
      }
    } catch (err) {
      for (const m of added) m.fd.close();
      throw err;
    }
    return () => {
      for (const m of added) m.fd.close();
      for (const [name, members] of this.held) this.held.set(name, members.filter((m) => !added.includes(m)));
    };
  }

  /**
   * scale runs n workers from now on (the primary only): new workers start,
   * all of them ready before any accepts, then the old ones drain, so no
   * request fails; if a new one fails, the old ones serve on and this
   * rejects with ERR_GRACEFUL_WORKER_FAILED. The number carries over to the
   * next generations until a new version configures another one.
   */
  async scale(n: number): Promise<void> {
    if (this.roleInfo.role === 'worker') throw new NotPrimaryError(`scale(): worker ${this.workerId} cannot scale the service: the primary (pid ${process.ppid}) does (its control command scale)`);
    if (!this.pool) throw invalidArgument('scale', 'this service runs without workers: set the workers option (or GRACEFUL_WORKERS) to scale it');
    if (this.lifecycle.state !== 'ready') throw new UpgradeInProgressError(`scale: this instance is ${this.lifecycle.state}, not serving: try again once it is ready`);
    if (this.lifecycle.redeploying) throw new UpgradeInProgressError('scale: a redeploy is under way: scale once it is done (the new version starts with the number it configures)');
    const from = this.pool.count;
    await this.pool.scale(n, (w) => this.log(`worker ${w.id} of ${n} ready (pid ${w.pid})`, { event: 'worker.ready', worker: w.id, pid: w.pid ?? undefined }));
    this.log(`scaled from ${from} to ${n} worker(s)`, { event: 'workers.scaled', from, to: n });
  }

  /** heldAddress: where a listener or UDP socket of the primary is bound ({ port } or { path }), since nothing listens or reads on it here. */
  heldAddress(name: string): Meta | null {
    return this.held.get(name)?.[0]?.meta ?? this.heldDgrams.get(name)?.meta ?? null;
  }

  /**
   * dgram registers a UDP socket: bound to the inherited socket, else per
   * bind. It stays bound in runlevel 1. In a new instance it is bound in
   * ready() (it reads nothing before: a new instance that fails took no
   * datagram); this resolves at once, with the socket not yet bound.
   */
  dgram(name: string, socket: dgram.Socket, bind: { port?: number; address?: string } = {}): Promise<dgram.Socket> {
    return this.starting(() => this.dgramNow(name, socket, bind));
  }

  private async dgramNow(name: string, socket: dgram.Socket, bind: { port?: number; address?: string }): Promise<dgram.Socket> {
    await this.init();
    if (this.roleInfo.role === 'primary') {
      await this.holdDgram(name, socket, bind);
      return socket;
    }
    let bound = false;
    this.registry.register(name, 'dgram', () => (bound ? { fd: fdOf(socket), meta: { name, kind: 'dgram', port: socket.address().port } } : null));
    const claimed = this.registry.claim(name, 'dgram', this.log);
    const start = () => new Promise<void>((resolve, reject) => {
      const fd = claimed?.fd.take();
      socket.once('error', reject);
      const done = () => {
        socket.off('error', reject);
        bound = true;
        resolve();
      };
      if (fd !== undefined) socket.bind({ fd }, done);
      else socket.bind({ port: bind.port ?? 0, address: bind.address }, done);
    });
    if (this.deferStart) this.pendingStarts.push(start);
    else await start();
    return socket;
  }

  /**
   * file registers a file under name and returns a writable stream on it: the
   * inherited open file (one open file description across every redeploy:
   * appends stay in order, nothing lost or doubled) or a fresh open of path.
   */
  file(name: string, path: string, options: { flags?: string; mode?: number } = {}): Promise<GracefulFile> {
    return this.starting(() => this.fileNow(name, path, options));
  }

  private async fileNow(name: string, path: string, options: { flags?: string; mode?: number }): Promise<GracefulFile> {
    await this.init();
    const claimed = this.registry.claim(name, 'file', this.log);
    const fd = claimed ? claimed.fd.take() : openFile(path, options.flags ?? 'a', options.mode ?? 0o644, 'file');
    const file = new GracefulFile(fd, path, options.flags ?? 'a', options.mode ?? 0o644);
    try {
      this.registry.register(name, 'file', () => (file.destroyed ? null : { fd: file.fd, meta: { name, kind: 'file', path } }));
    } catch (err) {
      file.destroy();
      throw err;
    }
    this.files.set(name, file);
    return file;
  }

  /** descriptor registers any other descriptor: the inherited one, or what open() returns (the server keeps it open). */
  async descriptor(name: string, open: () => number | Promise<number>): Promise<number> {
    await this.init();
    const claimed = this.registry.claim(name, 'fd', this.log);
    const fd = claimed ? claimed.fd.take() : fdOf(await open());
    this.registry.register(name, 'fd', () => ({ fd, meta: { name, kind: 'fd' } }));
    return fd;
  }

  /**
   * ready says the application is ready to serve. Descriptors nobody claimed
   * are closed, the ready hooks run, the pid file is written and the
   * listeners start accepting: all that can fail happens before a
   * predecessor (if any) is told, which then drains; then systemd is told.
   * Call it once, after registering. It rejects with ERR_GRACEFUL_HOOK_FAILED
   * or the error that stopped the start; a new instance then gave up its
   * hand-off (its predecessor goes on serving) and should exit. A predecessor
   * that is gone by then is no error: this instance is the only one, and serves.
   */
  ready(): Promise<void> {
    try {
      this.lifecycle.checkReady();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.lifecycle.run(() => this.becomeReady());
  }

  private async becomeReady(): Promise<void> {
    await this.init();
    if (this.keepAlive === null && !this.terminating) {
      // A start step failed and the application went on: hold the loop again.
      this.keepAlive = setInterval(() => undefined, 2 ** 31 - 1);
      this.control?.ref();
    }
    this.lifecycle.checkReady();
    const predecessor = this.predecessor;
    if (this.handoffAbandoned) {
      throw new HandoffFailedError(`ready(): an earlier ready() failed and told the predecessor (pid ${predecessor?.pid}), which goes on serving: exit this process`);
    }
    let goFd: { close(): void } | undefined;
    /** giveUp: a new instance that cannot start tells its predecessor (which serves on) and accepts nothing. */
    const giveUp = (err: unknown) => {
      goFd?.close();
      if (!predecessor) return;
      // The reason goes to the predecessor over the hand-off: its redeploy
      // then fails with this one line, not with what our stderr nested.
      predecessor.abandon((err as Error)?.message ?? String(err));
      this.handoffAbandoned = true;
      this.listenerSet.stopAll(false);
    };
    // A worker of a starting generation accepts only once its primary says go.
    const go = this.roleInfo.role === 'worker' ? this.registry.claim(GO_NAME, 'fd', this.log) : undefined;
    goFd = go?.fd;
    const link = this.roleInfo.role === 'worker' ? this.registry.claim(LINK_NAME, 'fd', this.log) : undefined;
    if (link) this.serveWorkerLink(link.fd.take());
    const leftovers = this.registry.closeUnclaimed();
    if (leftovers.count > 0) this.log(`closing ${leftovers.count} inherited descriptor(s) nobody registered: ${leftovers.names.join(', ')}`);
    const role = this.roleInfo.role;
    try {
      if (role !== 'primary') await this.hooks.run('ready');
    } catch (err) {
      const who = role === 'worker' ? `worker ${this.workerId} (pid ${process.pid})` : 'this instance';
      const failed = new HookFailedError(`a ready hook failed, so ${who} does not start: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      giveUp(failed);
      throw failed;
    }
    try {
      // Before the predecessor is told: a failure here leaves it serving.
      if (this.config.pidFile && role !== 'worker') writePidFile(this.config.pidFile);
      if (go && predecessor) {
        const told = await predecessor.ready();
        if (told || !(await waitForGo(go.fd.take()))) {
          throw new HandoffFailedError(`ready(): the primary (pid ${predecessor.pid}) called off the start of worker ${this.workerId}'s generation (another worker failed, or it is gone): this worker accepted nothing; exit this process`);
        }
      }
      for (const start of this.pendingStarts.splice(0)) await start();
      // A primary is ready once every worker of its generation is.
      if (this.pool) {
        const onReady = (w: WorkerInfo) => {
          this.log(`worker ${w.id} of generation ${this.generation} ready (pid ${w.pid})`, { event: 'worker.ready', worker: w.id, pid: w.pid ?? undefined });
          if (w.pid !== null) predecessor?.progress(w.id, w.pid);
        };
        if (this.config.rollout === 'rolling' && predecessor) await this.pool.startRolling((slot) => predecessor.retire(slot), onReady);
        else await this.pool.startAll(onReady);
      }
    } catch (err) {
      giveUp(err);
      this.log(`ready: this instance cannot start: ${(err as Error).message}`, { event: 'ready.failed', code: (err as { code?: string }).code });
      throw err;
    }
    // Accepting from here on: status says ready, also while the predecessor is told.
    this.lifecycle.to('ready');
    if (predecessor && role === 'worker') {
      // A worker serves as long as its primary runs, and no longer.
      await predecessor.ready();
      watchPrimary(predecessor, () => {
        this.log(`worker ${this.workerId}: the primary (pid ${predecessor.pid}) is gone: halting`, { event: 'worker.orphaned' });
        this.stop(true).catch((err: Error) => this.log(`stop: ${err.message}`));
      });
    } else if (predecessor) {
      // The service manager (or a supervisor) learns the new main pid before
      // the predecessor may exit, so it never sees the service without one.
      notify(`MAINPID=${process.pid}`);
      const err = await predecessor.ready(this.openAdopter(predecessor), true); // kept open for a commit (see Lifecycle.waitForPredecessor)
      if (err) this.log(`could not tell the predecessor (pid ${predecessor.pid}) that this instance is ready (${(err as { code?: string }).code ?? err.message}): it is gone, so this instance serves alone`, { event: 'ready.predecessor-gone' });
    }
    if (role !== 'worker') notify(this.readyNotice());
    await this.runLevelHooks(this.lifecycle.level);
    if (role !== 'primary') await this.hooks.run('started');
    this.stats.ready();
    this.emit('ready');
  }

  /**
   * openAdopter opens the receiver of the connections the predecessor hands
   * over while it drains (listeners with handOver: true), and returns what
   * the ready answer tells it; nothing when no listener takes connections
   * over or it cannot be opened (the predecessor then drains them itself).
   */
  private openAdopter(predecessor: Predecessor): Meta {
    const names = this.listenerSet.handingOver();
    let sockets = this.listenerSet.handingOverSockets();
    if (sockets.length > 0 && this.listenerCount('adopt-socket') === 0) {
      this.log(`listeners ${sockets.join(', ')} have handOverSockets: true but nothing listens for 'adopt-socket': the predecessor closes their connections instead`,
        { event: 'ready.adopt-socket-unheard' });
      sockets = [];
    }
    if (names.length === 0 && sockets.length === 0) return {};
    try {
      const adopter = Adopter.open({
        predecessorPid: predecessor.pid,
        target: (name) => {
          const l = this.listenerSet.get(name);
          return l?.isOpen && l.tracker.handsOver ? l.server : null;
        },
        adopted: (a) => this.emit('adopt', a),
        socketTarget: (name) => {
          const l = this.listenerSet.get(name);
          return l?.isOpen && sockets.includes(name) ? l.tracker : null;
        },
        adoptedSocket: (a) => this.emit('adopt-socket', a),
        log: (msg) => this.log(msg),
      });
      this.adopter = adopter;
      void predecessor.exited().then(() => adopter.close());
      return { [ADOPT_FIELD]: adopter.path, [ADOPT_LISTENERS_FIELD]: names.join(','), [ADOPT_SOCKETS_FIELD]: sockets.join(',') };
    } catch (err) {
      this.log(`cannot take connections over from the predecessor (pid ${predecessor.pid}): ${(err as Error).message}; it drains them itself`, { event: 'ready.adopt-failed' });
      return {};
    }
  }

  /** Set when a ready() failed in a new instance: it told its predecessor and cannot start any more. */
  private handoffAbandoned = false;

  /**
   * telinit switches runlevel: 0 halt, 1 single user (listeners closed,
   * control stays), 3 serving. Refused with ERR_GRACEFUL_NOT_READY before
   * ready(), ERR_GRACEFUL_UPGRADE_IN_PROGRESS during a redeploy,
   * ERR_GRACEFUL_TERMINATING once handed over or halting. In a worker only
   * telinit(0) is taken (it halts that worker, as the start pattern's catch
   * wants); 1 and 3 reject with ERR_GRACEFUL_NOT_PRIMARY.
   */
  telinit(level: Runlevel | string | number): Promise<void> {
    let target: Runlevel;
    try {
      // A worker's telinit(0) halts that worker alone, so that the README's start pattern
      // (`catch { await app.telinit(0); process.exit(1) }`) works unchanged in a worker; its
      // runlevel 1 or 3 is the primary's to set.
      const halt = this.roleInfo.role === 'worker' && (level === 0 || level === '0');
      if (this.roleInfo.role === 'worker' && !halt) throw new NotPrimaryError(`telinit ${level}: worker ${this.workerId} takes its runlevel from the primary (pid ${process.ppid}): run telinit there (its control socket)`);
      target = checkRunlevel(level);
      if (this.pool && target !== 0) throw invalidArgument('telinit', `runlevel ${target} is not available with workers: use telinit 0 to halt the service, or run it without the workers option`);
      this.lifecycle.checkTelinit(target);
    } catch (err) {
      return Promise.reject(err);
    }
    return target === 0 ? this.stop(false) : this.lifecycle.run(() => this.enter(target));
  }

  private async enter(target: 1 | 3): Promise<void> {
    if (this.lifecycle.state !== 'ready') throw new TerminatingError(`telinit ${target}: this instance is ${this.lifecycle.state}`);
    if (target === this.lifecycle.level) return;
    if (target === 3) {
      await this.listenerSet.startAll();
    } else {
      const forced = await this.drainListeners(true);
      if (forced > 0) this.log(`runlevel 1: closed ${forced} connection(s) still open at their deadline (the shutdown timeout, or upgradedTimeout for upgraded connections)`);
    }
    this.lifecycle.level = target;
    this.log(`runlevel ${target}`);
    await this.runLevelHooks(target);
    this.emit('runlevel', target);
  }

  private async runLevelHooks(level: Runlevel): Promise<void> {
    for (const hook of this.levelHooks.get(level) ?? []) await hook(level);
  }

  /** drainListeners stops accepting everywhere and drains; resolves with how many connections were forced closed. */
  private async drainListeners(release: boolean): Promise<number> {
    // With workers, the workers drain their connections: the primary holds none.
    const [forced] = await Promise.all([this.listenerSet.drain(release, this.config.idleGrace, this.shutdownTimeout), this.pool?.drain()]);
    return forced;
  }

  /** stop queues a halt (telinit 0, SIGTERM): nothing to do when this instance is on its way out already. */
  private stop(bySignal: boolean): Promise<void> {
    return this.lifecycle.run(async () => {
      const state = this.lifecycle.state;
      if (state !== 'starting' && state !== 'ready') return; // handed over, or halting already
      await this.shutdown.halt(bySignal);
    });
  }

  /**
   * redeploy replaces this instance with a new one of the same program. It
   * resolves once the new instance is ready and has outlived the take-back
   * window (this one then drains and exits); it rejects with
   * RedeployFailedError when the new instance failed, also when it died
   * within that window (this one then goes on serving),
   * UpgradeInProgressError while another runs, NotReadyError before ready(),
   * PredecessorRunningError when the instance this one replaced still runs
   * after the upgrade timeout (a redeploy waits for its exit before it spawns),
   * AlreadyHandedOverError or TerminatingError once handing over or halting.
   */
  redeploy(onEvent?: (event: RedeployEvent) => void): Promise<RedeployResult> {
    if (this.roleInfo.role === 'worker') {
      return Promise.reject(new NotPrimaryError(`redeploy(): worker ${this.workerId} cannot redeploy the service: the primary (pid ${process.ppid}) does, on SIGHUP or its control command redeploy`));
    }
    if (this.pool?.scaling) return Promise.reject(new UpgradeInProgressError('redeploy(): a scale of the workers is under way: redeploy once it is done (see status)'));
    return this.redeployer.redeploy(onEvent);
  }

  /** serving: this instance serves (again, after a failed redeploy or a take-back): the pid file and systemd say so. */
  private serving(): void {
    if (this.config.pidFile) {
      try {
        writePidFile(this.config.pidFile);
      } catch (err) {
        this.log(`could not write the pid file ${this.config.pidFile}: ${(err as Error).message}`, { event: 'pidfile.failed' });
      }
    }
    notify(this.readyNotice());
  }

  /**
   * readyNotice: what sd_notify says when this instance serves: its pid (it
   * may be the main one again after a failed redeploy or a take-back), READY=1,
   * and for a supervisor, the control socket to forward commands to.
   */
  private readyNotice(): string {
    const control = this.config.controlSocket ? `\n${CONTROL_FIELD}=${path.resolve(this.config.controlSocket)}` : '';
    return `MAINPID=${process.pid}\nREADY=1${process.env[SUPERVISOR_ENV] ? control : ''}`;
  }

  private handoffList(): OutgoingFd[] {
    return [...(this.control ? this.control.handoff() : []), ...this.registry.handoffList()];
  }

  private installSignals(): () => void {
    // A worker is told to stop by its primary (SIGTERM); SIGHUP goes to the primary.
    return installSignals(this.roleInfo.role === 'worker' ? { ...this.config, sighup: 'ignore', ignoreUser: true } : this.config, {
      redeploy: () => {
        this.redeploy().catch((err: Error) => this.log(`SIGHUP: ${err.message}`));
      },
      stop: () => {
        const first = !this.signalStop;
        this.signalStop = true;
        if (first && this.lifecycle.terminating && this.lifecycle.state !== 'halted') {
          this.log('stop: this instance is draining already; a second SIGINT ends it now', { event: 'halt.already' });
        }
        this.stop(true).catch((err: Error) => this.log(`stop: ${err.message}`));
      },
      force: () => {
        this.log('second SIGINT while stopping: exiting now', { event: 'halt.forced-exit' });
        process.exit(130);
      },
      runTask: (name, sig) => {
        this.runTask(name).then(
          (result) => {
            const text = result !== null && typeof result === 'object' ? formatCommandResult('task', result).join('; ') : String(result);
            this.log(`${sig}: task ${name}${result === undefined ? '' : `: ${text}`}`, { event: 'task', task: name });
          },
          (err: Error) => this.log(`${sig}: task ${name} failed: ${err.message}`, { event: 'task.failed', task: name }),
        );
      },
      // Only a halt a signal asked for makes the next SIGINT a forced exit (not a drain after a hand-over).
      stopping: () => this.signalStop,
    });
  }
}
