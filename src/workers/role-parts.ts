/**
 * The roles of a service with workers, the primary and the worker: loaded by
 * the first GracefulServer that plays one of them (src/lazy.ts), so that a
 * single instance, and the package's import, do not load the worker pool,
 * the held sockets and the link between the two.
 */
import { provide } from '../lazy.js';
import { PrimaryRole } from './primary-role.js';
import { WorkerRole } from './worker-role.js';

/** workerRoles: the two roles of a service with workers. */
export const workerRoles = { PrimaryRole, WorkerRole };
export type WorkerRoles = typeof workerRoles;

provide('workers/role-parts.js', workerRoles);
