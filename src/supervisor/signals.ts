/**
 * The signals of a supervisor: the ones it forwards to the current
 * generation (FORWARDED_SIGNALS), and SIGCHLD, on which it reaps.
 */

/** The signals forwarded to the current generation. */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];

/**
 * listenToSignals installs forward for each of FORWARDED_SIGNALS and child
 * for SIGCHLD on this process; the function it returns removes them.
 */
export function listenToSignals(forward: (sig: NodeJS.Signals) => void, child: () => void): () => void {
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const sig of [...FORWARDED_SIGNALS, 'SIGCHLD'] as NodeJS.Signals[]) {
    const handler = sig === 'SIGCHLD' ? child : () => forward(sig);
    handlers.set(sig, handler);
    process.on(sig, handler);
  }
  return () => {
    for (const [sig, handler] of handlers) process.off(sig, handler);
    handlers.clear();
  };
}
