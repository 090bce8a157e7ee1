/**
 * PrimaryRole: the primary of a service with workers. It holds the sockets
 * (held-sockets.ts: listeners, SO_REUSEPORT groups, UDP sockets, ticket keys)
 * and the pool of worker processes (primary.ts), never accepts, and is the
 * service's main process (control socket, pid file, sd_notify). It is ready
 * once every worker of its generation is; an application's task, command or
 * reopen runs on every worker; a scale replaces the workers.
 */
import type dgram from 'node:dgram';
import type net from 'node:net';
import { NotConfiguredError } from '../errors.js';
import type { Meta } from '../meta.js';
import type { Engine } from '../server/engine.js';
import type { ListenerInfo, ListenerStatus } from '../server/listener-set.js';
import type { MoveCounts } from '../server/drain/options.js';
import type { ListenOptions, ManagedListener } from '../server/listeners.js';
import { checkRunlevel, type Runlevel } from '../server/options.js';
import type { Predecessor } from '../server/predecessor.js';
import { announceReady } from '../server/ready.js';
import type { RedeployParts } from '../server/redeploy.js';
import type { Refusable, Role, RoleKind } from '../server/role.js';
import { TicketKeys } from '../server/ticket-keys.js';
import { adoptFields, targetFor, workersAnswer, WORKER_PIDS_FIELD } from './handover.js';
import { HeldSockets } from './held-sockets.js';
import { WorkerPool } from './pool.js';
import { forSlot } from './listener-groups.js';
import type { WorkerInfo } from './slots.js';
import type { RoleInfo } from './worker.js';

/** The tasks of the library itself: they run in the primary (which tells the workers what they need). */
const BUILTIN_TASKS: ReadonlySet<string> = new Set(['reopen', 'rotate-tickets']);
/** How long the primary waits for each worker to run a task (reopen included); one that takes longer answers with an error. */
const WORKER_TASK_TIMEOUT_MS = 30_000;

/** How long an old worker has to connect to the new worker it hands its connections to, before it is told to stop anyway. */
const HANDOVER_CONNECT_MS = 2_000;

/** The part of a new primary's upgrade timeout it keeps for itself: its workers' starts end first, so a hung one is named. */
const START_MARGIN_MS = 1_000;

/** WorkerAnswer: one worker's answer to a request of the primary. */
export type WorkerAnswer = Awaited<ReturnType<WorkerPool['ask']>>[number];

export class PrimaryRole implements Role {
  readonly kind: RoleKind = 'primary';
  readonly workerId = null;
  readonly runsAppHooks = false;
  readonly ownsService = true;
  readonly who = 'this instance';
  /** The worker processes. */
  readonly pool: WorkerPool;
  /** The sockets held for the workers. */
  readonly held: HeldSockets;
  /** When the predecessor's upgrade timeout last started (this process's start, then each worker's progress). */
  private armedAt = Date.now() - process.uptime() * 1000;
  /** During a redeploy's drain: the new primary's ready answer, naming where its workers take connections over. */
  private successor: Meta | null = null;

  constructor(private readonly engine: Engine, info: RoleInfo) {
    const { config, log, lifecycle, registry, stats } = engine;
    this.held = new HeldSockets({ registry, log, reuseport: config.balance === 'reuseport', predecessor: () => engine.predecessor });
    this.pool = new WorkerPool({
      count: info.workers,
      descriptors: (slot, count) => forSlot(registry.handoffList(), slot, count),
      grow: (count) => this.held.growGroups(count),
      state: (slot, count) => ({ runlevel: lifecycle.level, generation: lifecycle.generation, ...this.adoptFields(slot, count) }),
      generation: () => lifecycle.generation,
      timeoutMs: config.upgradeTimeout,
      startTimeoutMs: () => this.startTimeout(),
      liveness: { timeoutMs: config.workerLivenessTimeout, killMs: config.workerKillTimeout },
      shutdownTimeoutMs: config.shutdownTimeout,
      spawn: config.spawn,
      log,
      retired: (counts) => stats.retire(counts),
      changed: (w) => {
        if (w.state === 'crash-loop') this.held.crashLooping(w.id, this.pool.count);
        engine.emit('worker', w);
      },
    });
    stats.fromWorkers(() => this.pool.reported());
  }

  /**
   * startTimeout: the ms a worker started now has to become ready. During a
   * redeploy, what is left of the predecessor's upgrade timeout (armed at this
   * process's start, again at each worker's progress) less a margin: the
   * worker's own timeout then fails this start first, with a reason that
   * names the worker. Otherwise the whole upgrade timeout.
   */
  private startTimeout(): number {
    const { config, lifecycle, predecessor } = this.engine;
    if (!predecessor || lifecycle.state !== 'starting') return config.upgradeTimeout;
    const margin = Math.min(START_MARGIN_MS, config.upgradeTimeout / 10);
    return Math.max(1, Math.round(config.upgradeTimeout - (Date.now() - this.armedAt) - margin));
  }

  /**
   * adoptFields: what a worker of slot (of count) started now is told of the
   * old workers that will hand it connections: only in the generation a
   * redeploy starts all at once (not a rolling one, not a restart, not a scale).
   */
  private adoptFields(slot: number, count: number): Meta {
    const { lifecycle, predecessor, config } = this.engine;
    if (!predecessor || lifecycle.state !== 'starting' || config.rollout === 'rolling') return {};
    return adoptFields(predecessor.state, predecessor.pid, slot, count);
  }

  get workers(): number {
    return this.pool.count;
  }

  /** refuse: runlevels 1 and 3 are not available with workers (a level that is none throws checkRunlevel's error). */
  refuse(what: Refusable, level?: Runlevel | string | number): Error | null {
    const target = what === 'telinit' ? checkRunlevel(level!) : 0;
    if (target !== 0) {
      // The syntax is right, the service is not made for it: not a usage error (the CLI exits 1, not 2).
      return new NotConfiguredError(`telinit: runlevel ${target} is not available with workers: use telinit 0 to halt the service, or run it without the workers option`);
    }
    return null;
  }

  generationAfter(previous: number): number {
    return previous + 1;
  }

  /** inherit: a scale carries over while the version keeps the configured number. */
  inherit(state: Meta): void {
    const scaled = state.workersScaled;
    if (typeof scaled === 'number' && state.workersConfigured === this.engine.config.workers && scaled !== this.pool.count) this.pool.resize(scaled);
  }

  /** listen: the socket is held for the workers (the application's server stays unbound here), with the TLS ticket keys every worker gets. */
  async listen(listener: ManagedListener, server: net.Server, bind: ListenOptions, rotation: number): Promise<void> {
    const { stats, log } = this.engine;
    const name = listener.name;
    stats.watch(name, server, false); // its workers accept: they count
    const inherited = await this.held.holdListener(listener, bind);
    const tickets = TicketKeys.attach(server, { name, rotation, inherited, log,
      rotated: (rotations) => this.engine.emit('ticketkeys', { listener: name, rotations }) });
    if (tickets) {
      this.held.tickets.set(name, tickets);
      tickets.resume();
    }
  }

  dgram(name: string, socket: dgram.Socket, bind: { port?: number; address?: string }): Promise<void> {
    return this.held.holdDgram(name, socket, bind);
  }

  prepareReady(): void {}

  abandonReady(): void {}

  /**
   * startServing: the primary is ready once every worker of its generation is
   * (one by one in a rolling redeploy). What waited for ready() (the control
   * socket inherited from a predecessor) starts only then: until this
   * instance is ready, its predecessor answers there, for the service.
   */
  async startServing(predecessor: Predecessor | null, startPending: () => Promise<void>): Promise<void> {
    const { log, lifecycle, config } = this.engine;
    const onReady = (w: WorkerInfo) => {
      log(`worker ${w.id} of generation ${lifecycle.generation} ready (pid ${w.pid})`, { event: 'worker.ready', worker: w.id, pid: w.pid ?? undefined });
      if (w.pid !== null && predecessor) {
        this.armedAt = Date.now();
        predecessor.progress(w.id, w.pid);
      }
    };
    const retire = (slot: number) => {
      this.armedAt = Date.now();
      return predecessor!.retire(slot);
    };
    if (config.rollout === 'rolling' && predecessor) await this.pool.startRolling(retire, onReady);
    else await this.pool.startAll(onReady);
    await startPending();
  }

  /** announce: the predecessor learns where each worker takes connections over (a primary takes none itself). */
  announce(predecessor: Predecessor | null): Promise<void> {
    return announceReady(this.engine, predecessor, () => workersAnswer(this.pool.answers().flatMap((w) => (w.answer ? [{ ...w, answer: w.answer }] : []))));
  }

  /** ask: each ready worker's answer to a request (see WorkerPool.ask). */
  ask(...args: Parameters<WorkerPool['ask']>): ReturnType<WorkerPool['ask']> {
    return this.pool.ask(...args);
  }

  /** runTask: an application's task runs where its state is, on every worker; the library's run here. */
  async runTask(name: string, args: string[], run: (args: string[]) => unknown): Promise<unknown> {
    if (BUILTIN_TASKS.has(name)) return run(args);
    return { workers: await this.pool.ask('task', { name, args }, undefined, AbortSignal.timeout(WORKER_TASK_TIMEOUT_MS)) };
  }

  /** reopenElsewhere: each worker has its own descriptors of the files: they re-open theirs too. */
  async reopenElsewhere(): Promise<void> {
    for (const a of await this.pool.ask('task', { name: 'reopen', args: [] }, undefined, AbortSignal.timeout(WORKER_TASK_TIMEOUT_MS))) {
      if (a.error) this.engine.log(`reopen: worker ${a.id} (pid ${a.pid}): ${a.error.message}`, { event: 'reopen.failed', worker: a.id, code: a.error.code });
    }
  }

  rotateTickets(): string[] {
    return this.held.rotateTickets();
  }

  /**
   * drain: the workers drain their connections (the primary holds none); in
   * a redeploy whose new workers take connections over, each old worker is
   * first told which one to hand its connections to (handover.ts).
   */
  drain(): Promise<void> {
    const successor = this.successor;
    if (!successor) return this.pool.drain();
    return this.pool.drain(async (slot, link) => {
      const target = targetFor(successor, slot);
      if (!target) return;
      await link.request('handover', { pid: target.pid, ...target.answer }, undefined, AbortSignal.timeout(HANDOVER_CONNECT_MS));
    });
  }

  /** movedElsewhere: what the workers' drains did with their connections (handed over to the next generation's workers, drained, forced). */
  movedElsewhere(): MoveCounts {
    return this.pool.moveCounts();
  }

  release(): void {
    this.held.release();
  }

  /**
   * scale runs n workers from now on: new workers start, all of them ready
   * before any accepts, then the old ones drain; queued by the lifecycle
   * (refused during a redeploy or another scale, and a halt waits for it).
   */
  scale(n: number): Promise<void> {
    const { lifecycle, log } = this.engine;
    return lifecycle.scale(async () => {
      const from = this.pool.count;
      await this.pool.scale(n, (w) => log(`worker ${w.id} of ${n} ready (pid ${w.pid})`, { event: 'worker.ready', worker: w.id, pid: w.pid ?? undefined }));
      log(`scaled from ${from} to ${n} worker(s)`, { event: 'workers.scaled', from, to: n });
    });
  }

  status(): Record<string, unknown> {
    return { workers: this.pool.info(), workersWanted: this.pool.wanted, workersReady: this.pool.readyCount };
  }

  /**
   * statusOfService: status with each worker's open connections, requests
   * served and RSS, asked over its link (null for a worker that did not
   * answer within a second); connections is then the workers' sum.
   */
  async statusOfService(_s: Record<string, unknown>): Promise<Record<string, unknown>> {
    const answers = await this.pool.ask('stats', {}, undefined, AbortSignal.timeout(1000));
    // The instance as it is after the wait too (it may have handed over meanwhile), consistent with its workers.
    const s = this.engine.status();
    const byId = new Map(answers.map((a) => [a.id, (a.result ?? null) as { connections?: number; requests?: number; rss?: number } | null]));
    const workers = this.pool.info().map((w) => {
      const st = byId.get(w.id);
      const { responding, unresponsiveSince, ...slot } = w; // the liveness last: after the columns status always had
      return { ...slot, connections: st?.connections ?? null, requests: st?.requests ?? null, rss: st?.rss ?? null, responding, unresponsiveSince };
    });
    // The workers as they are now, after the wait: their counts from the same moment.
    return { ...s, workers, workersWanted: this.pool.wanted, workersReady: this.pool.readyCount, connections: workers.reduce((n, w) => n + (w.connections ?? 0), 0) };
  }

  listenerStatus(): ListenerStatus[] {
    return this.held.status();
  }

  listenerInfo(): ListenerInfo[] {
    return this.held.info();
  }

  heldAddress(name: string): Meta | null {
    return this.held.address(name);
  }

  redeployParts(): Pick<RedeployParts, 'takeBack' | 'retire' | 'refill' | 'handingOver'> & { state(): Meta } {
    return {
      state: () => ({ workersScaled: this.pool.count, workersConfigured: this.engine.config.workers, [WORKER_PIDS_FIELD]: JSON.stringify(this.pool.slotPids()) }),
      handingOver: (answer) => (this.successor = answer),
      takeBack: () => this.pool.restart(),
      retire: (slot) => this.pool.retire(slot),
      refill: () => this.pool.refill(),
    };
  }
}
