/**
 * The worker side of a service with workers: which role this process has
 * (read once from the environment the primary set), and what a worker does
 * that a single instance does not. A worker takes its listeners and files
 * from the primary exactly as a new instance takes them from its
 * predecessor (predecessor.ts), serves, drains on SIGTERM, and halts when the
 * primary is gone (so no worker outlives its service).
 */
import { WORKER_COUNT_ENV, WORKER_ENV } from '../protocol.js';
import type { Predecessor } from '../server/predecessor.js';

/** Role: 'single' without workers; with them, one 'primary' and N 'worker' processes. */
export type Role = 'single' | 'primary' | 'worker';

export interface RoleInfo {
  role: Role;
  /** The worker's slot, 0..N-1 (stable across restarts of the slot); null outside a worker. */
  workerId: number | null;
  /** How many workers the service runs (0 without workers). */
  workers: number;
}

/** roleOf: a worker when the primary named its slot in the environment; else the primary when workers are configured. */
export function roleOf(configured: number, env: NodeJS.ProcessEnv = process.env): RoleInfo {
  const id = env[WORKER_ENV];
  if (id !== undefined && /^\d+$/.test(id)) {
    return { role: 'worker', workerId: Number(id), workers: Number(env[WORKER_COUNT_ENV] ?? configured) };
  }
  return { role: configured > 0 ? 'primary' : 'single', workerId: null, workers: configured };
}

/**
 * watchPrimary calls halt once the primary (the worker's parent, known as
 * its predecessor) has exited; the kernel says so through a pidfd, so
 * nothing polls and nothing keeps the process alive.
 */
export function watchPrimary(primary: Predecessor, halt: () => void): void {
  void primary.exited().then(halt);
}
