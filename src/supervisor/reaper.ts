/**
 * Reaper: the subreaper's bookkeeping. The process that runs a Supervisor is
 * the subreaper of its descendants: every orphan is reparented to it, and
 * the Reaper reaps each one that exits (sweep), except the children libuv
 * spawned and reaps itself. It remembers how the last few hundred processes
 * ended, and at the end stops the processes left behind.
 */
import type { ChildProcess } from 'node:child_process';
import { addon } from '../native.js';
import type { LogFields } from '../log.js';
import { signalName, type ExitStatus } from './exit-status.js';
import { childrenOf } from './procfs.js';

/** How many exit statuses are remembered. */
const STATUS_MEMORY = 256;

export class Reaper {
  /** libuv's own children (the ones we spawned), which libuv reaps. */
  private readonly spawned = new Map<number, ChildProcess>();
  private readonly statuses = new Map<number, ExitStatus>();

  /**
   * spawnedChild: child was spawned here (libuv reaps it). When it exits, its
   * status is remembered, the exits behind it are reaped, then exited runs.
   */
  spawnedChild(child: ChildProcess & { pid: number }, exited: () => void): void {
    const pid = child.pid;
    this.spawned.set(pid, child);
    child.once('exit', (code, signal) => {
      this.spawned.delete(pid);
      this.remember(pid, { code, signal });
      this.sweep(); // libuv reaped it: the exits behind it can be reaped now
      exited();
    });
  }

  /** sweep reaps every exited child libuv does not own: orphans reparented to us. */
  sweep(): void {
    for (const r of addon.reap([...this.spawned.keys()])) {
      this.remember(r.pid, { code: r.code, signal: r.signal === null ? null : signalName(r.signal) });
    }
  }

  /** reported: a generation says how pid ended; kept unless pid is libuv's child or its end is known already. */
  reported(pid: number, status: ExitStatus): void {
    if (!this.spawned.has(pid) && !this.statuses.has(pid)) this.remember(pid, status);
  }

  /**
   * statusOf waits a little (up to about 1 s) for how pid ended: libuv, a reap
   * or a report may tell it; before each look, first() runs (it reads the
   * reports). null when nothing told it.
   */
  async statusOf(pid: number, first: () => void): Promise<ExitStatus | null> {
    for (let i = 0; i < 100; i++) {
      first();
      this.sweep();
      const s = this.spawned.has(pid) ? undefined : this.statuses.get(pid); // libuv's child: its exit event tells
      if (s) return s;
      await new Promise((r) => setTimeout(r, 10));
    }
    return null;
  }

  /** endLeftovers: children still alive at the end get SIGTERM, then SIGKILL after killTimeout ms; resolves once they are reaped. */
  async endLeftovers(killTimeout: number, log: (msg: string, fields?: LogFields) => void): Promise<void> {
    const alive = () => {
      this.sweep();
      return childrenOf(process.pid).filter((c) => c.state !== 'Z');
    };
    let left = alive();
    if (left.length === 0) return;
    log(`ending ${left.length} process(es) left behind: ${left.map((c) => c.pid).join(', ')}`, { event: 'supervisor.leftovers' });
    for (const c of left) kill(c.pid, 'SIGTERM');
    const deadline = Date.now() + killTimeout;
    while ((left = alive()).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const c of left) kill(c.pid, 'SIGKILL');
    while (alive().some((c) => left.some((l) => l.pid === c.pid))) await new Promise((r) => setTimeout(r, 10));
  }

  private remember(pid: number, status: ExitStatus): void {
    this.statuses.set(pid, status);
    if (this.statuses.size > STATUS_MEMORY) this.statuses.delete(this.statuses.keys().next().value!);
  }
}

function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}
