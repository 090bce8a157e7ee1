/**
 * Engine: the parts of one process and their wiring, whatever its role:
 * the registry of named descriptors, the listeners, files, tasks, hooks,
 * statistics, the lifecycle, the control socket (as a ControlPort), the
 * predecessor, the shutdown and the redeploy. It owns the start (init: what
 * a predecessor or systemd passed, once), the start steps that wait for
 * ready(), the keep-alive timer and the signal handlers. Where the roles
 * differ it asks its Role (role.ts); the facade (GracefulServer) composes it.
 */
import { debuglog } from 'node:util';
import { TerminatingError } from '../errors.js';
import type { OutgoingFd } from '../handoff/connection.js';
import type { LogFields } from '../log.js';
import { takeListenFds } from '../systemd.js';
import type { Adopter } from './adopt.js';
import { addMoved, type MoveCounts } from './drain/options.js';
import type { ControlPort } from './control-port.js';
import type { ServerEvent } from './events.js';
import type { GracefulFile } from './file.js';
import { Files } from './files.js';
import { Hooks } from './hooks.js';
import { Lifecycle } from './lifecycle.js';
import { Listeners } from './listener-set.js';
import { checkRunlevel, DEFAULT_CONTROL_FD_NAME, type Config, type Runlevel } from './options.js';
import { Predecessor } from './predecessor.js';
import { Redeployer } from './redeploy.js';
import { Runlevels, type RunlevelHook } from './runlevels.js';
import { readyNotice, serving } from './serving.js';
import { ReopenRelay } from './reopen-relay.js';
import { Registry } from './registry.js';
import type { Role } from './role.js';
import { Shutdown } from './shutdown.js';
import { installInstanceSignals } from './signals.js';
import { Stats } from './stats.js';
import { Tasks } from './tasks.js';
import { checkRotation } from './ticket-keys.js';
import { ManagedListener, type ListenOptions } from './listeners.js';
import type dgram from 'node:dgram';
import type net from 'node:net';

const debug = debuglog('graceful');

export interface EngineOptions {
  config: Config;
  log(msg: string, fields?: LogFields): void;
  control: ControlPort | null;
  /** The facade's events, and how many listen to one. */
  emit(name: ServerEvent, value?: unknown): void;
  listenerCount(event: ServerEvent): number;
  /** makeRole: the role of this process, made once the engine's parts exist. */
  makeRole(engine: Engine): Role;
  /** What SIGHUP runs (the facade's redeploy, with its role's refusals). */
  redeploy(): Promise<unknown>;
  /** How a task's result reads in the log line of a signal. */
  formatResult(result: unknown): string;
}

export class Engine {
  readonly config: Config;
  readonly log: (msg: string, fields?: LogFields) => void;
  readonly control: ControlPort | null;
  readonly registry: Registry;
  readonly listeners = new Listeners();
  readonly stats = new Stats();
  readonly hooks = new Hooks();
  readonly lifecycle: Lifecycle;
  readonly role: Role;
  readonly shutdown: Shutdown;
  readonly runlevels: Runlevels;
  readonly redeployer: Redeployer;
  readonly files: Files;
  /** A reopen here reaches the other instance of a redeploy while both hold the files. */
  readonly relay: ReopenRelay;
  readonly tasks = new Tasks();
  readonly startedAt = Date.now();
  readonly halted: Promise<void>;
  /** The instance this one replaced (or a worker's primary), once init() ran. */
  predecessor: Predecessor | null = null;
  /** A new instance's receiver of the connections its predecessor hands over while it drains (ready.ts opens it). */
  adopter: Adopter | null = null;
  private initPromise: Promise<void> | null = null;
  /** What a new instance starts only in ready(), so that it accepts nothing before. */
  private pendingStarts: (() => Promise<void>)[] = [];
  private targetLevel: Runlevel;
  /** Keeps the process alive from start to halt, even with every listener closed (runlevel 1). */
  private keepAlive: NodeJS.Timeout | null = null;
  private removeSignals: (() => void) | null = null;
  private resolveHalt!: () => void;

  constructor(private readonly options: EngineOptions) {
    this.config = options.config;
    this.log = options.log;
    this.control = options.control;
    this.registry = new Registry();
    this.files = new Files(this.registry, this.log);
    this.relay = new ReopenRelay(() => this.reopenHere(), this.log);
    this.targetLevel = this.config.runlevel;
    this.halted = new Promise((resolve) => (this.resolveHalt = resolve));
    this.lifecycle = new Lifecycle({
      predecessorRunning: () => {
        const p = this.predecessor;
        return p?.running ? { pid: p.pid, exited: p.exited(), commit: (ms: number) => p.commit(ms) } : null;
      },
      onState: (from, to) => debug('state %s -> %s', from, to),
    });
    this.role = options.makeRole(this);
    const role = this.role;
    this.runlevels = new Runlevels({
      lifecycle: this.lifecycle, role, listeners: this.listeners, log: (msg) => this.log(msg),
      entered: (level) => options.emit('runlevel', level),
      drain: (release) => this.drainListeners(release),
      stop: () => this.stop(false),
    });
    this.shutdown = new Shutdown({
      lifecycle: this.lifecycle, config: this.config, log: this.log, listeners: this.listeners, hooks: this.hooks,
      runLevelHooks: (level) => this.runlevels.runHooks(level),
      control: () => this.control,
      predecessor: () => this.predecessor,
      draining: (open) => options.emit('draining', open),
      workers: () => role.drain(),
      keepSocketFiles: !role.ownsService, // a worker's UNIX socket files are its primary's
      release: () => {
        role.release();
        this.removeSignals?.();
        this.adopter?.close();
        if (this.keepAlive) clearInterval(this.keepAlive);
      },
      halted: ({ forced, handedOver, bySignal }) => {
        options.emit('runlevel', 0);
        options.emit('halt', { forced, handedOverTo: this.lifecycle.handedOverTo });
        this.resolveHalt();
        if (this.config.exitProcess ?? (handedOver || bySignal || this.lifecycle.haltBySignal)) setImmediate(() => process.exit(0));
      },
    });
    const parts = role.redeployParts();
    this.redeployer = new Redeployer({
      lifecycle: this.lifecycle, config: this.config, log: this.log,
      descriptors: () => this.handoffList(),
      state: () => ({ runlevel: this.lifecycle.level, generation: this.lifecycle.generation, ...this.listeners.closedPorts(), ...parts.state(), ...this.stats.state() }),
      listeners: this.listeners,
      moveCounts: () => this.moveCounts(),
      control: () => this.control,
      drain: (release) => this.drainListeners(release),
      serving: () => serving(this.config, this.log),
      finishHalt: (how) => this.shutdown.finish({ ...how, bySignal: false }),
      emit: (name, value) => options.emit(name, value),
      takeBack: parts.takeBack, retire: parts.retire, refill: parts.refill, handingOver: parts.handingOver,
      relay: this.relay,
    });
    this.tasks.add('reopen', async () => `reopened ${(await this.reopen()).join(', ') || 'nothing'}`);
    this.tasks.add('rotate-tickets', () => (!role.ownsService
      ? 'a worker serves with the TLS ticket keys of its primary: run rotate-tickets on the primary'
      : `rotated the TLS ticket keys of ${this.rotateTicketKeys().join(', ') || 'nothing (no TLS listener)'}`));
  }

  /** emit: an event of the facade. */
  emit(name: ServerEvent, value?: unknown): void {
    this.options.emit(name, value);
  }

  /** listenerCount: how many listen to an event of the facade. */
  listenerCount(event: ServerEvent): number {
    return this.options.listenerCount(event);
  }

  /** started: init() ran (or runs): the start hooks can no longer be added. */
  get started(): boolean {
    return this.initPromise !== null;
  }

  /** init takes what a predecessor or systemd passed, once, before anything is bound. */
  init(): Promise<void> {
    this.initPromise ??= (async () => {
      this.predecessor = await Predecessor.connect();
      if (this.predecessor) {
        const gone = this.predecessor.pid;
        this.predecessor.whenOrphaned(() => this.role.ownsService && this.log(`the instance this one replaces (pid ${gone}) exited before this one was ready: ` +
          'its stderr is the service\'s again, this instance goes on starting, and from ready() it serves alone', { event: 'predecessor.gone' }));
        this.registry.inherit(this.predecessor.fds);
        // A worker's tasks come from its primary, which asks each worker itself: only an instance relays.
        if (this.role.ownsService && this.predecessor.relays) this.predecessor.relay(this.relay.peer(`the old instance (pid ${this.predecessor.pid})`));
        this.targetLevel = checkRunlevel(this.predecessor.state.runlevel ?? 3);
        this.lifecycle.inherit(this.role.generationAfter(Number(this.predecessor.state.generation ?? 1)));
        this.role.inherit(this.predecessor.state);
        this.stats.restore(this.predecessor.state);
        debug('took %d descriptor(s) from pid %d', this.registry.inheritedCount, this.predecessor.pid);
      } else {
        this.registry.activate(takeListenFds());
      }
      this.lifecycle.enter(this.targetLevel === 3 ? 3 : 1);
      this.keepAlive = setInterval(() => undefined, 2 ** 31 - 1);
      if (this.control) await this.openControl(this.control);
      if (this.role.runsAppHooks) await this.hooks.run('start'); // the hooks run where the application serves
      if (this.config.signals !== false || !this.role.ownsService) this.removeSignals = this.installSignals();
    })();
    return this.initPromise;
  }

  /** holdAgain: a start step failed and the application went on to ready(): hold the loop again (the keep-alive timer, the control socket). */
  holdAgain(): void {
    this.keepAlive = setInterval(() => undefined, 2 ** 31 - 1);
    this.control?.ref();
    this.lifecycle.resumed();
  }

  private async openControl(control: ControlPort): Promise<void> {
    const inherited = this.registry.claim('control', 'control', this.log);
    for (const f of this.registry.takeConnections()) control.adopt(f.take(), f.meta);
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

  /**
   * starting runs a start step (listen, dgram, file). When one fails before
   * ready(), the library no longer keeps the process alive: its keep-alive
   * timer stops and the control socket no longer holds the event loop (it is
   * closed, and its file removed, when the process exits, whether or not the
   * application calls telinit(0)). ready() holds the loop again, so an
   * application may still try another port.
   */
  async starting<T>(step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (err) {
      const s = this.lifecycle.state;
      if (s !== 'ready' && !this.lifecycle.terminating) {
        if (this.keepAlive) clearInterval(this.keepAlive);
        this.keepAlive = null;
        this.control?.unref();
        this.lifecycle.stepFailed();
      }
      throw err;
    }
  }

  /** startOrDefer: a new instance accepts (and reads datagrams) only from ready(): if it fails before, it took nothing. */
  async startOrDefer(start: () => Promise<void>): Promise<void> {
    if (this.predecessor !== null && this.lifecycle.state === 'starting') this.pendingStarts.push(start);
    else await start();
  }

  /** startPending starts, in order, what waited for ready(). */
  async startPending(): Promise<void> {
    for (const start of this.pendingStarts.splice(0)) await start();
  }

  /** listen: see GracefulServer.listen(). */
  listen<S extends net.Server>(name: string, server: S, bind: ListenOptions): Promise<S> {
    return this.starting(async () => {
      if (this.lifecycle.terminating) throw new TerminatingError(`listen("${name}"): this instance is halting`);
      const rotation = checkRotation(`listen("${name}")`, bind.ticketKeyRotation ?? this.config.ticketKeyRotation);
      await this.init();
      await this.role.listen(new ManagedListener(name, server, bind), server, bind, rotation);
      return server;
    });
  }

  /** dgram: see GracefulServer.dgram(). */
  dgram(name: string, socket: dgram.Socket, bind: { port?: number; address?: string }): Promise<dgram.Socket> {
    return this.starting(async () => {
      await this.init();
      await this.role.dgram(name, socket, bind);
      return socket;
    });
  }

  /** file: see GracefulServer.file(). */
  file(name: string, where: string, options: { flags?: string; mode?: number }): Promise<GracefulFile> {
    return this.starting(async () => {
      await this.init();
      return this.files.file(name, where, options);
    });
  }

  /** descriptor: see GracefulServer.descriptor(). */
  async descriptor(name: string, open: () => number | Promise<number>): Promise<number> {
    await this.init();
    return this.files.descriptor(name, open);
  }

  /** runTask: see GracefulServer.runTask(). */
  async runTask(name: string, args: string[]): Promise<unknown> {
    return this.role.runTask(name, args, this.tasks.get(name));
  }

  /**
   * reopen: see GracefulServer.reopen(). During a redeploy, once this
   * process's files and its workers' are re-opened, the other instance's are
   * too (ReopenRelay) before it resolves.
   */
  async reopen(): Promise<string[]> {
    const names = await this.reopenHere();
    await this.relay.forward();
    return names;
  }

  /** reopenHere re-opens the files of this process and of its workers, never forwarded. */
  private async reopenHere(): Promise<string[]> {
    const names = await this.files.reopen();
    await this.role.reopenElsewhere();
    return names;
  }

  /** rotateTicketKeys: see GracefulServer.rotateTicketKeys(). */
  rotateTicketKeys(): string[] {
    return this.role.rotateTickets();
  }

  /** status: see GracefulServer.status(). */
  status(): Record<string, unknown> {
    const { lifecycle, listeners } = this;
    const mem = process.memoryUsage();
    const r = lifecycle.redeploying;
    return {
      pid: process.pid, ppid: process.ppid, generation: lifecycle.generation, runlevel: lifecycle.level, ready: lifecycle.state === 'ready', state: lifecycle.state,
      uptime: Math.round((Date.now() - this.startedAt) / 1000),
      listeners: this.role.listenerStatus(),
      connections: listeners.connectionCount(),
      connectionStates: listeners.states(),
      handover: { ...this.moveCounts(), adopted: this.adopter?.adoptedCount ?? 0 },
      controlConnections: this.control?.connectionCount ?? 0,
      rss: mem.rss, heapUsed: mem.heapUsed, node: process.version,
      redeploy: r ? `pid ${r.pid ?? '(starting)'} for ${Date.now() - r.since} ms` : 'none',
      handedOverTo: lifecycle.handedOverTo,
      ...this.role.status(),
    };
  }

  /** telinit: see GracefulServer.telinit(). */
  telinit(level: Runlevel | string | number): Promise<void> {
    return this.runlevels.telinit(level);
  }

  onRunlevel(level: Runlevel, hook: RunlevelHook): void {
    this.runlevels.onRunlevel(level, hook);
  }

  /** moveCounts: what the drains did with the connections, of this process's listeners and of its workers (a primary's). */
  private moveCounts(): MoveCounts {
    const here = this.listeners.moveCounts();
    const there = this.role.movedElsewhere();
    return there ? addMoved(here, there) : here;
  }

  /** drainListeners stops accepting everywhere and drains; resolves with how many connections were forced closed. */
  private async drainListeners(release: boolean): Promise<number> {
    const [forced] = await Promise.all([this.listeners.drain(release, this.config.idleGrace, this.config.shutdownTimeout), this.role.drain()]);
    return forced;
  }

  /** stop queues a halt (telinit 0, SIGTERM): nothing to do when this instance is on its way out already. */
  stop(bySignal: boolean): Promise<void> {
    return this.lifecycle.run(async () => {
      const state = this.lifecycle.state;
      if (state !== 'starting' && state !== 'ready') return; // handed over, or halting already
      await this.shutdown.halt(bySignal);
    });
  }

  /** readyNotice: what sd_notify says when this instance serves (serving.ts). */
  readyNotice(): string {
    return readyNotice(this.config);
  }

  private handoffList(): OutgoingFd[] {
    return [...(this.control ? this.control.handoff() : []), ...this.registry.handoffList()];
  }

  private installSignals(): () => void {
    const { lifecycle } = this;
    return installInstanceSignals({
      worker: !this.role.ownsService, options: this.config, log: this.log,
      redeploy: () => this.options.redeploy(),
      halt: () => this.stop(true),
      haltBySignal: () => lifecycle.haltBySignal,
      signalled: () => lifecycle.signalled(),
      draining: () => lifecycle.terminating && lifecycle.state !== 'halted',
      runTask: (name) => this.runTask(name, []),
      formatResult: (result) => this.options.formatResult(result),
    });
  }
}

