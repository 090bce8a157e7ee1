/**
 * A slot of the worker pool: a stable place (0..N-1) for one worker process
 * at a time, with the state status shows, its crash history and its link.
 * The state changes only through Slot.move, checked against
 * SLOT_TRANSITIONS, the one list of the moves a slot makes.
 */
import type { ChildProcess } from 'node:child_process';
import type { Meta } from '../meta.js';
import type { PrimaryLink } from './worker-link.js';

/**
 * WorkerState: where a slot is.
 *   stopped     no process (at first, after a drain, or a start that failed)
 *   starting    its process is spawned and not ready yet
 *   ready       its process serves
 *   unresponsive  its process is running but has not answered its primary's liveness pings
 *               for the liveness timeout (stopped, or its event loop blocked); killed past the kill timeout
 *   restarting  its process crashed; a restart waits out its backoff
 *   crash-loop  it crashed CRASH_LOOP_COUNT times in CRASH_LOOP_MS: not restarted until a redeploy
 *   draining    its process was told to stop (SIGTERM) and has not exited yet
 *   retired     a rolling redeploy handed it to the successor's worker of that slot
 */
export type WorkerState = 'starting' | 'ready' | 'unresponsive' | 'restarting' | 'crash-loop' | 'draining' | 'stopped' | 'retired';

/** WorkerInfo: one slot, as status shows it. */
export interface WorkerInfo {
  id: number;
  pid: number | null;
  generation: number;
  state: WorkerState;
  /** seconds since this slot's process became ready (0 when none is). */
  uptime: number;
  /** how many times this slot was restarted after a crash. */
  restarts: number;
  /** whether its process answers its primary's liveness pings: null when no process serves in the slot. */
  responding: boolean | null;
  /** while unresponsive: since when (ISO 8601, its last answer); null otherwise. */
  unresponsiveSince: string | null;
}

/**
 * SLOT_TRANSITIONS: for each state, the states a slot may move to from it
 * (a state absent from its own list may not be set again). Where a move only
 * happens in a race, its comment says which.
 */
export const SLOT_TRANSITIONS: { readonly [from in WorkerState]: readonly WorkerState[] } = {
  stopped: [
    'starting', // a start (the first, a redeploy's, a scale's, after a take-back)
    'stopped', // stopped again (a drain of stopped slots; a start that failed after a drain marked it stopped)
    'ready', // race: a start under way when a retire marked it stopped completes (the pool serves and keeps the slot)
    'restarting', 'crash-loop', // a crash counted after the fact: a restart that failed, a scale's worker that died before the swap
    'retired', // a rolling redeploy's retire, once the slot's worker exited
  ],
  starting: ['ready', 'stopped'],
  ready: [
    'unresponsive', // silent for the liveness timeout
    'draining', // told to stop
    'stopped', // exited outside a drain of the serving generation (a failed rolling start, a halt)
    'restarting', 'crash-loop', // crashed while serving
    'retired', // race: see stopped -> ready; retire marks the slot once its own wait is over
  ],
  unresponsive: [
    'ready', // it answers again
    'draining', 'stopped', 'restarting', 'crash-loop', 'retired', // as from ready (killed past the kill timeout: restarting or crash-loop)
  ],
  restarting: ['starting', 'stopped'],
  'crash-loop': ['stopped'],
  draining: ['stopped', 'draining'],
  retired: [
    'starting', // refill: the rolling redeploy failed, this primary takes the slot back
    'stopped', // the drain after a rolling redeploy that succeeded
    'restarting', 'crash-loop', // race: a worker left running by the race above exits while the pool serves
  ],
};

/** canMove: SLOT_TRANSITIONS allows a slot in state from to move to state to. */
export function canMove(from: WorkerState, to: WorkerState): boolean {
  return SLOT_TRANSITIONS[from].includes(to);
}

/** A slot stops restarting after this many crashes within CRASH_LOOP_MS. */
export const CRASH_LOOP_COUNT = 5;
export const CRASH_LOOP_MS = 30_000;
/** Restart delays: the first after BACKOFF_MIN_MS, doubling per recent crash, at most BACKOFF_MAX_MS. */
export const BACKOFF_MIN_MS = 100;
export const BACKOFF_MAX_MS = 5_000;

/**
 * Slot: one worker's place in the pool. The pool owns its fields; its state
 * changes through move() alone. A move outside SLOT_TRANSITIONS is a bug of
 * the pool: it is reported to onBug (the pool logs it) and made anyway, so
 * that a missed race never leaves a worker untracked.
 */
export class Slot {
  child: ChildProcess | null = null;
  readyAt = 0;
  restarts = 0;
  /** When it crashed, within the last CRASH_LOOP_MS (as of the last crash). */
  crashes: number[] = [];
  /** The restart waiting out its backoff. */
  timer: NodeJS.Timeout | null = null;
  /** Resolves once the worker that became ready last has exited. */
  exited: Promise<void> | null = null;
  /** The primary's end of the worker's link (stats, commands), while the worker runs. */
  link: PrimaryLink | null = null;
  /** Its worker's ready answer (where it takes connections over, in a redeploy). */
  answer: Meta | undefined;
  /** While unresponsive: when its worker last answered (ms since the epoch). */
  silentSince = 0;
  /** How long its worker had been silent when the liveness check killed it (null: not killed for that). */
  hung: number | null = null;
  private current: WorkerState = 'stopped';

  constructor(readonly id: number, private readonly onBug: (msg: string, from: WorkerState, to: WorkerState) => void = () => undefined) {}

  get state(): WorkerState {
    return this.current;
  }

  /** move sets the state; one SLOT_TRANSITIONS does not list goes to onBug first. */
  move(to: WorkerState): void {
    if (!canMove(this.current, to)) {
      this.onBug(`worker slot ${this.id} moved from ${this.current} to ${to}, which SLOT_TRANSITIONS does not allow (a bug of the worker pool)`, this.current, to);
    }
    this.current = to;
  }

  /**
   * crash records a crash at now and says what follows: the delay before the
   * slot's restart (BACKOFF_MIN_MS doubling per crash within CRASH_LOOP_MS,
   * at most BACKOFF_MAX_MS), or null once it crashed CRASH_LOOP_COUNT times
   * within CRASH_LOOP_MS (a crash loop: no restart). The state is the caller's to move.
   */
  crash(now = Date.now()): number | null {
    this.crashes = [...this.crashes.filter((t) => now - t < CRASH_LOOP_MS), now];
    if (this.crashes.length >= CRASH_LOOP_COUNT) return null;
    return Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.crashes.length - 1));
  }

  /** info: the slot as status shows it, in generation. */
  info(generation: number, now = Date.now()): WorkerInfo {
    return {
      id: this.id,
      pid: this.child?.pid ?? null,
      generation,
      state: this.current,
      uptime: this.current === 'ready' || this.current === 'unresponsive' ? Math.round((now - this.readyAt) / 1000) : 0,
      restarts: this.restarts,
      responding: this.current === 'ready' ? true : this.current === 'unresponsive' ? false : null,
      unresponsiveSince: this.current === 'unresponsive' ? new Date(this.silentSince).toISOString() : null,
    };
  }
}

/** makeSlots: count stopped slots, ids 0..count-1. */
export function makeSlots(count: number, onBug?: (msg: string, from: WorkerState, to: WorkerState) => void): Slot[] {
  return Array.from({ length: count }, (_, id) => new Slot(id, onBug));
}

/**
 * stopWorkers: SIGTERM to the worker of each slot (it drains: the slot is
 * draining until it exited), SIGKILL to one still running after graceMs;
 * resolves once all exited. A slot without a worker is stopped at once (a
 * restart waiting out its backoff is called off).
 */
export async function stopWorkers(slots: Slot[], graceMs: number): Promise<void> {
  const live = slots.filter((s) => {
    if (s.timer) clearTimeout(s.timer);
    s.timer = null;
    if (s.state !== 'ready' && s.child === null) s.move('stopped');
    return s.child !== null;
  });
  for (const s of live) {
    s.move('draining');
    s.child!.kill('SIGTERM');
  }
  const children = live.map((s) => s.child!);
  const timer = setTimeout(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }, graceMs);
  await Promise.all(live.map((s) => s.exited));
  clearTimeout(timer);
}

/** killWorkers ends the worker of each slot now (SIGKILL) and waits for each to exit. */
export async function killWorkers(slots: Slot[]): Promise<void> {
  const live = slots.filter((s) => s.child !== null);
  for (const s of live) s.child!.kill('SIGKILL');
  await Promise.all(live.map((s) => s.exited));
}
