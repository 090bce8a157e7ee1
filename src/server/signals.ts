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
