/**
 * What the CLI says while a redeploy waits: every few seconds how long the
 * new instance has been starting and when the server gives up on it, and on
 * Ctrl-C that the redeploy goes on in the server, and how to follow it.
 */
import type { ControlEvent } from '../control/client.js';

/** How often the wait is reported, in ms. */
export const WAIT_REPORT_MS = 5000;

export interface RedeployWatch {
  /** event: feed every progress event of the redeploy. */
  event(e: ControlEvent): void;
  /** stop: the redeploy answered (or the connection ended); no more lines. */
  stop(): void;
}

/**
 * watchRedeploy reports the wait for the new instance to out, and, with
 * socket set, answers Ctrl-C with where to follow the redeploy, then exits
 * with 130 (the redeploy is the server's: leaving does not stop it).
 */
export function watchRedeploy(out: (line: string) => void, socket?: string, everyMs = WAIT_REPORT_MS): RedeployWatch {
  let timer: NodeJS.Timeout | undefined;
  let pid: number | null = null;
  const onInterrupt = () => {
    out(`interrupted: the redeploy${pid === null ? '' : ` (new instance pid ${pid})`} goes on in the server; ` +
      `follow it with: graceful-restart status ${socket}`);
    // Exit once what was written reached the pipe (a pipe's writes are asynchronous).
    process.stdout.write('', () => process.exit(130));
  };
  if (socket !== undefined) process.once('SIGINT', onInterrupt);
  const stopTicker = () => {
    clearInterval(timer);
    timer = undefined;
  };
  return {
    event(e) {
      if (e.event === 'spawned') {
        pid = typeof e.pid === 'number' ? e.pid : null;
        const since = Date.now() - (typeof e.ms === 'number' ? e.ms : 0);
        const limit = typeof e.timeoutMs === 'number' ? `; the server gives up at ${Math.round(e.timeoutMs / 1000)} s` : '';
        stopTicker();
        timer = setInterval(() => out(`waiting for pid ${pid} to be ready: ${Math.round((Date.now() - since) / 1000)} s so far${limit}`), everyMs);
        timer.unref();
      } else if (e.event !== 'worker') {
        stopTicker(); // ready, draining, done or failed: the wait for readiness is over
      }
    },
    stop() {
      stopTicker();
      if (socket !== undefined) process.removeListener('SIGINT', onInterrupt);
    },
  };
}
