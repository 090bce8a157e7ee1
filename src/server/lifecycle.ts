/**
 * Lifecycle: the state machine of one instance, and the one place where the
 * invariants of a redeploy are enforced (after cloudflare/tableflip):
 *
 * - there are one or two instances of a service that could serve, at most
 *   one of them not ready: an instance spawns a new one only while ready, and
 *   only once its own predecessor can no longer take back: it committed
 *   (asked to, it ends its take-back window at once, see commit in
 *   predecessor.ts; or the window passed) or it exited. A redeploy asked
 *   earlier waits for that, up to the upgrade timeout, then fails with
 *   ERR_GRACEFUL_PREDECESSOR_RUNNING; so a chain of redeploys never makes
 *   three that could serve (older ones may still drain what they hold);
 * - only one redeploy runs at a time (ERR_GRACEFUL_UPGRADE_IN_PROGRESS);
 * - no old code keeps running after a successful redeploy: once the take-back
 *   window has passed, the old instance is committed to halting
 *   ('draining' leads only to 'halting'), and a later death of the new one no
 *   longer brings it back.
 *
 * States and the transitions between them:
 *
 *   starting --ready()--> ready --redeploy: new one ready--> handing-over
 *   handing-over --new one died in the window--> taken-back --> ready
 *   handing-over --window passed (or cut short: the new one asked to commit, or halted)--> draining --> halting
 *   starting | ready --halt (telinit 0, SIGTERM)--> halting --> halted
 *
 * Runlevel changes (telinit 1 and 3) happen in 'ready'. Every transition runs
 * through run(), one after another; the checks that refuse one (with a coded
 * error) are here, before it is queued.
 *
 * It is the only holder of lifecycle state, each piece with no public
 * setter: the state, the runlevel (RUNLEVELS says which a state may enter),
 * the one change under way (a redeploy or a scale, never both; a scale is
 * also queued, so a halt waits for it), the new instance handed over to, a
 * start abandoned (the predecessor was told), a start step failed (the loop
 * no longer held), the halt cause, and the generation.
 */
import {
  AlreadyHandedOverError, AlreadyReadyError, HandoffFailedError, NotReadyError, PredecessorRunningError, TerminatingError, UpgradeInProgressError,
} from '../errors.js';
import type { Runlevel } from './options.js';

export type InstanceState = 'starting' | 'ready' | 'handing-over' | 'taken-back' | 'draining' | 'halting' | 'halted';

const NEXT: Record<InstanceState, readonly InstanceState[]> = {
  starting: ['ready', 'halting'],
  ready: ['handing-over', 'halting'],
  'handing-over': ['taken-back', 'draining'],
  'taken-back': ['ready'],
  draining: ['halting'],
  halting: ['halted'],
  halted: [],
};

/** RUNLEVELS: the runlevels each state may enter (1 and 3 while serving or starting, 0 only once halting). */
const RUNLEVELS: Record<InstanceState, readonly Runlevel[]> = {
  starting: [1, 3],
  ready: [1, 3],
  'handing-over': [],
  'taken-back': [],
  draining: [],
  halting: [0],
  halted: [],
};

/** Change: the one change of the instance's processes under way. */
export type Change = 'redeploy' | 'scale';

/** RedeployTicket: the one redeploy under way. */
export interface RedeployTicket {
  since: number;
  pid?: number;
  /** Fires when this instance is told to halt meanwhile: the new instance is killed. */
  readonly abort: AbortController;
  /** Resolves once the new instance was ready or failed (the hand-over itself is a transition of its own). */
  readonly settled: Promise<void>;
  settle(): void;
  /** A new instance that was ready when the redeploy was abandoned: the halt stops it. */
  stopSuccessor?: () => void;
}

export interface LifecycleOptions {
  /**
   * The instance this one replaced, while it still runs: its pid, a promise
   * of its exit, and commit: ask it to end its take-back window now (true once
   * it can no longer take back: 'committed' when it ended its window when
   * asked, 'closed' when it had ended already; null when it did not answer
   * in timeoutMs).
   */
  predecessorRunning?: () => { pid: number; exited: Promise<void>; commit?: (timeoutMs: number) => Promise<'committed' | 'closed' | null> } | null;
  /** Told of each state change. */
  onState?: (from: InstanceState, to: InstanceState) => void;
}

/** How long a redeploy waits for its predecessor to answer a commit, before it waits for its exit instead. */
export const COMMIT_ANSWER_MS = 2000;

export class Lifecycle {
  private current: InstanceState = 'starting';
  private queue: Promise<void> = Promise.resolve();
  private ticket: RedeployTicket | null = null;
  private scaling = false;
  private runlevel: Runlevel = 3;
  private handedTo: number | null = null;
  private readyOnce = false;
  private abandoned = false;
  private failedStep = false;
  private bySignal = false;
  private gen = 1;
  private inherited = false;

  constructor(private readonly options: LifecycleOptions = {}) {}

  get state(): InstanceState {
    return this.current;
  }

  /** level: the runlevel, 3 serving, 1 listeners closed, 0 halted. */
  get level(): Runlevel {
    return this.runlevel;
  }

  /** enter: the runlevel is now level; one the state may not enter (RUNLEVELS) is a bug, and throws. */
  enter(level: Runlevel): void {
    if (!RUNLEVELS[this.current].includes(level)) throw new Error(`graceful: no runlevel ${level} while ${this.current}`);
    this.runlevel = level;
  }

  /** generation: 1 for the first instance, then one more for each redeploy (a worker has its primary's). */
  get generation(): number {
    return this.gen;
  }

  /** inherit sets the generation from what the predecessor said, once, while starting. */
  inherit(generation: number): void {
    if (this.current !== 'starting' || this.inherited) throw new Error('graceful: the generation is set once, while starting');
    this.inherited = true;
    this.gen = generation;
  }

  /** handedOverTo: the new instance this one handed over to (while it hands over, drains and halts). */
  get handedOverTo(): number | null {
    return this.handedTo;
  }

  /** wasReady: ready() finished once. */
  get wasReady(): boolean {
    return this.readyOnce;
  }

  /** abandonStart: a new instance's ready() failed and told its predecessor, which serves on: this one cannot start any more. */
  abandonStart(): void {
    this.abandoned = true;
  }

  /** checkNotAbandoned: a ready() after an abandoned start throws ERR_GRACEFUL_HANDOFF_FAILED. */
  checkNotAbandoned(predecessorPid: number | undefined): void {
    if (this.abandoned) {
      throw new HandoffFailedError(`ready(): an earlier ready() failed and told the predecessor (pid ${predecessorPid}), which goes on serving: exit this process`);
    }
  }

  /** stepFailed: a start step failed before ready() (the loop is no longer held); resumed() once ready() holds it again. */
  stepFailed(): void {
    this.failedStep = true;
  }

  resumed(): void {
    this.failedStep = false;
  }

  /** startStepFailed: a start step failed and no ready() has held the loop since. */
  get startStepFailed(): boolean {
    return this.failedStep;
  }

  /** haltBySignal: a SIGTERM/SIGINT asked for the halt (then the process exits, and a second SIGINT forces it). */
  signalled(): void {
    this.bySignal = true;
  }

  get haltBySignal(): boolean {
    return this.bySignal;
  }

  /** terminating: on the way out (handed over, or halting), or gone. */
  get terminating(): boolean {
    return this.current !== 'starting' && this.current !== 'ready' && this.current !== 'taken-back';
  }

  /**
   * to moves to next; a move the table does not allow is a bug, and throws.
   * 'handing-over' names the new instance (newPid); back to 'ready' from a
   * take-back forgets it.
   */
  to(next: InstanceState, newPid?: number): void {
    const from = this.current;
    if (!NEXT[from].includes(next)) throw new Error(`graceful: no transition from ${from} to ${next}`);
    if (next === 'handing-over') {
      if (newPid === undefined) throw new Error('graceful: handing-over names the new instance');
      this.handedTo = newPid;
    }
    this.current = next;
    if (next === 'ready') {
      this.readyOnce = true;
      this.handedTo = null;
    }
    this.options.onState?.(from, next);
  }

  /** run queues a transition: transitions run one at a time, in the order asked. */
  run<T>(transition: () => Promise<T>): Promise<T> {
    const result = this.queue.then(transition);
    this.queue = result.then(() => undefined, () => undefined);
    return result;
  }

  /** checkReady: ready() may run (once, while starting). */
  checkReady(): void {
    if (this.current === 'halting' || this.current === 'halted') throw new TerminatingError('ready(): this instance is halting');
    if (this.current !== 'starting') throw new AlreadyReadyError('ready() was already called on this instance');
  }

  /** checkTelinit: a runlevel change may be queued now. */
  checkTelinit(target: Runlevel): void {
    if (target === 0) {
      if (this.current === 'halted' || this.current === 'halting') throw new TerminatingError('telinit 0: this instance is halting already');
      return;
    }
    if (this.terminating) throw new TerminatingError(`telinit ${target}: this instance is ${this.describe()}`);
    if (this.current === 'starting') throw new NotReadyError(`telinit ${target}: this instance is not ready yet; call ready() first`);
    if (this.ticket) throw new UpgradeInProgressError(`telinit ${target} is refused while a redeploy is under way (new instance pid ${this.ticket.pid ?? '(starting)'}): wait for it to finish`);
  }

  /**
   * beginRedeploy takes the one redeploy ticket, or throws why not:
   * ERR_GRACEFUL_UPGRADE_IN_PROGRESS, ERR_GRACEFUL_ALREADY_HANDED_OVER,
   * ERR_GRACEFUL_TERMINATING, ERR_GRACEFUL_NOT_READY. Then call
   * waitForPredecessor() before spawning.
   */
  beginRedeploy(): RedeployTicket {
    if (this.scaling) throw new UpgradeInProgressError('redeploy(): a scale of the workers is under way: redeploy once it is done (see status)');
    if (this.ticket) {
      throw new UpgradeInProgressError(
        `redeploy() is refused while another redeploy is under way (new instance pid ${this.ticket.pid ?? '(starting)'}, started ${Date.now() - this.ticket.since} ms ago): wait for it to finish`,
      );
    }
    if (this.handedTo !== null) throw new AlreadyHandedOverError(`redeploy(): this instance already handed over to pid ${this.handedTo}; ask that one`);
    if (this.terminating) throw new TerminatingError(`redeploy(): this instance is ${this.describe()}`);
    if (this.current !== 'ready') throw new NotReadyError('redeploy(): this instance is not ready yet; call ready() first');
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    const ticket: RedeployTicket = { since: Date.now(), abort: new AbortController(), settled, settle: () => settle() };
    this.ticket = ticket;
    return ticket;
  }

  /**
   * waitForPredecessor resolves once the instance this one replaced can no
   * longer take back (at once when there is none, or it is gone): until then
   * a new instance would make three. It first asks it to commit (see
   * LifecycleOptions.predecessorRunning), and calls committed with its pid and
   * the ms that took when that cut its window short; when it does not answer within
   * COMMIT_ANSWER_MS, it waits for its exit instead. It rejects with
   * ERR_GRACEFUL_PREDECESSOR_RUNNING after timeoutMs, and with
   * ERR_GRACEFUL_TERMINATING when the ticket is aborted meanwhile.
   */
  async waitForPredecessor(ticket: RedeployTicket, timeoutMs: number, log: (msg: string) => void,
    committed?: (pid: number, ms: number) => void): Promise<void> {
    const predecessor = this.options.predecessorRunning?.() ?? null;
    if (predecessor === null) return;
    if (predecessor.commit) {
      const asked = Date.now();
      const answerMs = Math.min(timeoutMs, COMMIT_ANSWER_MS);
      const how = await predecessor.commit(answerMs);
      if (how) {
        if (ticket.abort.signal.aborted) throw new TerminatingError('redeploy(): abandoned because this instance is stopping');
        if (how === 'committed') committed?.(predecessor.pid, Date.now() - asked);
        return;
      }
      log(`redeploy: the instance this one replaced (pid ${predecessor.pid}) did not answer a commit within ${answerMs} ms`);
      timeoutMs = Math.max(0, timeoutMs - (Date.now() - asked));
    }
    log(`redeploy: waiting for the instance this one replaced (pid ${predecessor.pid}) to exit first`);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        predecessor.exited,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new PredecessorRunningError(
            `redeploy() is refused: the instance this one replaced (pid ${predecessor.pid}) still runs after ${timeoutMs} ms, and could still serve again; ` +
              'retry once it has exited (it drains for up to its shutdown timeout)',
          )), timeoutMs);
          onAbort = () => reject(new TerminatingError('redeploy(): abandoned because this instance is stopping'));
          ticket.abort.signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (onAbort) ticket.abort.signal.removeEventListener('abort', onAbort);
    }
  }

  /** endRedeploy gives the ticket back once the new instance was ready or failed. */
  endRedeploy(ticket: RedeployTicket): void {
    if (this.ticket === ticket) this.ticket = null;
    ticket.settle();
  }

  /**
   * scale queues a scale of the workers: refused (ERR_GRACEFUL_UPGRADE_IN_PROGRESS)
   * unless ready, during a redeploy or another scale; queued like every
   * transition, so a halt asked meanwhile waits for it.
   */
  scale<T>(run: () => Promise<T>): Promise<T> {
    try {
      if (this.current !== 'ready') throw new UpgradeInProgressError(`scale: this instance is ${this.current}, not serving: try again once it is ready`);
      if (this.ticket) throw new UpgradeInProgressError('scale: a redeploy is under way: scale once it is done (the new version starts with the number it configures)');
      if (this.scaling) throw new UpgradeInProgressError('scale: another scale is under way: wait for it (see status)');
    } catch (err) {
      return Promise.reject(err);
    }
    this.scaling = true;
    return this.run(run).finally(() => {
      this.scaling = false;
    });
  }

  /** change: the change under way, a redeploy or a scale, if any. */
  get change(): Change | null {
    return this.ticket ? 'redeploy' : this.scaling ? 'scale' : null;
  }

  /** redeploying: the redeploy under way, if any. */
  get redeploying(): RedeployTicket | null {
    return this.ticket;
  }

  private describe(): string {
    switch (this.current) {
      case 'handing-over':
      case 'draining':
        return `draining: it handed over to pid ${this.handedTo}`;
      case 'halted':
        return 'halted';
      default:
        return 'halting';
    }
  }
}
