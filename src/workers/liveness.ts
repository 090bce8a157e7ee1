/**
 * The liveness check of a primary's workers: every interval (a third of the
 * liveness timeout) the primary pings each running worker over its link
 * (worker-link.ts); the worker answers from its event loop, so a worker
 * stopped (SIGSTOP) or whose loop is blocked does not. A worker silent for
 * the liveness timeout is 'unresponsive' (status and health name it, and
 * since when); one that answers again is 'ready' again; one silent for the
 * kill timeout is killed (SIGKILL), and its pool counts that as a crash and
 * restarts its slot.
 */
import type { LogFields } from '../log.js';
import type { Slot, WorkerInfo } from './slots.js';

export interface LivenessOptions {
  /** ms without an answer after which a worker is unresponsive; 0: no check. */
  timeoutMs: number;
  /** ms without an answer after which it is killed; 0: never. */
  killMs: number;
  /** The slots to check (those of the serving generation, and of a scale under way). */
  slots(): Slot[];
  generation(): number;
  log(msg: string, fields?: LogFields): void;
  changed?(info: WorkerInfo): void;
}

/** pingInterval: how often a worker is pinged: a third of the liveness timeout, so that it misses three pings before it is unresponsive. */
export function pingInterval(timeoutMs: number): number {
  return Math.max(10, Math.floor(timeoutMs / 3));
}

/**
 * Liveness: the check of one pool. start() runs it (idempotent), stop()
 * ends it; check() is one round, at now.
 */
export class Liveness {
  private timer: NodeJS.Timeout | null = null;
  /** When check() last ran. */
  private lastRun = 0;
  /**
   * Silence is counted from here at the earliest: the last time this process
   * itself was late by more than a ping interval (its own loop blocked: the
   * answers it did not read yet are no worker's fault).
   */
  private baseline = 0;

  constructor(private readonly options: LivenessOptions) {}

  start(): void {
    if (this.timer || this.options.timeoutMs <= 0) return;
    this.timer = setInterval(() => this.check(), pingInterval(this.options.timeoutMs));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.lastRun = 0;
  }

  /** check pings each running worker and moves the slots whose worker stopped (or started again) answering. */
  check(now = Date.now()): void {
    const { timeoutMs, killMs, log } = this.options;
    if (this.lastRun !== 0 && now - this.lastRun > 2 * pingInterval(timeoutMs)) this.baseline = now;
    this.lastRun = now;
    for (const slot of this.options.slots()) {
      const link = slot.link;
      const child = slot.child;
      if (!link || !child || (slot.state !== 'ready' && slot.state !== 'unresponsive')) continue;
      const silent = now - Math.max(link.lastHeard, this.baseline);
      const who = `worker ${slot.id} (pid ${child.pid})`;
      if (slot.state === 'ready' && silent >= timeoutMs) {
        slot.silentSince = link.lastHeard;
        slot.move('unresponsive');
        log(`${who} has not answered for ${silent} ms (the liveness timeout is ${timeoutMs} ms): it is unresponsive` +
          (killMs > 0 ? `, and is killed once silent for ${killMs} ms` : ''), { event: 'worker.unresponsive', worker: slot.id, pid: child.pid });
        this.options.changed?.(slot.info(this.options.generation(), now));
      } else if (slot.state === 'unresponsive' && silent < timeoutMs) {
        slot.move('ready');
        log(`${who} answers again, after ${now - slot.silentSince} ms`, { event: 'worker.responding', worker: slot.id, pid: child.pid });
        slot.silentSince = 0;
        this.options.changed?.(slot.info(this.options.generation(), now));
      }
      if (slot.state === 'unresponsive' && killMs > 0 && silent >= killMs && slot.hung === null) {
        slot.hung = silent;
        log(`${who} has not answered for ${silent} ms (the kill timeout is ${killMs} ms): killing it (SIGKILL)`, { event: 'worker.hung', worker: slot.id, pid: child.pid });
        child.kill('SIGKILL');
        continue;
      }
      link.ping();
    }
  }
}
