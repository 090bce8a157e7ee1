/**
 * The fan-out of one operation to every worker of a pool that is ready,
 * over each worker's link: the answers gathered by slot, a result or the
 * error of a worker that failed it, ended first, or does not respond.
 */
import type { Slot } from './slots.js';
import type { PrimaryLink } from './worker-link.js';

/** One worker's answer: its slot, its pid, and a result or an error. */
export interface WorkerAnswerOf { id: number; pid: number | null; result?: unknown; error?: { code: string; message: string } }

/**
 * askWorkers sends one operation to every worker that is ready and gathers
 * the answers by slot: a result, or the error of a worker that failed it or
 * ended first. onLine gets each output line with its slot. An unresponsive
 * worker is not asked (it would be waited on; the liveness check restarts it).
 */
export function askWorkers(slots: readonly Slot[], op: string, fields: Record<string, unknown>,
  onLine?: (id: number, line: string, link: PrimaryLink) => void, signal?: AbortSignal): Promise<WorkerAnswerOf[]> {
  const ready = slots.filter((s) => (s.state === 'ready' || s.state === 'unresponsive') && s.link !== null);
  return Promise.all(ready.map(async (s) => {
    const pid = s.child?.pid ?? null;
    if (s.state === 'unresponsive') {
      const since = new Date(s.silentSince).toISOString();
      return { id: s.id, pid, error: { code: 'ERR_GRACEFUL_WORKER_FAILED', message: `worker ${s.id} (pid ${pid}) does not respond (silent since ${since})` } };
    }
    try {
      const link = s.link!;
      const result = await link.request(op, fields, onLine && ((line) => onLine(s.id, line, link)), signal);
      const open = (result as { connections?: unknown } | null)?.connections;
      if (op === 'stats' && typeof open === 'number') link.connections = open;
      return { id: s.id, pid, result };
    } catch (err) {
      const e = err as { code?: string; message?: string };
      return { id: s.id, pid, error: { code: e.code ?? 'ERR_GRACEFUL_COMMAND_FAILED', message: e.message ?? String(err) } };
    }
  }));
}
