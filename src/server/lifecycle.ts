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
 */
import {
  AlreadyHandedOverError, AlreadyReadyError, NotReadyError, PredecessorRunningError, TerminatingError, UpgradeInProgressError,
} from '../errors.js';
import type { Runlevel } from './options.js';

export type InstanceState = 'starting' | 'ready' | 'handing-over' | 'taken-back' | 'draining' | 'halting' | 'halted';

/**
 * Role: what the instance is to its service. 'instance' serves itself; the
 * workers issue adds a primary that serves through worker processes, with the
 * same states and invariants (a generation of workers in place of one process).
 */
export type Role = 'instance';

const NEXT: Record<InstanceState, readonly InstanceState[]> = {
  starting: ['ready', 'halting'],
  ready: ['handing-over', 'halting'],
  'handing-over': ['taken-back', 'draining'],
  'taken-back': ['ready'],
  draining: ['halting'],
  halting: ['halted'],
  halted: [],
};

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
  role?: Role;
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
  readonly role: Role;
  private current: InstanceState = 'starting';
  private queue: Promise<void> = Promise.resolve();
  private ticket: RedeployTicket | null = null;
  /** The runlevel: 3 serving, 1 listeners closed, 0 halted. */
  level: Runlevel = 3;
  /** The new instance this one handed over to (while it hands over, drains and halts). */
  handedOverTo: number | null = null;
  /** ready() finished once. */
  wasReady = false;

  constructor(private readonly options: LifecycleOptions = {}) {
    this.role = options.role ?? 'instance';
  }

  get state(): InstanceState {
    return this.current;
  }

  /** terminating: on the way out (handed over, or halting), or gone. */
  get terminating(): boolean {
    return this.current !== 'starting' && this.current !== 'ready' && this.current !== 'taken-back';
  }

  /** to moves to next; a move the table does not allow is a bug, and throws. */
  to(next: InstanceState): void {
    const from = this.current;
    if (!NEXT[from].includes(next)) throw new Error(`graceful: no transition from ${from} to ${next}`);
    this.current = next;
    if (next === 'ready') this.wasReady = true;
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
    if (this.ticket) {
      throw new UpgradeInProgressError(
        `redeploy() is refused while another redeploy is under way (new instance pid ${this.ticket.pid ?? '(starting)'}, started ${Date.now() - this.ticket.since} ms ago): wait for it to finish`,
      );
    }
    if (this.handedOverTo !== null) throw new AlreadyHandedOverError(`redeploy(): this instance already handed over to pid ${this.handedOverTo}; ask that one`);
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

  /** redeploying: the redeploy under way, if any. */
  get redeploying(): RedeployTicket | null {
    return this.ticket;
  }

  private describe(): string {
    switch (this.current) {
      case 'handing-over':
      case 'draining':
        return `draining: it handed over to pid ${this.handedOverTo}`;
      case 'halted':
        return 'halted';
      default:
        return 'halting';
    }
  }
}
