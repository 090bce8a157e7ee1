/**
 * The worker pool of a primary: N worker processes of the same program, one
 * per slot (slots.ts), each handed the primary's listeners and files through
 * the hand-off core (server/successor.ts). Model: one generation of workers
 * serves; a redeploy replaces the primary, whose new workers are all ready
 * before it tells this one, which then drains its own. A worker that dies
 * while its generation serves is restarted in its slot, with backoff, until
 * it crashes CRASH_LOOP_COUNT times in CRASH_LOOP_MS.
 */
import type { ChildProcess } from 'node:child_process';
import { UpgradeInProgressError, WorkerFailedError, invalidArgument } from '../errors.js';
import type { Meta } from '../meta.js';
import type { OutgoingFd } from '../handoff/connection.js';
import type { LogFields } from '../log.js';
import type { OwnedFd } from '../owned-fd.js';
import { MAX_WORKERS } from '../server/options.js';
import type { SpawnFunction } from '../server/successor.js';
import { GoSignal } from './go.js';
import { Liveness } from './liveness.js';
import { CRASH_LOOP_MS, killWorkers, makeSlots, stopWorkers, type Slot, type WorkerInfo, type WorkerState } from './slots.js';
import { firstFailure, spawnWorker } from './spawn-worker.js';
import { askWorkers, type WorkerAnswerOf } from './fan-out.js';
import { PrimaryLink } from './worker-link.js';
import { addMoved, type MoveCounts } from '../server/drain/options.js';

/** How long past the shutdown timeout a draining worker has before it is killed. */
const DRAIN_MARGIN_MS = 5_000;

/**
 * PoolPhase: what the pool does with a worker that exits. 'idle': not
 * started yet (or taken back, before its restart); 'serving': the exit of a
 * worker of the serving generation is a crash, and its slot restarts;
 * 'draining': the workers are told to stop, and none restarts.
 */
type PoolPhase = 'idle' | 'serving' | 'draining';

export interface PoolOptions {
  count: number;
  /** What the worker of slot (of count) gets: the listeners (its members of each group) and files, never the control socket. */
  descriptors(slot: number, count: number): OutgoingFd[];
  /**
   * grow: before count workers start, give each listener's group at least
   * count members; resolves with what undoes it (closes the members added,
   * which nothing listened on) should the start fail.
   */
  grow?(count: number): Promise<() => void>;
  /** State sent to the worker of slot (of count): runlevel, generation, who hands it connections. */
  state(slot: number, count: number): Meta;
  generation(): number;
  timeoutMs: number;
  /** The ms a worker started now has to become ready, if not timeoutMs (a new primary's share of its own upgrade timeout). */
  startTimeoutMs?(): number;
  /** The liveness check (liveness.ts): ms of silence before a worker is unresponsive, and before it is killed; 0: off. */
  liveness?: { timeoutMs: number; killMs: number };
  shutdownTimeoutMs: number;
  spawn?: SpawnFunction;
  log(msg: string, fields?: LogFields): void;
  /** A slot changed state (for events). */
  changed?(info: WorkerInfo): void;
  /** A worker's link ended: what its listeners counted, its last report. */
  retired?(counts: PrimaryLink['listeners']): void;
}

/**
 * WorkerPool: the primary's workers, one per slot. It owns the slots, the
 * workers' processes and links, and whether an exit is a crash (its phase);
 * the primary's listeners and files stay the caller's (descriptors, grow).
 */
export class WorkerPool {
  private slots: Slot[];
  /**
   * scaleSlots: the slots of a scale() under way, from its start until its
   * new workers replace `slots` (null otherwise). A worker of theirs is
   * wanted, and restarted if it crashes, as one of `slots` is.
   */
  private scaleSlots: Slot[] | null = null;
  /** The links still open, of every worker that has not ended yet. */
  private readonly links = new Set<PrimaryLink>();
  /** What the drains of the workers whose links ended did with their connections. */
  private readonly retiredMoved: MoveCounts = { handedOver: 0, drained: 0, forced: 0 };
  /** The slots a rolling redeploy retires (their worker drains: the successor's worker of the slot serves). */
  private readonly retiring = new Set<Slot>();
  /** phase: whether a worker that exits is a crash to restart ('serving') or not ('idle', 'draining'); see PoolPhase. */
  private phase: PoolPhase = 'idle';

  /** bug logs a slot's move outside SLOT_TRANSITIONS (the move is made: see Slot). */
  private readonly bug = (msg: string, from: WorkerState, to: WorkerState): void => {
    this.options.log(msg, { event: 'worker.bad-transition', from, to });
  };

  /** The liveness check of the running workers, from the moment the pool serves until it drains. */
  private readonly liveness: Liveness;

  constructor(private readonly options: PoolOptions) {
    this.slots = makeSlots(options.count, this.bug);
    this.liveness = new Liveness({
      timeoutMs: options.liveness?.timeoutMs ?? 0, killMs: options.liveness?.killMs ?? 0,
      slots: () => [...this.slots, ...(this.scaleSlots ?? [])], generation: options.generation, log: options.log, changed: options.changed,
    });
  }

  /** resize sets the number of workers before the first start (a predecessor's scale carries over). */
  resize(count: number): void {
    if (this.phase !== 'idle' || this.slots.some((s) => s.child)) throw new UpgradeInProgressError('resize: the workers run already: use scale()');
    this.slots = makeSlots(count, this.bug);
  }

  /** scaling: a scale() is under way. */
  get scaling(): boolean {
    return this.scaleSlots !== null;
  }

  /** count: the slots of the serving generation (a scale's new ones once they replaced these). */
  get count(): number {
    return this.slots.length;
  }

  /** wanted: the workers this primary means to run (a rolling redeploy retired, or retires, the others to its successor's). */
  get wanted(): number {
    return this.slots.filter((s) => s.state !== 'retired' && !this.retiring.has(s)).length;
  }

  /** readyCount: workers ready and serving. */
  get readyCount(): number {
    return this.slots.filter((s) => s.state === 'ready').length;
  }

  /** slotPids: the pid of each slot's live worker, by slot (null: none). */
  slotPids(): (number | null)[] {
    return this.slots.map((s) => (s.child && s.child.exitCode === null && s.child.signalCode === null ? s.child.pid ?? null : null));
  }

  /** answers: each ready worker's ready answer, by slot. */
  answers(): { slot: number; pid: number; answer: Meta | undefined }[] {
    return this.slots.flatMap((s) => (s.state === 'ready' && s.child?.pid ? [{ slot: s.id, pid: s.child.pid, answer: s.answer }] : []));
  }

  /** pids of the live workers. */
  pids(): number[] {
    return this.slots.flatMap((s) => (s.child?.pid !== undefined && s.child.exitCode === null && s.child.signalCode === null ? [s.child.pid] : []));
  }

  /** info: every slot, as status shows it. */
  info(): WorkerInfo[] {
    return this.slots.map((s) => s.info(this.options.generation()));
  }

  /**
   * startAll brings up every slot at once and resolves when all are ready.
   * If one fails, every other is killed (SIGKILL, and waited for) and this
   * rejects with WorkerFailedError naming the first worker that failed.
   */
  async startAll(onReady?: (info: WorkerInfo) => void): Promise<void> {
    const undo = (await this.options.grow?.(this.slots.length)) ?? (() => undefined);
    try {
      await this.startSlots(this.slots, onReady);
    } catch (err) {
      undo();
      throw err;
    }
    this.phase = 'serving';
    this.liveness.start();
  }

  /**
   * startRolling brings up the slots one at a time, for a rolling redeploy:
   * the worker of slot i starts and accepts, then retire(i) has the old
   * worker of that slot drain (and resolves once it exited), then slot i+1
   * starts: at most one worker more than configured runs. If one fails,
   * every new worker is killed and this rejects with its error.
   */
  async startRolling(retire: (slot: number) => Promise<void>, onReady?: (info: WorkerInfo) => void): Promise<void> {
    const undo = (await this.options.grow?.(this.slots.length)) ?? (() => undefined);
    // Serving from the first slot on: a new worker that crashes (or hangs) meanwhile is restarted.
    this.phase = 'serving';
    this.liveness.start();
    try {
      for (const slot of this.slots) {
        await this.startSlots([slot], onReady, this.slots.length);
        await retire(slot.id);
      }
    } catch (err) {
      // The new workers already serving drain (they accepted connections);
      // the old primary starts its retired slots again meanwhile.
      this.phase = 'draining';
      this.liveness.stop();
      for (const s of this.slots) {
        if (s.timer) clearTimeout(s.timer);
        if (s.child) s.child.kill('SIGTERM');
      }
      undo();
      throw err;
    }
  }

  /** retire drains the worker of slot (a successor's worker of that slot serves now); resolves once it exited. */
  async retire(id: number): Promise<void> {
    const slot = this.slots[id];
    if (!slot) return;
    this.retiring.add(slot);
    try {
      await stopWorkers([slot], this.drainGraceMs());
    } finally {
      this.retiring.delete(slot);
    }
    slot.move('retired');
    this.options.changed?.(slot.info(this.options.generation()));
  }

  /** refill starts again the slots retired to a rolling redeploy that then failed: this primary serves on with all of them. */
  async refill(): Promise<void> {
    const retired = this.slots.filter((s) => s.state === 'retired');
    await Promise.all(retired.map((slot) => this.startSlot(slot).catch((err: Error) => {
      this.options.log(`worker ${slot.id} could not be started again after the failed redeploy: ${err.message}`, { event: 'worker.restart-failed', worker: slot.id });
    })));
  }

  /** startSlots starts slots together (go once all are ready); on a failure kills them all and throws the first worker's error. */
  private async startSlots(slots: Slot[], onReady?: (info: WorkerInfo) => void, count = slots.length): Promise<void> {
    const abort = new AbortController();
    const signal = new GoSignal();
    try {
      const results = await Promise.allSettled(slots.map(async (slot) => {
        const go = signal.pair();
        try {
          await this.startSlot(slot, abort.signal, go, count);
        } finally {
          go.close();
        }
        onReady?.(slot.info(this.options.generation()));
      }).map((p) => p.catch((err: unknown) => {
        abort.abort();
        throw err;
      })));
      const failed = firstFailure(results);
      if (failed) {
        signal.close(); // EOF: the ready workers give up without accepting
        await killWorkers(slots);
        throw failed.reason;
      }
      try {
        if (slots.some((sl) => sl.child === null)) throw new Error('a worker ended after it was ready');
        signal.go();
      } catch (err) {
        // A worker died between ready and go: none of this generation may serve.
        signal.close();
        await killWorkers(slots);
        throw new WorkerFailedError(`a worker of generation ${this.options.generation()} ended before all of them could start accepting (${(err as Error).message}): every one was stopped`, { cause: err });
      }
    } finally {
      signal.close();
    }
  }

  /** startSlot spawns the worker of one slot and resolves once it is ready; rejects with WorkerFailedError. */
  private async startSlot(slot: Slot, signal?: AbortSignal, go?: OwnedFd, count = this.slots.length): Promise<void> {
    slot.move('starting');
    this.options.changed?.(slot.info(this.options.generation()));
    let started;
    try {
      started = await spawnWorker({
        id: slot.id, count, generation: this.options.generation, descriptors: () => this.options.descriptors(slot.id, count),
        state: this.options.state(slot.id, count), timeoutMs: this.options.startTimeoutMs?.() ?? this.options.timeoutMs, spawn: this.options.spawn, signal, go,
      });
    } catch (err) {
      slot.move('stopped');
      throw err;
    }
    const { child, link, answer } = started;
    if (this.phase === 'draining' || !(this.slots.includes(slot) || (this.scaleSlots?.includes(slot) ?? false))) {
      // Its slot was let go while it started (a halt, a scale): it must not serve untracked.
      link.close();
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
      slot.move('stopped');
      throw new WorkerFailedError(`worker ${slot.id} of generation ${this.options.generation()} was no longer wanted once it was ready (a halt or a scale came first): it was killed`);
    }
    slot.child = child;
    slot.answer = answer;
    const primaryEnd = new PrimaryLink(link.take(), `worker ${slot.id} (pid ${child.pid})`, (msg) => this.options.log(msg), (ended) => {
      this.links.delete(ended);
      addMoved(this.retiredMoved, ended.moved);
      this.options.retired?.(ended.listeners);
    });
    this.links.add(primaryEnd);
    slot.link = primaryEnd;
    slot.move('ready');
    slot.readyAt = Date.now();
    slot.exited = new Promise((resolve) => child.once('exit', (code, sig) => {
      this.exited(slot, child, code, sig);
      resolve();
    }));
    this.options.changed?.(slot.info(this.options.generation()));
  }

  /**
   * scale replaces the workers by count new ones, under load without a
   * failed request: every listener's group gets the members it needs (a group
   * never loses one), the new workers start together and accept once all are
   * ready, then the old ones drain as at a redeploy. If a new one fails, the
   * new ones are killed and the old ones serve on (WorkerFailedError).
   */
  async scale(count: number, onReady?: (info: WorkerInfo) => void): Promise<void> {
    if (!Number.isInteger(count) || count < 1 || count > MAX_WORKERS) {
      throw invalidArgument('scale', `the number of workers must be an integer from 1 to ${MAX_WORKERS}, got ${String(count)} (telinit 0 halts the service)`);
    }
    if (this.scaleSlots) throw new UpgradeInProgressError('scale: another scale is under way: wait for it (see status)');
    if (this.phase !== 'serving') throw new UpgradeInProgressError(`scale: the workers are ${this.phase === 'draining' ? 'draining' : 'not started yet'}: try again once the service serves`);
    const next = makeSlots(count, this.bug);
    this.scaleSlots = next;
    try {
      const undo = (await this.options.grow?.(count)) ?? (() => undefined);
      try {
        await this.startSlots(next, onReady);
      } catch (err) {
        undo();
        throw err;
      }
      const old = this.slots;
      this.slots = next;
      // One that died between its ready and the swap is a crash of the new generation.
      for (const slot of next) if (slot.child === null && slot.state === 'stopped') this.crashed(slot, 'ended while the scale started');
      await stopWorkers(old, this.drainGraceMs());
    } finally {
      this.scaleSlots = null;
    }
  }

  /** moveCounts: what the drains of every worker did with its connections, the running ones' as each last reported it. */
  moveCounts(): MoveCounts {
    const sum = { ...this.retiredMoved };
    for (const l of this.links) addMoved(sum, l.moved);
    return sum;
  }

  /** reported: what the running workers' listeners counted, as each last reported it. */
  reported(): PrimaryLink['listeners'][] {
    return [...this.links].map((l) => l.listeners);
  }

  /** ask: see askWorkers (fan-out.ts), over this pool's slots. */
  ask(op: string, fields: Record<string, unknown>, onLine?: (id: number, line: string, link: PrimaryLink) => void, signal?: AbortSignal): Promise<WorkerAnswerOf[]> {
    return askWorkers(this.slots, op, fields, onLine, signal);
  }

  /** exited: a worker ended; outside a drain it is a crash, and its slot restarts with backoff (or gives up, in a crash loop). */
  private exited(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return;
    slot.child = null;
    // Its link closes by itself once its last report is read (then its counts are retired).
    const link = slot.link;
    slot.link = null;
    if (this.phase !== 'serving' || !this.slots.includes(slot) || slot.state === 'draining') {
      slot.move('stopped');
      return;
    }
    const lost = link?.connections ?? 0;
    const hung = slot.hung;
    slot.hung = null;
    slot.silentSince = 0;
    this.crashed(slot, `(pid ${child.pid}) ${hung !== null ? `did not answer for ${hung} ms and was killed (SIGKILL)` : signal ? `was killed by ${signal}` : `exited with code ${code}`}` +
      (lost > 0 ? `, losing the ${lost} connection(s) it had open` : ''), lost);
  }

  /**
   * crashed counts a crash of a slot of the serving generation (its worker
   * died, or could not be started again) and restarts it after a backoff,
   * or stops restarting it in a crash loop.
   */
  private crashed(slot: Slot, how: string, lost = 0): void {
    const delay = slot.crash();
    if (delay === null) {
      slot.move('crash-loop');
      this.options.log(`worker ${slot.id} ${how}: ${slot.crashes.length} crashes within ${CRASH_LOOP_MS / 1000} s, so slot ${slot.id} is not restarted; ` +
        'fix the cause and redeploy', { event: 'worker.crash-loop', worker: slot.id, lost });
      this.options.changed?.(slot.info(this.options.generation()));
      return;
    }
    this.options.log(`worker ${slot.id} ${how}; restarting it in ${delay} ms (the other workers serve on)`, { event: 'worker.crashed', worker: slot.id, lost });
    slot.move('restarting');
    this.options.changed?.(slot.info(this.options.generation()));
    slot.timer = setTimeout(() => {
      slot.timer = null;
      if (!this.serves(slot)) return;
      slot.restarts += 1;
      this.startSlot(slot).catch((err: Error) => {
        // A failed start counts as a crash of the slot (unless the slot was let go meanwhile).
        if (this.serves(slot)) this.crashed(slot, `could not be started again (${err.message})`);
      });
    }, delay);
    slot.timer.unref();
  }

  /** serves: slot belongs to the generation that serves (or to a scale that starts), and the pool is not draining. */
  private serves(slot: Slot): boolean {
    return this.phase === 'serving' && (this.slots.includes(slot) || (this.scaleSlots?.includes(slot) ?? false));
  }

  /**
   * drain tells every worker to stop (SIGTERM: each drains as a single
   * instance does) and resolves once all have exited; one still running past
   * the shutdown timeout (and a margin) is killed. before(slot, link), if
   * given, runs first for each running worker (a redeploy tells it where to
   * hand its connections); its failure does not keep the worker from stopping.
   */
  async drain(before?: (slot: number, link: PrimaryLink) => Promise<unknown>): Promise<void> {
    this.phase = 'draining';
    this.liveness.stop();
    const slots = [...this.slots, ...(this.scaleSlots ?? [])];
    if (before) await Promise.all(slots.map((s) => (s.child && s.link ? before(s.id, s.link).catch(() => undefined) : undefined)));
    await stopWorkers(slots, this.drainGraceMs());
  }

  /** drainGraceMs: how long a draining worker has before it is killed (the shutdown timeout and a margin). */
  private drainGraceMs(): number {
    return this.options.shutdownTimeoutMs + DRAIN_MARGIN_MS;
  }

  /** restart: after a take-back, bring up every slot again. */
  async restart(): Promise<void> {
    this.phase = 'idle';
    this.liveness.stop();
    for (const s of this.slots) s.crashes = [];
    await this.startAll();
  }
}
