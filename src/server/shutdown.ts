/**
 * Shutdown: what a halt does, in order. From 'starting' or 'ready' (telinit
 * 0, SIGTERM): abandon a redeploy under way, drain, then finish; after a
 * committed hand-over the redeploy drains and calls finish() itself. finish()
 * runs the stop and runlevel-0 hooks, closes the control socket, removes the
 * pid file (if it names this process), runs the terminate hooks, and reaches
 * 'halted'.
 */
import type { ControlPort } from './control-port.js';
import type { LogFields } from '../log.js';
import { removePidFile } from '../pidfile.js';
import { notify } from '../systemd.js';
import type { Hooks } from './hooks.js';
import type { Lifecycle } from './lifecycle.js';
import type { Listeners } from './listener-set.js';
import type { Config, Runlevel } from './options.js';
import type { Predecessor } from './predecessor.js';

/** Halted: how a halt ended, for the facade's last steps (events, process exit). */
export interface Halted {
  forced: number;
  handedOver: boolean;
  bySignal: boolean;
}

export interface ShutdownParts {
  lifecycle: Lifecycle;
  config: Config;
  log(msg: string, fields?: LogFields): void;
  listeners: Listeners;
  hooks: Hooks;
  runLevelHooks(level: Runlevel): Promise<void>;
  control(): ControlPort | null;
  predecessor(): Predecessor | null;
  /** The application hears that a drain starts (open connections). */
  draining(open: number): void;
  /** A worker keeps UNIX socket files at its halt: they are its primary's, and serve the next generation. */
  keepSocketFiles?: boolean;
  /** With workers: stop every worker (each drains) and resolve once all exited. */
  workers?(): Promise<void>;
  /** The process-wide parts let go (signal handlers, the keep-alive timer), before the terminate hooks. */
  release(): void;
  /** Last, once 'halted': events, the halted promise, the exit. */
  halted(how: Halted): void;
}

export class Shutdown {
  constructor(private readonly parts: ShutdownParts) {}

  /** halt: starting | ready -> halting -> halted. A redeploy under way is abandoned (its new instance killed). */
  async halt(bySignal: boolean): Promise<void> {
    const { lifecycle, listeners, config } = this.parts;
    const pending = lifecycle.redeploying;
    if (pending) {
      // Stopping wins over a redeploy under way: the new instance is killed (as tableflip does).
      pending.abort.abort();
      await pending.settled;
    }
    this.parts.predecessor()?.abandon(); // a new instance halting before ready: the predecessor learns it failed
    lifecycle.to('halting');
    notify('STOPPING=1');
    this.parts.draining(listeners.connectionCount());
    const [forced] = await Promise.all([listeners.drain(!this.parts.keepSocketFiles, config.idleGrace, config.shutdownTimeout), this.parts.workers?.()]);
    await this.finish({ handedOver: false, forced, bySignal });
  }

  /** finish: after the drain (of a halt, or of a hand-over once committed), the rest, then halted. */
  async finish(how: Halted): Promise<void> {
    const { lifecycle, config, log, hooks } = this.parts;
    if (lifecycle.state !== 'halting') lifecycle.to('halting');
    // The stop hooks (and the control socket's last replies) get a shutdown
    // timeout of their own, counted from the end of the drain: the drain may
    // last longer than the shutdown timeout (upgradedTimeout), and a deadline
    // counted from its start would give them a signal aborted from the first moment.
    const deadline = Date.now() + config.shutdownTimeout;
    if (how.forced > 0) log(`halt: closed ${how.forced} connection(s) still open at their deadline (the shutdown timeout, or upgradedTimeout for upgraded connections)`, { event: 'halt.forced', forced: how.forced });
    this.parts.listeners.dropSpares();
    const stopped = await hooks.runStop(deadline);
    if (stopped === 'overran') log(`halt: stop hooks still running at the shutdown timeout (${config.shutdownTimeout} ms): going on without them`, { event: 'halt.stop-overran' });
    else if (stopped instanceof Error) log(`halt: a stop hook failed: ${stopped.message}`, { event: 'halt.stop-failed' });
    lifecycle.enter(0);
    await this.parts.runLevelHooks(0).catch((err: Error) => log(`halt: a runlevel 0 hook failed: ${err.message}`));
    await this.parts.control()?.settle(deadline);
    // The socket file goes only with the instance that owns it: a new instance
    // that halts before it was ever ready (its start failed) inherited the
    // control socket from its predecessor, which serves on and keeps it.
    const owner = lifecycle.wasReady || this.parts.predecessor() === null;
    this.parts.control()?.close(!how.handedOver && owner);
    this.parts.release();
    if (config.pidFile) {
      try {
        removePidFile(config.pidFile);
      } catch (err) {
        log(`halt: could not remove the pid file ${config.pidFile}: ${(err as Error).message}`);
      }
    }
    await hooks.run('terminate').catch((err: Error) => log(`halt: a terminate hook failed: ${err.message}`));
    lifecycle.to('halted');
    this.parts.halted(how);
  }
}
