/**
 * Runlevels: telinit and the hooks run as a runlevel is entered. 0 halts
 * (the instance's stop), 1 drains and closes every listener (single user),
 * 3 listens again; 1 and 3 are transitions queued by the lifecycle, and a
 * role may refuse them (a primary refuses 1 and 3, a worker takes its
 * primary's). The hooks of a level run in registration order each time it
 * is entered, after the change, and at the start (ready.ts) and the halt.
 */
import { TerminatingError } from '../errors.js';
import type { Lifecycle } from './lifecycle.js';
import type { Listeners } from './listener-set.js';
import { checkRunlevel, type Runlevel } from './options.js';
import type { Role } from './role.js';

export type RunlevelHook = (level: Runlevel) => void | Promise<void>;

/** What the runlevels work with; the engine passes it in. */
export interface RunlevelParts {
  lifecycle: Lifecycle;
  role: Role;
  listeners: Listeners;
  log(msg: string): void;
  /** The 'runlevel' event. */
  entered(level: Runlevel): void;
  /** Stop accepting everywhere and drain; resolves with how many connections were forced closed. */
  drain(release: boolean): Promise<number>;
  /** The halt of telinit 0. */
  stop(): Promise<void>;
}

export class Runlevels {
  private readonly hooks = new Map<Runlevel, RunlevelHook[]>();

  constructor(private readonly parts: RunlevelParts) {}

  /** telinit: see GracefulServer.telinit(); a bad level or a refused transition rejects. */
  telinit(level: Runlevel | string | number): Promise<void> {
    const { lifecycle, role } = this.parts;
    let target: Runlevel;
    try {
      const refused = role.refuse('telinit', level);
      if (refused) throw refused;
      target = checkRunlevel(level);
      lifecycle.checkTelinit(target);
    } catch (err) {
      return Promise.reject(err);
    }
    return target === 0 ? this.parts.stop() : lifecycle.run(() => this.enter(target));
  }

  /** onRunlevel adds a hook of level (ERR_GRACEFUL_INVALID_RUNLEVEL for a level that is none). */
  onRunlevel(level: Runlevel, hook: RunlevelHook): void {
    const l = checkRunlevel(level);
    this.hooks.set(l, [...(this.hooks.get(l) ?? []), hook]);
  }

  /** runHooks runs the hooks of level, one after the other; the first that throws rejects. */
  async runHooks(level: Runlevel): Promise<void> {
    for (const hook of this.hooks.get(level) ?? []) await hook(level);
  }

  /** enter: telinit 1 or 3, a queued transition. */
  private async enter(target: 1 | 3): Promise<void> {
    const { lifecycle, listeners, log } = this.parts;
    if (lifecycle.state !== 'ready') throw new TerminatingError(`telinit ${target}: this instance is ${lifecycle.state}`);
    if (target === lifecycle.level) return;
    if (target === 3) {
      await listeners.startAll();
    } else {
      const forced = await this.parts.drain(true);
      if (forced > 0) log(`runlevel 1: closed ${forced} connection(s) still open at their deadline (the shutdown timeout, or upgradedTimeout for upgraded connections)`);
    }
    lifecycle.enter(target);
    log(`runlevel ${target}`);
    await this.runHooks(target);
    this.parts.entered(target);
  }
}
