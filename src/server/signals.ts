/**
 * Signals: SIGTERM and SIGINT stop gracefully (a second SIGINT forces the
 * exit), SIGHUP redeploys (or stops, or is ignored), SIGUSR1 and SIGUSR2 run
 * tasks the application named. Task names come from code or configuration,
 * never from a file others can write.
 */
export type SighupAction = 'redeploy' | 'stop' | 'ignore';

export interface SignalOptions {
  sighup?: SighupAction;
  sigusr1?: string;
  sigusr2?: string;
  /** A worker: SIGUSR1 and SIGUSR2 do nothing (its primary runs the tasks on it), rather than Node's default (the inspector, or death). */
  ignoreUser?: boolean;
}

export interface SignalActions {
  redeploy(): void;
  stop(): void;
  /** force ends the process now: a second SIGINT while stopping. */
  force(): void;
  runTask(name: string, signal: NodeJS.Signals): void;
  stopping(): boolean;
}

/** installSignals puts the handlers in place and returns a function that removes them. */
export function installSignals(options: SignalOptions, actions: SignalActions): () => void {
  const installed: [NodeJS.Signals, () => void][] = [];
  const on = (sig: NodeJS.Signals, fn: () => void) => {
    process.on(sig, fn);
    installed.push([sig, fn]);
  };
  const hup = options.sighup ?? 'redeploy';
  if (hup === 'redeploy') on('SIGHUP', () => actions.redeploy());
  else if (hup === 'stop') on('SIGHUP', () => actions.stop());
  else on('SIGHUP', () => undefined); // ignored, rather than the default of dying
  on('SIGTERM', () => actions.stop());
  on('SIGINT', () => (actions.stopping() ? actions.force() : actions.stop()));
  for (const [sig, task] of [['SIGUSR1', options.sigusr1], ['SIGUSR2', options.sigusr2]] as const) {
    if (options.ignoreUser) on(sig, () => undefined);
    else if (task) on(sig, () => actions.runTask(task, sig));
  }
  return () => {
    for (const [sig, fn] of installed.splice(0)) process.off(sig, fn);
  };
}

/** What the signal handlers of an instance act on (engine.ts). */
export interface InstanceSignals {
  /** A worker: SIGHUP, SIGUSR1 and SIGUSR2 are its primary's. */
  worker: boolean;
  options: SignalOptions;
  log(msg: string, fields?: { event: string; task?: string }): void;
  redeploy(): Promise<unknown>;
  /** The halt asked by a signal: halt(true) queues it. */
  halt(): Promise<void>;
  /** haltBySignal says whether a signal asked for a halt already; signalled() records that one did. */
  haltBySignal(): boolean;
  signalled(): void;
  /** Handed over or halting (draining), and not halted yet. */
  draining(): boolean;
  runTask(name: string): Promise<unknown>;
  formatResult(result: unknown): string;
}

/** installInstanceSignals: the signal handlers of an instance (a worker's stop on SIGTERM from its primary); returns what removes them. */
export function installInstanceSignals(s: InstanceSignals): () => void {
  const { log } = s;
  return installSignals(s.worker ? { ...s.options, sighup: 'ignore', ignoreUser: true } : s.options, {
    redeploy: () => {
      s.redeploy().catch((err: Error) => log(`SIGHUP: ${err.message}`));
    },
    stop: () => {
      const first = !s.haltBySignal();
      s.signalled();
      if (first && s.draining()) log('stop: this instance is draining already; a second SIGINT ends it now', { event: 'halt.already' });
      s.halt().catch((err: Error) => log(`stop: ${err.message}`));
    },
    force: () => {
      log('second SIGINT while stopping: exiting now', { event: 'halt.forced-exit' });
      process.exit(130);
    },
    runTask: (name, sig) => {
      s.runTask(name).then(
        (result) => log(`${sig}: task ${name}${result === undefined ? '' : `: ${s.formatResult(result)}`}`, { event: 'task', task: name }),
        (err: Error) => log(`${sig}: task ${name} failed: ${err.message}`, { event: 'task.failed', task: name }),
      );
    },
    // Only a halt a signal asked for makes the next SIGINT a forced exit (not a drain after a hand-over).
    stopping: () => s.haltBySignal(),
  });
}
