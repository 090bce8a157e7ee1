/**
 * GracefulServer: the application's listeners, sockets and files, kept across
 * redeploys. Model (after cloudflare/tableflip): at any time there are one or
 * two instances of the program, at most one of them not yet ready. A redeploy
 * spawns the same program, hands it every registered descriptor, and once it
 * says ready, this instance stops accepting, drains and exits. If the new
 * instance fails in any way, it is killed and this one goes on as before.
 */
import { EventEmitter } from 'node:events';
import type dgram from 'node:dgram';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { debuglog } from 'node:util';
import {
  AlreadyReadyError, ConfigError, DuplicateNameError, HookFailedError, UnknownTaskError, InvalidRunlevelError, NotReadyError, TerminatingError,
  UpgradeInProgressError, invalidArgument, type RedeployFailedError,
} from '../errors.js';
import type { Meta } from '../meta.js';
import { fdOf } from '../fds.js';
import type { OutgoingFd } from '../handoff/connection.js';
import { closeAll } from '../handoff/connection.js';
import { writePidFile, removePidFile } from '../pidfile.js';
import { notify, monotonicUsec, takeListenFds, type ActivatedFd } from '../systemd.js';
import { ManagedListener, type ListenOptions } from './listeners.js';
import { GracefulFile } from './file.js';
import { Hooks, type Hook, type StopHook } from './hooks.js';
import { installSignals, type SighupAction } from './signals.js';
import { loadConfig } from '../config.js';
import { ControlServer } from '../control/server.js';
import { addBuiltins, type ControlTarget } from '../control/builtins.js';
import type { Command } from '../control/commands.js';
import { makeLogger, type LogFields, type LogSink } from '../log.js';
import { Predecessor, type InheritedFd } from './predecessor.js';
import { startSuccessor, type SpawnFunction } from './successor.js';
import { SUPERVISOR_ENV, CONTROL_FIELD, EXIT_FIELD } from '../supervisor/protocol.js';

const debug = debuglog('graceful');

export type Runlevel = 0 | 1 | 3;
export const DEFAULT_UPGRADE_TIMEOUT = 60_000;
export const DEFAULT_SHUTDOWN_TIMEOUT = 10_000;
/** How long a drained keep-alive connection may sit idle before it is closed. */
export const DEFAULT_IDLE_GRACE = 1_000;
/** How long a drained instance watches its successor, ready to serve again if it dies. */
export const DEFAULT_TAKE_BACK_WINDOW = 1_000;

export interface GracefulServerOptions {
  /** Path of the control socket (none by default). */
  controlSocket?: string;
  /** File mode of the control socket (default 0o600). */
  controlMode?: number;
  /** uids allowed on the control socket besides this process's and root. */
  controlAllowUids?: number[];
  /** ms a silent control connection stays open (default 300 s). */
  controlIdleTimeout?: number;
  /** Shell commands behind the control commands update and rebuild (off unless set). */
  commands?: { update?: string; rebuild?: string };
  /** Pid file, written atomically when ready and removed at halt. */
  pidFile?: string;
  /** ms a new instance has to become ready (default 60 s). */
  upgradeTimeout?: number;
  /** ms to drain at halt before the rest is closed (default 10 s; GRACEFUL_SHUTDOWN_TIMEOUT in seconds overrides). */
  shutdownTimeout?: number;
  /** ms a drained keep-alive connection may stay idle before it is closed (default 1 s). */
  idleGrace?: number;
  /**
   * ms after a new instance is ready during which this one, drained, keeps a
   * copy of the sockets and serves again if the new one dies (default 1 s).
   */
  takeBackWindow?: number;
  /** Runlevel to start in without a predecessor: 1 or 3 (default 3). */
  runlevel?: 1 | 3;
  /** Handle signals (default true): SIGTERM and SIGINT halt (a second SIGINT forces), SIGHUP per `sighup`. */
  signals?: boolean;
  /** What SIGHUP does: 'redeploy' (default), 'stop' or 'ignore'. */
  sighup?: SighupAction;
  /** Tasks (see task()) that SIGUSR1 and SIGUSR2 run, e.g. 'reopen'. */
  sigusr1?: string;
  sigusr2?: string;
  /**
   * Call process.exit once halted. Default: yes after handing over to a new
   * instance (no old code keeps running) and after a halt by SIGTERM/SIGINT
   * (what those signals did before the handler took them); no after telinit 0.
   */
  exitProcess?: boolean;
  /** The process seam, for tests that need a new instance to crash or hang. */
  spawn?: SpawnFunction;
  /** Where the library's own log lines go (default: stderr; JSON lines when GRACEFUL_JSON_LOG=1). */
  log?: LogSink;
}

/** RedeployEvent: progress of a redeploy, for the control socket and the CLI. */
export type RedeployEvent =
  | { type: 'spawned'; pid: number; ms: number }
  | { type: 'ready'; pid: number; ms: number }
  | { type: 'draining'; pid: number; connections: number; ms: number }
  | { type: 'done'; pid: number; forced: number; ms: number }
  | { type: 'failed'; error: RedeployFailedError; ms: number };

export interface RedeployResult {
  /** pid of the new instance, now serving. */
  pid: number;
  /** ms from the spawn to its readiness. */
  readyMs: number;
}

interface Registered {
  name: string;
  kind: 'listener' | 'dgram' | 'file' | 'fd';
  handoff(): OutgoingFd | null;
}

function envTimeout(name: string, fallbackMs: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallbackMs;
  const secs = Number(v);
  if (!(secs > 0)) throw invalidArgument('GracefulServer', `${name} must be a positive number of seconds, got ${JSON.stringify(v)}`);
  return secs * 1000;
}

/** The options a configuration file may set. */
const CONFIG_KEYS = new Set(['controlSocket', 'controlMode', 'controlAllowUids', 'controlIdleTimeout', 'commands', 'pidFile',
  'upgradeTimeout', 'shutdownTimeout', 'idleGrace', 'runlevel', 'signals', 'sighup', 'sigusr1', 'sigusr2', 'exitProcess']);

function checkRunlevel(level: unknown): Runlevel {
  const n = typeof level === 'string' && /^[0-9]$/.test(level) ? Number(level) : level;
  if (n === 0 || n === 1 || n === 3) return n;
  throw new InvalidRunlevelError(`runlevel must be 0 (halt), 1 (single user: listeners closed) or 3 (serving), got ${JSON.stringify(level)}`);
}

export class GracefulServer extends EventEmitter {
  readonly upgradeTimeout: number;
  readonly shutdownTimeout: number;
  private readonly options: GracefulServerOptions;
  private readonly managed = new Map<string, ManagedListener>();
  private readonly registry = new Map<string, Registered>();
  private readonly levelHooks = new Map<Runlevel, ((level: Runlevel) => void | Promise<void>)[]>();
  private initPromise: Promise<void> | null = null;
  private pendingStarts: (() => Promise<void>)[] = [];
  private predecessor: Predecessor | null = null;
  private inherited = new Map<string, InheritedFd>();
  /** Control connections handed over by the predecessor. */
  private inheritedConns: InheritedFd[] = [];
  private activated: ActivatedFd[] = [];
  private level: Runlevel = 3;
  private targetLevel: Runlevel = 3;
  private transition: Promise<void> = Promise.resolve();
  private readyState: 'starting' | 'ready' | 'halting' | 'halted' = 'starting';
  private redeploying: { pid?: number; since: number; abort: AbortController; done: Promise<unknown> } | null = null;
  private handedOverTo: number | null = null;
  private haltPromise: Promise<void>;
  /** Keeps the process alive from start to halt, even with every listener closed (runlevel 1). */
  private keepAlive: NodeJS.Timeout | null = null;
  private resolveHalt!: () => void;
  private wasReady = false;
  /** Set when a dead successor made this instance serve again in the middle of its halt. */
  private takenBack = false;
  private handedOverAt: number | null = null;
  private onTakeBack: (() => void) | null = null;
  /** 1 for the first instance, then one more for each redeploy. */
  generation = 1;

  constructor(options: GracefulServerOptions = {}) {
    super();
    this.options = options;
    this.log = makeLogger(options.log);
    this.upgradeTimeout = envTimeout('GRACEFUL_UPGRADE_TIMEOUT', options.upgradeTimeout ?? DEFAULT_UPGRADE_TIMEOUT);
    this.shutdownTimeout = envTimeout('GRACEFUL_SHUTDOWN_TIMEOUT', options.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT);
    for (const [k, v] of [['upgradeTimeout', this.upgradeTimeout], ['shutdownTimeout', this.shutdownTimeout]] as const) {
      if (!(v > 0) || !Number.isFinite(v)) throw invalidArgument('GracefulServer', `${k} must be a positive number of ms, got ${v}`);
    }
    this.targetLevel = checkRunlevel(process.env.GRACEFUL_RUNLEVEL || (options.runlevel ?? 3));
    if (this.targetLevel === 0) throw invalidArgument('GracefulServer', 'the default runlevel must be 1 or 3');
    this.haltPromise = new Promise((resolve) => {
      this.resolveHalt = resolve;
    });
    this.tasks.set('reopen', async () => `reopened ${(await this.reopen()).join(', ') || 'nothing'}`);
  }

  /**
   * fromConfig builds a server from a JSON configuration file whose values
   * may hold {$NAME} placeholders from the environment; code options win.
   * Unknown keys are an error (ERR_GRACEFUL_CONFIG), so a typo never goes unnoticed.
   */
  static fromConfig(file: string, options: GracefulServerOptions = {}): GracefulServer {
    const config = loadConfig(file);
    for (const key of Object.keys(config)) {
      if (!CONFIG_KEYS.has(key)) throw new ConfigError(`${file}: unknown option "${key}"; known: ${[...CONFIG_KEYS].join(', ')}`);
    }
    return new GracefulServer({ ...(config as GracefulServerOptions), ...options });
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

  /** running: started and not yet halted. */
  get running(): boolean {
    return this.initPromise !== null && this.readyState !== 'halted';
  }

  /** started: ready() finished. */
  get started(): boolean {
    return this.readyState === 'ready' || ((this.readyState === 'halting' || this.readyState === 'halted') && this.wasReady);
  }

  /** terminating: halting or halted. */
  get terminating(): boolean {
    return this.readyState === 'halting' || this.readyState === 'halted';
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
    return run(args);
  }

  /** taskNames: the registered tasks. */
  taskNames(): string[] {
    return [...this.tasks.keys()].sort();
  }

  /** runlevel: 0 halted, 1 single user, 3 serving. */
  get runlevel(): Runlevel {
    return this.level;
  }

  /** isReady: ready() ran and this instance is not halting. */
  get isReady(): boolean {
    return this.readyState === 'ready';
  }

  /** halted resolves once this instance reached runlevel 0 and closed everything. */
  get halted(): Promise<void> {
    return this.haltPromise;
  }

  /** predecessorPid: the instance this one replaced, if any. */
  get predecessorPid(): number | null {
    return this.predecessor?.pid ?? null;
  }

  private readonly log: (msg: string, fields?: LogFields) => void;
  private control: ControlServer | null = null;
  private readonly files = new Map<string, GracefulFile>();
  private readonly startedAt = Date.now();
  private readonly hooks = new Hooks();
  private readonly tasks = new Map<string, (args: string[]) => unknown>();
  private removeSignals: (() => void) | null = null;

  /** init takes what a predecessor or systemd passed, once, before anything is bound. */
  private init(): Promise<void> {
    this.initPromise ??= (async () => {
      this.predecessor = await Predecessor.connect();
      if (this.predecessor) {
        for (const f of this.predecessor.fds) {
          const name = String(f.meta.name);
          if (f.meta.kind === 'control-conn') this.inheritedConns.push(f);
          else if (this.inherited.has(name)) closeAll([f.fd]); // a name twice: keep the first
          else this.inherited.set(name, f);
        }
        this.targetLevel = checkRunlevel(this.predecessor.state.runlevel ?? 3);
        this.generation = Number(this.predecessor.state.generation ?? 1) + 1;
        debug('took %d descriptor(s) from pid %d', this.inherited.size, this.predecessor.pid);
      } else {
        this.activated = takeListenFds();
      }
      this.level = this.targetLevel === 3 ? 3 : 1;
      this.keepAlive = setInterval(() => undefined, 2 ** 31 - 1);
      if (this.options.controlSocket) await this.openControl(this.options.controlSocket);
      await this.hooks.run('start');
      if (this.options.signals !== false) this.removeSignals = this.installSignals();
    })();
    return this.initPromise;
  }

  private async openControl(path: string): Promise<void> {
    const control = new ControlServer(path, {
      mode: this.options.controlMode,
      allowUids: this.options.controlAllowUids,
      idleTimeout: this.options.controlIdleTimeout,
    });
    addBuiltins(control.commands, this.controlTarget());
    this.control = control;
    const inherited = this.claim('control', 'control');
    for (const f of this.inheritedConns.splice(0)) {
      control.adopt(f.fd, typeof f.meta.pending === 'string' ? f.meta.pending : '');
    }
    if (inherited !== undefined && this.predecessor) {
      this.pendingStarts.push(async () => {
        await control.listen(inherited);
        control.start();
      });
    } else {
      await control.listen(inherited);
    }
  }

  private controlTarget(): ControlTarget {
    return {
      status: () => this.status(),
      telinit: (level) => this.telinit(level),
      redeploy: (onEvent) => this.redeploy(onEvent),
      reopen: () => this.reopen(),
      tasks: () => this.taskNames(),
      runTask: (name, args) => this.runTask(name, args),
      shellCommands: this.options.commands ?? {},
    };
  }

  /**
   * command registers a control command of the application: `usage` is its
   * line in `help`, `help` its long text, `run(ctx)` its handler (it may
   * stream with ctx.write until ctx.signal says the client left).
   */
  command(name: string, command: Command): this {
    if (!this.options.controlSocket) throw invalidArgument('command', 'there is no control socket: set the controlSocket option');
    const add = () => this.control!.commands.add(name, command);
    if (this.control) add();
    else void this.init().then(add);
    return this;
  }

  /** reopen re-opens every registered file by its path (logrotate); resolves with their names. */
  async reopen(): Promise<string[]> {
    for (const f of this.files.values()) await f.reopen();
    return [...this.files.keys()];
  }

  /** status: the state of this instance, as the control command status shows it. */
  status(): Record<string, unknown> {
    const mem = process.memoryUsage();
    return {
      pid: process.pid,
      ppid: process.ppid,
      generation: this.generation,
      runlevel: this.level,
      ready: this.isReady,
      uptime: Math.round((Date.now() - this.startedAt) / 1000),
      listeners: this.listenerInfo().map((l) => `${l.name} ${l.open ? 'open' : 'closed'} ${l.address.family === 'unix' ? l.address.path : `${l.address.host}:${l.address.port}`} (${l.connections} connection(s))`),
      connections: this.connectionCount(),
      controlConnections: this.control?.connectionCount ?? 0,
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      node: process.version,
      redeploy: this.redeploying ? `pid ${this.redeploying.pid ?? '(starting)'} for ${Date.now() - this.redeploying.since} ms` : 'none',
    };
  }

  private claim(name: string, kind: string): number | undefined {
    const got = this.inherited.get(name);
    if (!got) return undefined;
    this.inherited.delete(name);
    if (got.meta.kind !== kind) {
      closeAll([got.fd]);
      this.log(`inherited "${name}" is a ${String(got.meta.kind)}, not a ${kind}: closed it, opening afresh`);
      return undefined;
    }
    return got.fd;
  }

  private register(name: string, kind: Registered['kind'], handoff: Registered['handoff']): void {
    if (typeof name !== 'string' || name === '') throw invalidArgument('GracefulServer', 'a name must be a non-empty string');
    if (this.registry.has(name)) throw new DuplicateNameError(`"${name}" is already registered: give each listener, socket and file its own name`);
    this.registry.set(name, { name, kind, handoff });
  }

  /**
   * listen registers server (net, http, https or http2) under name. It
   * listens on the socket inherited under that name, else on one systemd
   * passed with that name, else binds fresh per bind. In runlevel 1 it only
   * registers; telinit 3 binds. Resolves with the server.
   */
  async listen<S extends net.Server>(name: string, server: S, bind: ListenOptions = {}): Promise<S> {
    if (this.readyState === 'halting' || this.readyState === 'halted') throw new TerminatingError(`listen("${name}"): this instance is halting`);
    await this.init();
    const listener = new ManagedListener(name, server, bind);
    this.register(name, 'listener', () => (listener.isOpen ? { fd: listener.fd(), meta: { name, kind: 'listener', ...listener.address() } } : null));
    this.managed.set(name, listener);
    let fd = this.claim(name, 'listener');
    if (fd !== undefined && !listener.matches(this.predecessor!.fds.find((f) => f.fd === fd)!.meta)) {
      this.log(`inherited listener "${name}" is bound elsewhere than asked: closing it, binding afresh`);
      closeAll([fd]);
      fd = undefined;
    }
    if (fd === undefined) {
      const i = this.activated.findIndex((a) => a.name === name);
      if (i >= 0) fd = this.activated.splice(i, 1)[0]!.fd;
    }
    // A listener closed in runlevel 1 comes back on the port it had.
    const lastPort = this.predecessor?.state[`port:${name}`];
    if (fd === undefined && typeof lastPort === 'number') listener.rememberPort(lastPort);
    if (this.level !== 3) {
      if (fd !== undefined) closeAll([fd]); // runlevel 1: the port must be free
    } else if (this.predecessor && this.readyState === 'starting') {
      // A new instance accepts only from ready(): if it fails before, it never took a connection.
      this.pendingStarts.push(() => listener.start(fd));
    } else {
      await listener.start(fd);
    }
    return server;
  }

  /** dgram registers a UDP socket: bound to the inherited socket, else per bind. It stays bound in runlevel 1. */
  async dgram(name: string, socket: dgram.Socket, bind: { port?: number; address?: string } = {}): Promise<dgram.Socket> {
    await this.init();
    this.register(name, 'dgram', () => ({ fd: fdOf(socket), meta: { name, kind: 'dgram', port: socket.address().port } }));
    const fd = this.claim(name, 'dgram');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      const done = () => {
        socket.off('error', reject);
        resolve();
      };
      if (fd !== undefined) socket.bind({ fd }, done);
      else socket.bind({ port: bind.port ?? 0, address: bind.address }, done);
    });
    return socket;
  }

  /**
   * file registers a file under name and returns a writable stream on it: the
   * inherited open file (one open file description across every redeploy:
   * appends stay in order, nothing lost or doubled) or a fresh open of path.
   */
  async file(name: string, path: string, options: { flags?: string; mode?: number } = {}): Promise<GracefulFile> {
    await this.init();
    let fd = this.claim(name, 'file');
    fd ??= fs.openSync(path, options.flags ?? 'a', options.mode ?? 0o644);
    const file = new GracefulFile(fd, path, options.flags ?? 'a', options.mode ?? 0o644);
    this.register(name, 'file', () => (file.destroyed ? null : { fd: file.fd, meta: { name, kind: 'file', path } }));
    this.files.set(name, file);
    return file;
  }

  /** descriptor registers any other descriptor: the inherited one, or what open() returns. */
  async descriptor(name: string, open: () => number | Promise<number>): Promise<number> {
    await this.init();
    const fd = this.claim(name, 'fd') ?? fdOf(await open());
    this.register(name, 'fd', () => ({ fd, meta: { name, kind: 'fd' } }));
    return fd;
  }

  /** onRunlevel adds a hook run, in registration order, each time runlevel level is entered. */
  onRunlevel(level: Runlevel, hook: (level: Runlevel) => void | Promise<void>): this {
    const l = checkRunlevel(level);
    const hooks = this.levelHooks.get(l) ?? [];
    hooks.push(hook);
    this.levelHooks.set(l, hooks);
    return this;
  }

  /**
   * ready says the application is ready to serve: descriptors nobody claimed
   * are closed, the predecessor (if any) is told and starts draining, the pid
   * file is written and systemd told. Call it once, after registering.
   */
  async ready(): Promise<void> {
    await this.init();
    if (this.readyState !== 'starting') throw new AlreadyReadyError('ready() was already called on this instance');
    const leftovers = [...this.inherited.values(), ...this.inheritedConns.splice(0), ...this.activated];
    if (leftovers.length > 0) {
      this.log(`closing ${leftovers.length} inherited descriptor(s) nobody registered: ${[...this.inherited.keys(), ...this.activated.map((a) => a.name)].join(', ')}`);
      closeAll(leftovers.map((l) => l.fd));
      this.inherited.clear();
      this.activated = [];
    }
    try {
      await this.hooks.run('ready');
    } catch (err) {
      this.predecessor?.abandon();
      throw new HookFailedError(`a ready hook failed, so this instance does not start: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
    for (const start of this.pendingStarts.splice(0)) await start();
    // Accepting from here on: status says ready, also while the predecessor is told.
    this.readyState = 'ready';
    if (this.predecessor) {
      // The service manager (or a supervisor) learns the new main pid before
      // the predecessor may exit, so it never sees the service without one.
      notify(`MAINPID=${process.pid}`);
      try {
        await this.predecessor.ready();
      } catch (err) {
        this.readyState = 'starting';
        throw err;
      }
    }
    this.wasReady = true;
    if (this.options.pidFile) writePidFile(this.options.pidFile);
    notify(this.readyNotice());
    await this.runHooks(this.level);
    await this.hooks.run('started');
    this.emit('ready');
  }

  /** telinit switches runlevel: 0 halt, 1 single user (listeners closed, control stays), 3 serving. */
  telinit(level: Runlevel | string | number): Promise<void> {
    let target: Runlevel;
    try {
      target = checkRunlevel(level);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.readyState === 'halting' || this.readyState === 'halted') {
      return Promise.reject(new TerminatingError(`telinit ${target}: this instance is halting`));
    }
    const run = this.transition.then(() => this.enter(target));
    this.transition = run.catch(() => undefined);
    return run;
  }

  private async enter(target: Runlevel, handedOver = false, bySignal = false): Promise<void> {
    if (target === this.level && target !== 0) return;
    if (target === 3) {
      for (const l of this.managed.values()) await l.start();
    } else if (target === 1) {
      const forced = await this.drainListeners(true);
      if (forced > 0) this.log(`runlevel 1: closed ${forced} connection(s) still open at the shutdown timeout`);
    } else {
      await this.halt(handedOver, bySignal);
      return;
    }
    this.level = target;
    this.log(`runlevel ${target}`);
    await this.runHooks(target);
    this.emit('runlevel', target);
  }

  private async runHooks(level: Runlevel): Promise<void> {
    for (const hook of this.levelHooks.get(level) ?? []) await hook(level);
  }

  /** drainListeners stops accepting everywhere and drains; resolves with how many connections were forced closed. */
  private async drainListeners(release: boolean): Promise<number> {
    const deadline = Date.now() + this.shutdownTimeout;
    for (const l of this.managed.values()) l.stop(release);
    const idle = this.options.idleGrace ?? DEFAULT_IDLE_GRACE;
    const forced = await Promise.all([...this.managed.values()].map((l) => l.tracker.drain(idle, deadline)));
    for (const l of this.managed.values()) l.tracker.reset();
    return forced.reduce((a, b) => a + b, 0);
  }

  private async halt(handedOver: boolean, bySignal: boolean): Promise<void> {
    const pending = this.redeploying;
    if (pending && !handedOver) {
      // Stopping wins over a redeploy under way: the new instance is killed (as tableflip does).
      pending.abort.abort();
      await pending.done;
    }
    this.readyState = 'halting';
    const deadline = Date.now() + this.shutdownTimeout;
    if (!handedOver) notify('STOPPING=1');
    const open = this.connectionCount();
    this.emit('draining', open);
    const forced = await this.drainListeners(!handedOver);
    if (forced > 0) this.log(`halt: closed ${forced} connection(s) still open at the shutdown timeout`, { event: 'halt.forced', forced });
    if (handedOver && !this.takenBack) {
      // Watch the new instance a little longer: if it dies now, we serve again.
      const wait = (this.handedOverAt ?? 0) + (this.options.takeBackWindow ?? DEFAULT_TAKE_BACK_WINDOW) - Date.now();
      if (wait > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait);
          this.onTakeBack = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.onTakeBack = null;
      }
    }
    if (this.takenBack) {
      this.takenBack = false;
      return; // the successor died: this instance serves again (takeBack)
    }
    for (const l of this.managed.values()) l.dropSpare();
    const stopped = await this.hooks.runStop(deadline);
    if (stopped === 'overran') this.log(`halt: stop hooks still running at the shutdown timeout (${this.shutdownTimeout} ms): going on without them`, { event: 'halt.stop-overran' });
    else if (stopped instanceof Error) this.log(`halt: a stop hook failed: ${stopped.message}`, { event: 'halt.stop-failed' });
    this.level = 0;
    await this.runHooks(0).catch((err: Error) => this.log(`halt: a runlevel 0 hook failed: ${err.message}`));
    this.control?.close(!handedOver);
    this.removeSignals?.();
    if (this.keepAlive) clearInterval(this.keepAlive);
    if (this.options.pidFile) removePidFile(this.options.pidFile);
    await this.hooks.run('terminate').catch((err: Error) => this.log(`halt: a terminate hook failed: ${err.message}`));
    this.readyState = 'halted';
    this.emit('runlevel', 0);
    this.emit('halt', { forced, handedOverTo: this.handedOverTo });
    this.resolveHalt();
    if (this.options.exitProcess ?? (handedOver || bySignal)) setImmediate(() => process.exit(0));
  }

  /** connectionCount: connections open on every listener. */
  connectionCount(): number {
    let n = 0;
    for (const l of this.managed.values()) n += l.tracker.count;
    return n;
  }

  /** listenerInfo: name, address and state of every listener, for status. */
  listenerInfo(): { name: string; open: boolean; connections: number; address: Meta }[] {
    return [...this.managed.values()].map((l) => ({ name: l.name, open: l.isOpen, connections: l.tracker.count, address: l.address() }));
  }

  /** redeployInProgress: the pending redeploy, if any. */
  get redeployInProgress(): { pid?: number; since: number } | null {
    return this.redeploying && { pid: this.redeploying.pid, since: this.redeploying.since };
  }

  /**
   * redeploy replaces this instance with a new one of the same program. It
   * resolves once the new instance is ready (this one then drains and exits);
   * it rejects with RedeployFailedError when the new instance failed (this
   * one goes on serving), UpgradeInProgressError while another runs,
   * NotReadyError before ready(), TerminatingError once halting.
   */
  async redeploy(onEvent?: (event: RedeployEvent) => void): Promise<RedeployResult> {
    if (this.redeploying) {
      const r = this.redeploying;
      throw new UpgradeInProgressError(
        `redeploy() is refused while another redeploy is under way (new instance pid ${r.pid ?? '(starting)'}, started ${Date.now() - r.since} ms ago): wait for it to finish`,
      );
    }
    if (this.handedOverTo !== null) throw new TerminatingError(`redeploy(): this instance already handed over to pid ${this.handedOverTo}; ask that one`);
    if (this.readyState === 'halting' || this.readyState === 'halted') throw new TerminatingError('redeploy(): this instance is halting');
    if (this.readyState !== 'ready') throw new NotReadyError('redeploy(): this instance is not ready yet; call ready() first');
    const started = Date.now();
    const abort = new AbortController();
    let settle!: () => void;
    const state: { pid?: number; since: number; abort: AbortController; done: Promise<unknown> } = {
      since: started, abort, done: new Promise<void>((r) => (settle = r)),
    };
    this.redeploying = state;
    const emit = (event: RedeployEvent) => {
      const { type, ms } = event;
      const fields: LogFields = { event: `redeploy.${type}`, ms };
      if ('pid' in event) fields.newPid = event.pid;
      if (event.type === 'draining') fields.connections = event.connections;
      if (event.type === 'done') fields.forced = event.forced;
      if (event.type === 'failed') fields.code = event.error.code;
      this.log(event.type === 'failed' ? `redeploy failed: ${event.error.message}` : `redeploy: ${type}${'pid' in event ? ` (pid ${event.pid})` : ''} after ${ms} ms`, fields);
      this.emit('redeploy', event);
      onEvent?.(event);
    };
    notify(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`);
    let spawnedAt = started;
    try {
      const successor = await startSuccessor({
        descriptors: () => this.handoffList(),
        state: { runlevel: this.level, generation: this.generation, ...this.closedPorts() },
        timeoutMs: this.upgradeTimeout,
        spawn: this.options.spawn,
        signal: abort.signal,
        onSpawned: (pid) => {
          state.pid = pid;
          spawnedAt = Date.now();
          emit({ type: 'spawned', pid, ms: spawnedAt - started });
        },
      });
      const readyMs = Date.now() - spawnedAt;
      this.handedOverTo = successor.pid;
      this.handedOverAt = Date.now();
      this.control?.handoffDone();
      // Until this instance is gone, it can serve again if the new one dies.
      for (const l of this.managed.values()) l.keepSpare();
      successor.child.once('exit', (code, signal) => {
        // A supervisor cannot learn how a grandchild ended: tell it.
        if (process.env[SUPERVISOR_ENV]) notify(`${EXIT_FIELD}=${successor.pid} ${signal ?? code}`);
        // Exit code 0 is a halt asked for (SIGTERM, telinit 0), not a crash: the service is meant to stop.
        if (signal || code !== 0) void this.takeBack(successor.pid, signal ? `was killed by ${signal}` : `exited with code ${code}`);
      });
      emit({ type: 'ready', pid: successor.pid, ms: Date.now() - started });
      void this.handOver(successor.pid, started, emit);
      return { pid: successor.pid, readyMs };
    } catch (err) {
      const e = err as RedeployFailedError;
      this.control?.handoffFailed();
      emit({ type: 'failed', error: e, ms: Date.now() - started });
      notify(this.readyNotice());
      throw err;
    } finally {
      this.redeploying = null;
      settle();
    }
  }

  private async handOver(pid: number, started: number, emit: (e: RedeployEvent) => void): Promise<void> {
    emit({ type: 'draining', pid, connections: this.connectionCount(), ms: Date.now() - started });
    let forced = 0;
    const onHalt = (h: { forced: number }) => {
      forced = h.forced;
    };
    this.once('halt', onHalt);
    const run = this.transition.then(() => this.enter(0, true));
    this.transition = run.catch(() => undefined);
    await run;
    this.off('halt', onHalt);
    if (this.readyState === 'halted') emit({ type: 'done', pid, forced, ms: Date.now() - started });
  }

  /**
   * takeBack: the new instance died while this one was draining. This one
   * listens again on the sockets it kept, and serves as before: the service
   * goes on (only what was in flight in the dead process is lost).
   */
  private async takeBack(pid: number, how: string): Promise<void> {
    if (this.handedOverTo !== pid || this.readyState === 'halted') return;
    this.takenBack = true;
    this.onTakeBack?.();
    this.log(`the new instance (pid ${pid}) ${how} while this one drained: serving again`, { event: 'redeploy.takeback', newPid: pid });
    for (const l of this.managed.values()) {
      await l.takeBack().catch((err: Error) => this.log(`take-back of "${l.name}" failed: ${err.message}`));
      l.tracker.reset(); // stop draining: the connections are ours to keep again
    }
    await this.control?.takeBack().catch((err: Error) => this.log(`take-back of the control socket failed: ${err.message}`));
    this.handedOverTo = null;
    this.readyState = 'ready';
    if (this.options.pidFile) writePidFile(this.options.pidFile);
    notify(this.readyNotice());
    this.emit('takeback', { pid });
  }

  /**
   * readyNotice: what sd_notify says when this instance serves: its pid (it
   * may be the main one again after a failed redeploy or a take-back), READY=1,
   * and for a supervisor, the control socket to forward commands to.
   */
  private readyNotice(): string {
    const control = this.options.controlSocket ? `\n${CONTROL_FIELD}=${path.resolve(this.options.controlSocket)}` : '';
    return `MAINPID=${process.pid}\nREADY=1${process.env[SUPERVISOR_ENV] ? control : ''}`;
  }

  /** closedPorts: the ports of listeners closed in runlevel 1, which a successor binds again at telinit 3. */
  private closedPorts(): Meta {
    const ports: Meta = {};
    for (const l of this.managed.values()) {
      const port = l.address().port;
      if (!l.isOpen && typeof port === 'number' && port > 0) ports[`port:${l.name}`] = port;
    }
    return ports;
  }

  private handoffList(): OutgoingFd[] {
    const out: OutgoingFd[] = this.control ? this.control.handoff() : [];
    for (const r of this.registry.values()) {
      const item = r.handoff();
      if (item) out.push(item);
    }
    return out;
  }

  private installSignals(): () => void {
    return installSignals(this.options, {
      redeploy: () => {
        this.redeploy().catch((err: Error) => this.log(`SIGHUP: ${err.message}`));
      },
      stop: () => {
        if (this.terminating) return;
        const run = this.transition.then(() => this.enter(0, false, true));
        this.transition = run.catch(() => undefined);
        run.catch((err: Error) => this.log(`stop: ${err.message}`));
      },
      force: () => {
        this.log('second SIGINT while stopping: exiting now', { event: 'halt.forced-exit' });
        process.exit(130);
      },
      runTask: (name, sig) => {
        this.runTask(name).then(
          (result) => this.log(`${sig}: task ${name}${result === undefined ? '' : `: ${String(result)}`}`, { event: 'task', task: name }),
          (err: Error) => this.log(`${sig}: task ${name} failed: ${err.message}`, { event: 'task.failed', task: name }),
        );
      },
      stopping: () => this.terminating,
    });
  }
}
