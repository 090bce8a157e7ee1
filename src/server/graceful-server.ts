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
 */
import { EventEmitter } from 'node:events';
import type dgram from 'node:dgram';
import type net from 'node:net';
import path from 'node:path';
import { debuglog } from 'node:util';
import { DuplicateNameError, HandoffFailedError, HookFailedError, TerminatingError, UnknownTaskError, invalidArgument } from '../errors.js';
import type { Meta } from '../meta.js';
import { fdOf } from '../fds.js';
import type { OutgoingFd } from '../handoff/connection.js';
import { writePidFile } from '../pidfile.js';
import { notify, takeListenFds } from '../systemd.js';
import { openFile } from '../safefile.js';
import { ManagedListener, type ListenOptions } from './listeners.js';
import { Listeners } from './listener-set.js';
import { GracefulFile } from './file.js';
import { Hooks, type Hook, type StopHook } from './hooks.js';
import { installSignals } from './signals.js';
import { ControlServer } from '../control/server.js';
import { addBuiltins, type ControlTarget } from '../control/builtins.js';
import type { Command } from '../control/commands.js';
import { makeLogger, type LogFields } from '../log.js';
import { Predecessor } from './predecessor.js';
import { CONTROL_FIELD, SUPERVISOR_ENV } from '../protocol.js';
import { checkRunlevel, DEFAULT_CONTROL_FD_NAME, readConfigFile, resolveOptions, type Config, type GracefulServerOptions, type Runlevel } from './options.js';
import { Registry } from './registry.js';
import { Lifecycle, type InstanceState } from './lifecycle.js';
import { Redeployer, type RedeployEvent, type RedeployResult } from './redeploy.js';
import { Stats, protocolOf } from './stats.js';
import { Shutdown } from './shutdown.js';
import { Adopter } from './adopt.js';
import { ADOPT_FIELD, ADOPT_LISTENERS_FIELD } from './conn-handover.js';

export {
  DEFAULT_UPGRADE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_IDLE_GRACE, DEFAULT_TAKE_BACK_WINDOW,
  type GracefulServerOptions, type Runlevel,
} from './options.js';
export type { RedeployEvent, RedeployResult } from './redeploy.js';
export type { InstanceState } from './lifecycle.js';

const debug = debuglog('graceful');

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

  constructor(options: GracefulServerOptions = {}) {
    super();
    this.config = resolveOptions(options);
    this.on('redeploy', (event: RedeployEvent) => this.stats.onRedeploy(event));
    this.log = makeLogger(options.log);
    this.upgradeTimeout = this.config.upgradeTimeout;
    this.shutdownTimeout = this.config.shutdownTimeout;
    this.targetLevel = this.config.runlevel;
    this.haltPromise = new Promise((resolve) => {
      this.resolveHalt = resolve;
    });
    this.lifecycle = new Lifecycle({
      predecessorRunning: () => (this.predecessor?.running ? { pid: this.predecessor.pid, exited: this.predecessor.exited() } : null),
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
      release: () => {
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
      state: () => ({ runlevel: this.lifecycle.level, generation: this.generation, ...this.listenerSet.closedPorts(), ...this.stats.state() }),
      listeners: this.listenerSet,
      control: () => this.control,
      drain: (release) => this.drainListeners(release),
      serving: () => this.serving(),
      finishHalt: (how) => this.shutdown.finish({ ...how, bySignal: false }),
      emit: (name, value) => this.emit(name, value),
    });
    this.tasks.set('reopen', async () => `reopened ${(await this.reopen()).join(', ') || 'nothing'}`);
    if (options.controlSocket) {
      this.control = new ControlServer(options.controlSocket, {
        mode: options.controlMode,
        allowUids: options.controlAllowUids,
        idleTimeout: options.controlIdleTimeout,
        log: (message) => this.log(message),
        ...options.controlLimits,
      });
      addBuiltins(this.control.commands, this.controlTarget());
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
  command(name: string, command: Command): this {
    if (!this.control) throw invalidArgument('command', 'there is no control socket: set the controlSocket option');
    this.control.commands.add(name, command);
    return this;
  }

  /** init takes what a predecessor or systemd passed, once, before anything is bound. */
  private init(): Promise<void> {
    this.initPromise ??= (async () => {
      this.predecessor = await Predecessor.connect();
      if (this.predecessor) {
        this.registry.inherit(this.predecessor.fds);
        this.targetLevel = checkRunlevel(this.predecessor.state.runlevel ?? 3);
        this.generation = Number(this.predecessor.state.generation ?? 1) + 1;
        this.stats.restore(this.predecessor.state);
        debug('took %d descriptor(s) from pid %d', this.registry.inheritedCount, this.predecessor.pid);
      } else {
        this.registry.activate(takeListenFds());
      }
      this.lifecycle.level = this.targetLevel === 3 ? 3 : 1;
      this.keepAlive = setInterval(() => undefined, 2 ** 31 - 1);
      if (this.control) await this.openControl(this.control);
      await this.hooks.run('start');
      if (this.config.signals !== false) this.removeSignals = this.installSignals();
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
      status: () => this.status(),
      stats: () => this.stats.snapshot([...this.listenerSet].map((l) => ({
        name: l.name, open: l.isOpen, connections: l.tracker.count, address: l.address(), protocol: protocolOf(l.server),
      }))),
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
    return [...this.files.keys()];
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
      listeners: this.listenerInfo().map((l) => `${l.name} ${l.open ? 'open' : 'closed'} ${l.address.family === 'unix' ? l.address.path : `${l.address.host}:${l.address.port}`} (${l.connections} connection(s))`),
      connections: this.connectionCount(),
      handover: { ...this.listenerSet.moveCounts(), adopted: this.adopter?.adoptedCount ?? 0 },
      controlConnections: this.control?.connectionCount ?? 0,
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      node: process.version,
      redeploy: r ? `pid ${r.pid ?? '(starting)'} for ${Date.now() - r.since} ms` : 'none',
    };
  }

  /** connectionCount: connections open on every listener. */
  connectionCount(): number {
    return this.listenerSet.connectionCount();
  }

  /** listenerInfo: name, address and state of every listener, for status. */
  listenerInfo(): { name: string; open: boolean; connections: number; address: Meta }[] {
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
  async listen<S extends net.Server>(name: string, server: S, bind: ListenOptions = {}): Promise<S> {
    if (this.terminating) throw new TerminatingError(`listen("${name}"): this instance is halting`);
    await this.init();
    const listener = new ManagedListener(name, server, bind);
    this.registry.register(name, 'listener', () => (listener.isOpen ? { fd: listener.fd(), meta: { name, kind: 'listener', ...listener.address() } } : null));
    this.listenerSet.add(listener);
    this.stats.watch(name, server);
    const claimed = this.registry.claim(name, 'listener', this.log, (c) => c.source === 'systemd' || listener.matches(c.fd.meta));
    if (claimed?.source === 'systemd') listener.activated = true;
    // A listener closed in runlevel 1 comes back on the port it had.
    const lastPort = this.predecessor?.state[`port:${name}`];
    if (!claimed && typeof lastPort === 'number') listener.rememberPort(lastPort);
    if (this.lifecycle.level !== 3) {
      claimed?.fd.close(); // runlevel 1: the port must be free
    } else if (this.deferStart) {
      this.pendingStarts.push(() => listener.start(claimed?.fd));
    } else {
      await listener.start(claimed?.fd);
    }
    return server;
  }

  /**
   * dgram registers a UDP socket: bound to the inherited socket, else per
   * bind. It stays bound in runlevel 1. In a new instance it is bound in
   * ready() (it reads nothing before: a new instance that fails took no
   * datagram); this resolves at once, with the socket not yet bound.
   */
  async dgram(name: string, socket: dgram.Socket, bind: { port?: number; address?: string } = {}): Promise<dgram.Socket> {
    await this.init();
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
  async file(name: string, path: string, options: { flags?: string; mode?: number } = {}): Promise<GracefulFile> {
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
    this.lifecycle.checkReady();
    const predecessor = this.predecessor;
    if (this.handoffAbandoned) {
      throw new HandoffFailedError(`ready(): an earlier ready() failed and told the predecessor (pid ${predecessor?.pid}), which goes on serving: exit this process`);
    }
    /** giveUp: a new instance that cannot start tells its predecessor (which serves on) and accepts nothing. */
    const giveUp = () => {
      if (!predecessor) return;
      predecessor.abandon();
      this.handoffAbandoned = true;
      this.listenerSet.stopAll(false);
    };
    const leftovers = this.registry.closeUnclaimed();
    if (leftovers.count > 0) this.log(`closing ${leftovers.count} inherited descriptor(s) nobody registered: ${leftovers.names.join(', ')}`);
    try {
      await this.hooks.run('ready');
    } catch (err) {
      giveUp();
      throw new HookFailedError(`a ready hook failed, so this instance does not start: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
    try {
      // Before the predecessor is told: a failure here leaves it serving.
      if (this.config.pidFile) writePidFile(this.config.pidFile);
      for (const start of this.pendingStarts.splice(0)) await start();
    } catch (err) {
      giveUp();
      this.log(`ready: this instance cannot start: ${(err as Error).message}`, { event: 'ready.failed', code: (err as { code?: string }).code });
      throw err;
    }
    // Accepting from here on: status says ready, also while the predecessor is told.
    this.lifecycle.to('ready');
    if (predecessor) {
      // The service manager (or a supervisor) learns the new main pid before
      // the predecessor may exit, so it never sees the service without one.
      notify(`MAINPID=${process.pid}`);
      const err = await predecessor.ready(this.openAdopter(predecessor));
      if (err) this.log(`could not tell the predecessor (pid ${predecessor.pid}) that this instance is ready (${(err as { code?: string }).code ?? err.message}): it is gone, so this instance serves alone`, { event: 'ready.predecessor-gone' });
    }
    notify(this.readyNotice());
    await this.runLevelHooks(this.lifecycle.level);
    await this.hooks.run('started');
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
    if (names.length === 0) return {};
    try {
      const adopter = Adopter.open({
        predecessorPid: predecessor.pid,
        target: (name) => {
          const l = this.listenerSet.get(name);
          return l?.isOpen && l.tracker.handsOver ? l.server : null;
        },
        adopted: (a) => this.emit('adopt', a),
        log: (msg) => this.log(msg),
      });
      this.adopter = adopter;
      void predecessor.exited().then(() => adopter.close());
      return { [ADOPT_FIELD]: adopter.path, [ADOPT_LISTENERS_FIELD]: names.join(',') };
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
   * ERR_GRACEFUL_TERMINATING once handed over or halting.
   */
  telinit(level: Runlevel | string | number): Promise<void> {
    let target: Runlevel;
    try {
      target = checkRunlevel(level);
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
      if (forced > 0) this.log(`runlevel 1: closed ${forced} connection(s) still open at the shutdown timeout`);
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
  private drainListeners(release: boolean): Promise<number> {
    return this.listenerSet.drain(release, this.config.idleGrace, this.shutdownTimeout);
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
    return installSignals(this.config, {
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
          (result) => this.log(`${sig}: task ${name}${result === undefined ? '' : `: ${String(result)}`}`, { event: 'task', task: name }),
          (err: Error) => this.log(`${sig}: task ${name} failed: ${err.message}`, { event: 'task.failed', task: name }),
        );
      },
      // Only a halt a signal asked for makes the next SIGINT a forced exit (not a drain after a hand-over).
      stopping: () => this.signalStop,
    });
  }
}
