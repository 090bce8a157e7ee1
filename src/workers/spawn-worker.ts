/**
 * Starting one worker process: the hand-off of its descriptors (its
 * listeners and files, its end of the link, and in a starting generation its
 * go signal) through the hand-off core, as a redeploy hands them to a new
 * instance; and a failure told as the worker's own.
 */
import type { ChildProcess } from 'node:child_process';
import { HandoffFailedError, RedeployFailedError, WorkerFailedError, type RedeployFailure } from '../errors.js';
import type { Meta } from '../meta.js';
import type { OutgoingFd } from '../handoff/connection.js';
import type { OwnedFd } from '../owned-fd.js';
import { WORKER_COUNT_ENV, WORKER_ENV } from '../protocol.js';
import { startSuccessor, type SpawnFunction } from '../server/successor.js';
import { GO_NAME } from './go.js';
import { socketPair } from './socket-pair.js';
import { LINK_NAME } from './worker-link.js';

export interface WorkerSpawn {
  /** The worker's slot, and how many slots its generation has. */
  id: number;
  count: number;
  /** Its generation, read when a failure is told. */
  generation(): number;
  /** Its listeners and files, read when it connects (never the control socket). */
  descriptors(): OutgoingFd[];
  /** State sent to it (runlevel, generation); its slot is added as workerId. */
  state: Meta;
  timeoutMs: number;
  spawn?: SpawnFunction;
  /** Aborting kills it and fails the start (reason 'aborted'). */
  signal?: AbortSignal;
  /** The go signal's worker end (a copy is sent; the caller keeps and closes its own). */
  go?: OwnedFd;
}

/**
 * spawnWorker spawns the worker of one slot and resolves once it is ready,
 * with its process, the primary's end of its link (the caller owns it) and
 * its ready answer.
 * It rejects with WorkerFailedError "worker <id> of generation <n> ...",
 * whose cause is the hand-off's RedeployFailedError; nothing stays open then.
 */
export async function spawnWorker(w: WorkerSpawn): Promise<{ child: ChildProcess; link: OwnedFd; answer?: Meta }> {
  const link = socketPair(LINK_NAME);
  try {
    const started = await startSuccessor({
      descriptors: () => [
        ...w.descriptors(),
        { fd: link.read.fd, meta: { name: LINK_NAME, kind: 'fd' } },
        ...(w.go?.open ? [{ fd: w.go.fd, meta: { name: GO_NAME, kind: 'fd' } }] : []),
      ],
      state: { ...w.state, workerId: w.id },
      timeoutMs: w.timeoutMs,
      spawn: w.spawn,
      signal: w.signal,
      env: { [WORKER_ENV]: String(w.id), [WORKER_COUNT_ENV]: String(w.count), NOTIFY_SOCKET: undefined },
    });
    return { child: started.child, link: link.write, answer: started.answer };
  } catch (err) {
    link.write.close();
    throw new WorkerFailedError(`worker ${w.id} of generation ${w.generation()}${workerFailure(err)}`, { cause: err });
  } finally {
    link.read.close(); // the worker has its own copy
  }
}

/**
 * workerFailure: a redeploy's failure message, reworded for a worker
 * (" (pid N) exited with code 1 before it was ready: <its first error>" or ": <what>").
 * A worker that exited or closed its hand-off is told in one line with its
 * own first error (its reported reason, or its first error on stderr), never
 * its last lines: those are what its halt logged, and this message is nested
 * again by the old primary.
 */
export function workerFailure(err: unknown): string {
  const e = err as RedeployFailedError;
  const f = e?.failure as RedeployFailure | undefined;
  if ((f?.reason === 'exit' || (f?.reason === 'handoff' && e.cause instanceof HandoffFailedError)) && f.pid !== undefined) {
    const how = f.reason === 'handoff' ? 'closed its hand-off' : f.signal ? `was killed by ${f.signal}` : `exited with code ${f.exitCode}`;
    return ` (pid ${f.pid}) ${how} before it was ready${f.said ? `: ${f.said}` : ''}`;
  }
  const what = ((err as Error | undefined)?.message ?? String(err)).replace(/^the new instance/, '').replace(/;( it was killed( \(SIGKILL\))? and)? this instance goes on serving$/, '');
  return what.startsWith(' ') ? what : `: ${what}`;
}

/**
 * firstFailure: of the settled starts of workers that start together, the
 * first that failed by itself, else (all failed because one was aborted) the
 * first that failed; undefined when none did. A start aborted because
 * another failed first is not the failure to report.
 */
export function firstFailure(results: PromiseSettledResult<unknown>[]): PromiseRejectedResult | undefined {
  return results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && !(r.reason instanceof WorkerFailedError && r.reason.cause instanceof RedeployFailedError && r.reason.cause.failure.reason === 'aborted'))
    ?? results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
}
