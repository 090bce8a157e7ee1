/**
 * Connection hand-over between generations of workers, the same as a
 * single instance's (server/adopt.ts, server/conn-handover.ts) between
 * processes that are not parent and child:
 *
 * 1. the old primary's end record names its workers by slot (WORKER_PIDS_FIELD);
 * 2. the new primary tells each new worker, in its state, which of them may
 *    hand it connections (adoptFields: old worker i goes to new worker
 *    i mod n) and their parent, the old primary;
 * 3. each new worker opens its adopt socket before it answers ready, checked
 *    with SO_PEERCRED (those pids only, each once, children of that parent),
 *    and names it in its ready answer to its primary;
 * 4. the new primary, once its generation is ready, gives the old primary the
 *    list in its own ready answer (workersAnswer);
 * 5. the old primary, before it tells each old worker to stop (SIGTERM),
 *    tells it over its link which new worker's socket to hand its
 *    connections to (targetFor), and the old worker's drain hands over as a
 *    single instance's does.
 *
 * A rolling redeploy and a scale do not hand over: their old workers drain.
 */
import type { Meta } from '../meta.js';
import { ADOPT_FIELD, ADOPT_LISTENERS_FIELD, ADOPT_SOCKETS_FIELD } from '../server/conn-handover.js';
import type { AdoptFrom } from '../server/ready.js';

/** Old primary's end record: its workers' pids by slot (a JSON array, null for a slot without one). */
export const WORKER_PIDS_FIELD = 'workerPids';
/** A new worker's state: the old workers that may hand it connections (comma-separated pids), and their parent. */
export const ADOPT_PEERS_FIELD = 'adoptPeers';
export const ADOPT_PARENT_FIELD = 'adoptParent';
/** A new primary's ready answer: its workers' adopt sockets (a JSON array of WorkerAdopt). */
export const ADOPT_WORKERS_FIELD = 'adoptWorkers';

/** WorkerAdopt: where one new worker takes connections over (the adopt fields of its ready answer). */
export interface WorkerAdopt {
  slot: number;
  pid: number;
  answer: Meta;
}

/** workerPids reads WORKER_PIDS_FIELD of a predecessor's state; [] when it is missing or broken. */
export function workerPids(state: Meta): (number | null)[] {
  try {
    const pids = JSON.parse(String(state[WORKER_PIDS_FIELD] ?? '[]')) as unknown;
    return Array.isArray(pids) ? pids.map((p) => (Number.isInteger(p) && (p as number) > 0 ? p as number : null)) : [];
  } catch {
    return [];
  }
}

/**
 * adoptFields: what the new worker of slot (of count) is told of the old
 * workers that hand it connections: those of the old slots i with
 * i mod count === slot, children of the old primary (parent). Empty when
 * the old primary named none for it.
 */
export function adoptFields(state: Meta, parent: number, slot: number, count: number): Meta {
  const peers = workerPids(state).filter((pid, i): pid is number => pid !== null && i % count === slot);
  return peers.length === 0 ? {} : { [ADOPT_PEERS_FIELD]: peers.join(','), [ADOPT_PARENT_FIELD]: parent };
}

/** adoptFrom: in a new worker, who may hand it connections (from its state), or null. */
export function adoptFrom(state: Meta): AdoptFrom | null {
  const peers = String(state[ADOPT_PEERS_FIELD] ?? '').split(',').map(Number).filter((p) => Number.isInteger(p) && p > 0);
  const parent = Number(state[ADOPT_PARENT_FIELD]);
  return peers.length > 0 && Number.isInteger(parent) && parent > 0 ? { peers, parent } : null;
}

/** adoptPart: the adopt fields of a worker's ready answer (none when it takes nothing over). */
export function adoptPart(answer: Meta | undefined): Meta | null {
  if (typeof answer?.[ADOPT_FIELD] !== 'string') return null;
  return { [ADOPT_FIELD]: answer[ADOPT_FIELD], [ADOPT_LISTENERS_FIELD]: answer[ADOPT_LISTENERS_FIELD] ?? '', [ADOPT_SOCKETS_FIELD]: answer[ADOPT_SOCKETS_FIELD] ?? '' };
}

/** workersAnswer: the new primary's ready answer, naming each new worker's adopt socket. */
export function workersAnswer(list: WorkerAdopt[]): Meta {
  return { [ADOPT_WORKERS_FIELD]: JSON.stringify(list) };
}

/**
 * targetFor: the new worker the old worker of slot hands its connections
 * to (i mod n over the new generation's slots, as adoptFields counted),
 * from the new primary's ready answer; null when it named none for it.
 */
export function targetFor(answer: Meta | undefined, slot: number): WorkerAdopt | null {
  let list: unknown;
  try {
    list = JSON.parse(String(answer?.[ADOPT_WORKERS_FIELD] ?? '[]'));
  } catch {
    return null;
  }
  if (!Array.isArray(list) || list.length === 0) return null;
  const count = Math.max(...list.map((w: Partial<WorkerAdopt>) => Number(w?.slot) + 1));
  const found = list.find((w: Partial<WorkerAdopt>) => w?.slot === slot % count) as Partial<WorkerAdopt> | undefined;
  const part = adoptPart(found?.answer as Meta | undefined);
  return found && Number.isInteger(found.pid) && part ? { slot: found.slot!, pid: found.pid!, answer: part } : null;
}

