/**
 * Generations: the generations of the application alive, each followed to
 * its exit whoever its parent is: through a pidfd (pidfd_open(2)) when one
 * can be opened, else by polling its pid.
 */
import { addon, POLL_READABLE, type Poller } from '../native.js';
import { errorCode } from '../errors.js';
import type { LogFields } from '../log.js';
import { stat } from './procfs.js';

/** How often a generation is polled when no pidfd can follow it. */
export const POLL_GONE_MS = 100;

interface Generation {
  pid: number;
  pidfd: number;
  poller: Poller | null;
  /** Without a pidfd (pidfd_open failed: ENOSYS, EMFILE): the timer that polls the pid. */
  timer: NodeJS.Timeout | null;
}

/** GenerationEvents: what Generations tells its owner. */
export interface GenerationEvents {
  /** gone: pid ended (called once per watch, after its descriptor is released). */
  gone(pid: number): void;
  /** poll: runs before each poll of a pid followed without a pidfd (the reaper's sweep). */
  poll(): void;
  log(msg: string, fields?: LogFields): void;
}

/** processGone: pid no longer runs (no such process, or a zombie). Needs no descriptor but to read /proc. */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (errorCode(err) === 'ESRCH') return true;
  }
  return stat(pid)?.state === 'Z';
}

export class Generations {
  private readonly alive = new Map<number, Generation>();

  constructor(private readonly events: GenerationEvents) {}

  /** has: pid is a generation alive (watched, and not seen gone). */
  has(pid: number): boolean {
    return this.alive.has(pid);
  }

  get size(): number {
    return this.alive.size;
  }

  /** pids: the generations alive, in the order they were watched. */
  pids(): number[] {
    return [...this.alive.keys()];
  }

  /** polled: pid is followed by polling (no pidfd): the exit of a child spawned here is the news of its end. */
  polled(pid: number): boolean {
    return Boolean(this.alive.get(pid)?.timer);
  }

  /**
   * watch follows a generation's exit through a pidfd, whoever its parent
   * is. ESRCH means it is gone already (gone is called on the next turn).
   * Any other failure of pidfd_open (ENOSYS before Linux 5.3, EMFILE) is
   * logged, and the pid is polled instead (kill(pid, 0) and its /proc state,
   * every 100 ms).
   */
  watch(pid: number): void {
    let pidfd: number;
    try {
      pidfd = addon.pidfdOpen(pid);
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ESRCH') {
        this.alive.set(pid, { pid, pidfd: -1, poller: null, timer: null });
        setImmediate(() => this.gone(pid)); // already gone
        return;
      }
      this.events.log(`cannot follow pid ${pid} through a pidfd (${(err as Error).message}): polling it every ${POLL_GONE_MS} ms instead`,
        { event: 'supervisor.pidfd-unavailable', appPid: pid, code });
      const timer = setInterval(() => {
        this.events.poll();
        if (processGone(pid)) this.gone(pid);
      }, POLL_GONE_MS);
      timer.unref();
      this.alive.set(pid, { pid, pidfd: -1, poller: null, timer });
      return;
    }
    const poller = new addon.Poller(pidfd, () => this.gone(pid));
    poller.start(POLL_READABLE);
    poller.unref();
    this.alive.set(pid, { pid, pidfd, poller, timer: null });
  }

  /** gone: pid ended: its pidfd or timer is released, and the owner told (once). */
  gone(pid: number): void {
    const g = this.alive.get(pid);
    if (!g) return;
    this.alive.delete(pid);
    release(g);
    this.events.gone(pid);
  }

  /** closeAll stops following every generation (the supervisor ends), telling nobody. */
  closeAll(): void {
    for (const g of this.alive.values()) release(g);
    this.alive.clear();
  }
}

function release(g: Generation): void {
  g.poller?.close();
  if (g.timer) clearInterval(g.timer);
  if (g.pidfd >= 0) addon.close(g.pidfd);
}
