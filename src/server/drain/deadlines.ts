/**
 * The deadlines of a drain (DrainLimits) and the run that keeps them
 * (DrainRun): the idle grace window, the shutdown timeout after which every
 * connection but the upgraded ones is destroyed, and the upgraded timeout
 * (by default the shutdown timeout) after which the upgraded ones are.
 */
import { debuglog } from 'node:util';
import type { Conn, Connections } from './conns.js';
import type { MoveCounts } from './options.js';

const debug = debuglog('graceful');

/** DrainLimits: the deadlines of one drain. */
export interface DrainLimits {
  /** ms an HTTP/1 connection must have been idle, counted from the drain's start at the earliest, before it is closed. */
  graceMs: number;
  /** When (ms since the epoch) every connection but the upgraded ones still open is destroyed. */
  deadline: number;
  /** When (ms since the epoch) the upgraded connections still open are destroyed. */
  upgradedDeadline: number;
}

/** drainLimits: the deadlines of a drain that starts at now; upgradedTimeout undefined means the shutdown deadline. */
export function drainLimits(now: number, graceMs: number, deadline: number, upgradedTimeout: number | undefined): DrainLimits {
  return { graceMs, deadline, upgradedDeadline: upgradedTimeout !== undefined ? now + upgradedTimeout : deadline };
}

/**
 * DrainRun: one drain of the connections of a listener. Every tick (a
 * quarter of the grace window, between 10 and 100 ms, after the poll phase
 * so that everything that arrived has been read) it calls sweep with the
 * time, then destroys what the deadlines say, counting each in moved.forced.
 * `done` resolves with how many it destroyed, once no connection is left or
 * at cancel().
 */
export class DrainRun {
  /** done resolves with the connections destroyed at the deadlines. */
  readonly done: Promise<number>;
  private forced = 0;
  private restForced = false;
  private upgradedForced = false;
  private finished = false;
  private readonly timer: NodeJS.Timeout;
  private resolve!: (forced: number) => void;

  constructor(private readonly conns: Connections, private readonly limits: DrainLimits, private readonly moved: MoveCounts,
    private readonly name: string, private readonly sweep: (now: number) => void) {
    this.done = new Promise((resolve) => {
      this.resolve = resolve;
    });
    const tick = () => setImmediate(() => this.check());
    this.timer = setInterval(tick, Math.max(10, Math.min(100, limits.graceMs / 4)));
    this.check();
  }

  /** changed: a connection closed; the run ends once the last one is gone. */
  changed(): void {
    if (this.conns.size === 0) this.finish();
  }

  /** cancel ends the run now (a take-back): `done` resolves with what was destroyed so far. */
  cancel(): void {
    this.finish();
  }

  private check(): void {
    const t = Date.now();
    this.sweep(t);
    if (!this.restForced && t >= this.limits.deadline) {
      this.restForced = true;
      this.forced += destroyWhere(this.conns, (c) => c.kind !== 'upgraded', this.moved, this.name, 'the shutdown timeout');
    }
    if (!this.upgradedForced && t >= this.limits.upgradedDeadline) {
      this.upgradedForced = true;
      this.forced += destroyWhere(this.conns, (c) => c.kind === 'upgraded', this.moved, this.name, 'their upgradedTimeout');
    }
    if (this.conns.size === 0) this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.timer);
    this.resolve(this.forced);
  }
}

/**
 * destroyWhere destroys the connections which selects (the accepted socket
 * and the one its protocol runs on), marks each forced and counts it in
 * moved.forced; returns how many. name (the listener's) and why (the deadline) go to the debug line.
 */
export function destroyWhere(conns: Connections, which: (c: Conn) => boolean, moved: MoveCounts, name: string, why: string): number {
  let n = 0;
  const byState: Record<string, number> = {};
  for (const c of [...conns.values()]) {
    if (!which(c)) continue;
    n++;
    c.forced = true;
    moved.forced++;
    byState[c.kind] = (byState[c.kind] ?? 0) + 1;
    c.raw.destroy();
    if (c.io !== c.raw) c.io.destroy();
  }
  if (n > 0) debug('%s: destroyed %d connection(s) still open at %s: %j', name, n, why, byState);
  return n;
}
