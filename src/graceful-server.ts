/**
 * GracefulServer: the application's listeners, sockets and files, kept across
 * redeploys. Model (after cloudflare/tableflip): at any time there are one or
 * two instances of the program, at most one of them not yet ready. A redeploy
 * spawns the same program, hands it every registered descriptor, and once it
 * says ready, this instance stops accepting, drains and exits. If the new
 * instance fails in any way, it is killed and this one goes on as before.
 *
 * This class is the facade and the composition root: options, hooks,
 * registrations and transitions, each delegated; it holds no state of its own.
 *   server/engine.ts     the parts of one process (registry, listeners, files, tasks, stats, start, halt)
 *   server/lifecycle.ts  the only holder of lifecycle state; the transitions and their refusals
 *   server/role.ts       where the roles differ: single-role.ts, workers/primary-role.ts, workers/worker-role.ts
 *   server/ready.ts      the ready protocol; server/redeploy.ts and shutdown.ts the redeploy and the halt
 *   control/service-control.ts  the control socket, its built-in commands and the application's
 * The engine and the control socket load with the first construction
 * (control/service-parts.ts, src/lazy.ts), not at the import; the roles with
 * workers with the first server that plays one (workers/role-parts.ts).
 */
import { EventEmitter } from 'node:events';
import type dgram from 'node:dgram';
import type net from 'node:net';
import { invalidArgument } from './errors.js';
import type { Meta } from './meta.js';
import { makeLogger } from './log.js';
import { loadOnce } from './lazy.js';
import { noteGracefulServer } from './preload-state.js';
import type { ListenOptions } from './server/listeners.js';
import type { ListenerInfo } from './server/listener-set.js';
import type { GracefulFile } from './server/file.js';
import type { Hook, StopHook } from './server/hooks.js';
import { readConfigFile, resolveOptions, type GracefulServerOptions, type Runlevel } from './server/options.js';
import type { InstanceState } from './server/lifecycle.js';
import type { RedeployEvent, RedeployResult } from './server/redeploy.js';
import type { Engine } from './server/engine.js';
import type { Role } from './server/role.js';
import type { HandOverOptions } from './server/socket-handover.js';
import type { PrimaryRole } from './workers/primary-role.js';
import type { WorkerInfo } from './workers/slots.js';
import type { ServiceControl } from './control/service-control.js';
import type { Command } from './control/commands.js';
import type { ServiceParts } from './control/service-parts.js';
import type { WorkerRoles } from './workers/role-parts.js';

export {
  DEFAULT_UPGRADE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_IDLE_GRACE, DEFAULT_TAKE_BACK_WINDOW,
  type GracefulServerOptions, type Runlevel,
} from './server/options.js';
export type { RedeployEvent, RedeployResult } from './server/redeploy.js';
export type { InstanceState } from './server/lifecycle.js';
export type { AdoptedSocket, HandOverOptions } from './server/socket-handover.js';
export type { WorkerInfo, WorkerState } from './workers/slots.js';

/**
 * parts: the engine, roles and control socket a GracefulServer is built from
 * (control/service-parts.ts), loaded by the first construction rather than
 * at the package's import, where they would be most of its cost.
 */
function parts(): ServiceParts {
  return loadOnce<ServiceParts>('control/service-parts.js');
}

/** workerRoles: the primary's and the worker's roles (workers/role-parts.ts), loaded by the first server that plays one. */
function workerRoles(): WorkerRoles {
  return loadOnce<WorkerRoles>('workers/role-parts.js');
}

export class GracefulServer extends EventEmitter {
  readonly upgradeTimeout: number;
  readonly shutdownTimeout: number;
  private readonly engine: Engine;
  private readonly role: Role;
  /** The primary's role (with workers), for scale and the fan-out of commands. */
  private primary: PrimaryRole | null = null;
  private readonly control: ServiceControl;

  constructor(options: GracefulServerOptions = {}) {
    super();
    noteGracefulServer();
    const config = resolveOptions(options);
    const { roleOf, ServiceControl, Engine, formatCommandResult, SingleRole } = parts();
    const log = makeLogger(options.log);
    this.upgradeTimeout = config.upgradeTimeout;
    this.shutdownTimeout = config.shutdownTimeout;
    const info = roleOf(config.workers);
    this.control = new ServiceControl({
      socket: options.controlSocket, role: info.role, mode: options.controlMode, allowUids: options.controlAllowUids,
      idleTimeout: options.controlIdleTimeout, limits: options.controlLimits, log: (message) => log(message),
      target: {
        status: () => this.statusOfService(),
        stats: () => this.engine.stats.snapshot(this.listenerInfo()),
        telinit: (level) => this.telinit(level),
        redeploy: (onEvent) => this.redeploy(onEvent),
        reopen: () => this.reopen(),
        tasks: () => this.taskNames(),
        runTask: (name, args) => this.runTask(name, args),
        shellCommands: config.commands ?? {},
      },
      ask: info.role === 'primary' ? (...args) => this.primary!.ask(...args) : undefined,
      scale: info.role === 'primary' ? { run: (n) => this.scale(n), count: () => this.workers } : undefined,
    });
    this.engine = new Engine({
      config, log, control: this.control.server,
      emit: (name, value) => this.emit(name, value),
      listenerCount: (event) => this.listenerCount(event),
      redeploy: () => this.redeploy(),
      formatResult: (result) => (result !== null && typeof result === 'object' ? formatCommandResult('task', result).join('; ') : String(result)),
      makeRole: (engine) => {
        if (info.role === 'single') return new SingleRole(engine);
        const { PrimaryRole, WorkerRole } = workerRoles();
        if (info.role === 'primary') return (this.primary = new PrimaryRole(engine, info));
        return new WorkerRole(engine, info, (name, ctx) => this.control.runWorkerCommand(name, ctx));
      },
    });
    this.role = this.engine.role;
    this.on('redeploy', (event: RedeployEvent) => this.engine.stats.onRedeploy(event));
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
    if (this.engine.started) throw invalidArgument('onStart', 'start hooks must be registered before the first listen(), file(), dgram(), descriptor() or ready()');
    this.engine.hooks.add('start', hook);
    return this;
  }

  /** onReady: hooks run by ready() before anything is accepted; an error aborts the start (and a redeploy in a new instance). */
  onReady(hook: Hook): this { this.engine.hooks.add('ready', hook); return this; }

  /** onStarted: hooks run once ready() finished (the predecessor is draining). */
  onStarted(hook: Hook): this { this.engine.hooks.add('started', hook); return this; }

  /** onStop: hooks run at halt after the drain, given an AbortSignal that fires at the shutdown timeout. */
  onStop(hook: StopHook): this { this.engine.hooks.add('stop', hook); return this; }

  /** onTerminate: hooks run last, right before halted resolves (and the process exits, if it does). */
  onTerminate(hook: Hook): this { this.engine.hooks.add('terminate', hook); return this; }

  /** onRunlevel adds a hook run, in registration order, each time runlevel level is entered. */
  onRunlevel(level: Runlevel, hook: (level: Runlevel) => void | Promise<void>): this { this.engine.onRunlevel(level, hook); return this; }

  /** generation: 1 for the first instance, then one more for each redeploy (a worker has its primary's). */
  get generation(): number { return this.engine.lifecycle.generation; }

  /** state: where this instance is in its lifecycle (starting, ready, handing-over, taken-back, draining, halting, halted). */
  get state(): InstanceState { return this.engine.lifecycle.state; }

  /** running: started and not yet halted. */
  get running(): boolean { return this.engine.started && this.state !== 'halted'; }

  /** started: ready() finished. */
  get started(): boolean { return this.engine.lifecycle.wasReady; }

  /** terminating: handed over, halting or halted. */
  get terminating(): boolean { return this.engine.lifecycle.terminating; }

  /** isReady: ready() ran and this instance serves (it has not handed over, and is not halting). */
  get isReady(): boolean { return this.state === 'ready'; }

  /** isPrimary: not a worker (the primary of a service with workers, or a single instance), as in node:cluster. */
  get isPrimary(): boolean { return this.role.ownsService; }

  /** workerId: this worker's slot, 0..workers-1, stable across restarts of the slot; null outside a worker. */
  get workerId(): number | null { return this.role.workerId; }

  /** workers: how many worker processes the service runs (0: one process, without workers). */
  get workers(): number { return this.role.workers; }

  /** workerInfo: each worker of the primary (id, pid, state, uptime, restarts); empty elsewhere. */
  workerInfo(): WorkerInfo[] { return this.primary?.pool.info() ?? []; }

  /** runlevel: 0 halted, 1 single user, 3 serving. */
  get runlevel(): Runlevel { return this.engine.lifecycle.level; }

  /** halted resolves once this instance reached runlevel 0 and closed everything. */
  get halted(): Promise<void> { return this.engine.halted; }

  /** predecessorPid: the instance this one replaced, if any. */
  get predecessorPid(): number | null { return this.engine.predecessor?.pid ?? null; }

  /** redeployInProgress: the pending redeploy, if any. */
  get redeployInProgress(): { pid?: number; since: number } | null {
    const r = this.engine.lifecycle.redeploying;
    return r && { pid: r.pid, since: r.since };
  }

  /** task registers a named task: SIGUSR1/SIGUSR2 run it when the options name it, and the control command `task <name> [args]` runs it with arguments. `reopen` is built in. */
  task(name: string, run: (args: string[]) => unknown): this { this.engine.tasks.add(name, run); return this; }

  /** runTask runs a task by name (with workers, an application's on every worker); rejects with ERR_GRACEFUL_UNKNOWN_TASK when there is none. */
  runTask(name: string, args: string[] = []): Promise<unknown> { return this.engine.runTask(name, args); }

  /** taskNames: the registered tasks. */
  taskNames(): string[] { return this.engine.tasks.names(); }

  /**
   * command registers a control command of the application: `usage` is its
   * line in `help`, `help` its long text, `run(ctx)` its handler (it may
   * stream with ctx.write until ctx.signal says the client left). It may be
   * called before anything else; a name taken (by a built-in or an earlier
   * call) throws ERR_GRACEFUL_DUPLICATE_NAME here.
   */
  command(name: string, command: Command, options: { where?: 'workers' | 'primary' } = {}): this { this.control.command(name, command, options); return this; }

  /** reopen re-opens every registered file by its path (logrotate); resolves with their names. */
  reopen(): Promise<string[]> { return this.engine.reopen(); }

  /** rotateTicketKeys rotates the session-ticket keys of every TLS listener now (the task rotate-tickets); returns their names. */
  rotateTicketKeys(): string[] { return this.engine.rotateTicketKeys(); }

  /** status: the state of this instance, as the control command status shows it. */
  status(): Record<string, unknown> { return this.engine.status(); }

  /** statusOfService: status, and with workers each worker's open connections, requests served and RSS (null for one that did not answer within a second). */
  statusOfService(): Promise<Record<string, unknown>> { return this.role.statusOfService(this.status()); }

  /** connectionCount: connections open on every listener. */
  connectionCount(): number { return this.engine.listeners.connectionCount(); }

  /** listenerInfo: name, address and state of every listener, for status. */
  listenerInfo(): ListenerInfo[] { return this.role.listenerInfo(); }

  /**
   * handOver passes socket (an upgraded connection, or one of a net.Server of
   * a listener with handOverSockets: true) to the new instance with state
   * and head (each at most 16 KiB), which gets them with its 'adopt-socket'
   * event; call it from the listener's onDrain, during a redeploy. Resolves
   * once the new instance holds it; rejects with a coded error and the
   * socket still here (see the README's Connection hand-over).
   */
  async handOver(socket: net.Socket, state: unknown, options?: HandOverOptions): Promise<void> {
    if (!parts().isSocket(socket)) throw invalidArgument('handOver', 'pass the net.Socket of a connection (for a ws WebSocket use handOverWebSocket)');
    const owner = this.engine.listeners.owner(socket);
    if (!owner) {
      throw invalidArgument('handOver', 'the socket is no open connection of a listener of this instance (closed already, or never accepted by a listener registered with listen())');
    }
    return owner.tracker.handOverSocket(socket, state, options);
  }

  /** handOverWebSocket hands a `ws` WebSocket over at a frame boundary (ERR_GRACEFUL_MID_FRAME inside one), else as handOver(). */
  async handOverWebSocket(ws: unknown, state: unknown): Promise<void> {
    const { socket, head } = parts().webSocketBoundary(ws);
    return this.handOver(socket, state, { head });
  }

  /**
   * listen registers server (net, http, https or http2) under name: on the
   * socket inherited under that name if bound where `bind` asks, else on one
   * systemd passed with that name, else bound fresh. In runlevel 1 it only
   * registers; a new instance accepts from ready(). Resolves with the server.
   */
  listen<S extends net.Server>(name: string, server: S, bind: ListenOptions = {}): Promise<S> { return this.engine.listen(name, server, bind); }

  /** heldAddress: where a listener or UDP socket of the primary is bound ({ port } or { path }), since nothing listens or reads on it here. */
  heldAddress(name: string): Meta | null { return this.role.heldAddress(name); }

  /** dgram registers a UDP socket, bound to the inherited socket, else per bind; in a new instance it is bound in ready() (this resolves at once). */
  dgram(name: string, socket: dgram.Socket, bind: { port?: number; address?: string } = {}): Promise<dgram.Socket> { return this.engine.dgram(name, socket, bind); }

  /** file registers a file under name and returns a writable stream on it: the inherited open file description, or a fresh open of path. */
  file(name: string, path: string, options: { flags?: string; mode?: number } = {}): Promise<GracefulFile> { return this.engine.file(name, path, options); }

  /** descriptor registers any other descriptor: the inherited one, or what open() returns (the server keeps it open). */
  descriptor(name: string, open: () => number | Promise<number>): Promise<number> { return this.engine.descriptor(name, open); }

  /**
   * ready says the application is ready to serve (server/ready.ts): all that
   * can fail happens before a predecessor is told. Call it once, after
   * registering. It rejects with ERR_GRACEFUL_HOOK_FAILED or the error that
   * stopped the start; a new instance then gave up its hand-off (its
   * predecessor goes on serving) and should exit.
   */
  ready(): Promise<void> {
    try {
      this.engine.lifecycle.checkReady();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.engine.lifecycle.run(() => parts().becomeReady(this.engine));
  }

  /**
   * telinit switches runlevel: 0 halt, 1 single user (listeners closed,
   * control stays), 3 serving. Refused with ERR_GRACEFUL_NOT_READY before
   * ready(), ERR_GRACEFUL_UPGRADE_IN_PROGRESS during a redeploy,
   * ERR_GRACEFUL_TERMINATING once handed over or halting. In a worker only
   * telinit(0) is taken (it halts that worker, as the start pattern's catch
   * wants); 1 and 3 reject with ERR_GRACEFUL_NOT_PRIMARY.
   */
  telinit(level: Runlevel | string | number): Promise<void> { return this.engine.telinit(level); }

  /**
   * scale runs n workers from now on (the primary only): new workers start,
   * all of them ready before any accepts, then the old ones drain, so no
   * request fails; if a new one fails, the old ones serve on and this
   * rejects with ERR_GRACEFUL_WORKER_FAILED. The number carries over to the
   * next generations until a new version configures another one.
   */
  scale(n: number): Promise<void> {
    const refused = this.role.refuse('scale');
    return refused ? Promise.reject(refused) : this.primary!.scale(n);
  }

  /**
   * redeploy replaces this instance with a new one of the same program. It
   * resolves once the new instance is ready and has outlived the take-back
   * window; it rejects with RedeployFailedError when the new instance failed
   * (this one then goes on serving), UpgradeInProgressError while another
   * runs or a scale does, NotReadyError before ready(), PredecessorRunningError
   * when the instance this one replaced could still take back after the
   * upgrade timeout (it is asked to commit first: see docs/architecture.md),
   * AlreadyHandedOverError or TerminatingError once handing over or halting.
   */
  redeploy(onEvent?: (event: RedeployEvent) => void): Promise<RedeployResult> {
    const refused = this.role.refuse('redeploy');
    return refused ? Promise.reject(refused) : this.engine.redeployer.redeploy(onEvent);
  }
}
