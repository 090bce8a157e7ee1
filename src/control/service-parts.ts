/**
 * The parts a GracefulServer is built from: the engine, the single
 * instance's role, the control socket of a service, and what the facade's
 * methods use beside them (the roles with workers are workers/role-parts.ts).
 * They are most of the package's code, so they load on the first
 * construction of a GracefulServer (src/lazy.ts), not at the package's import.
 * The module sits in the control layer as the lowest one that may import
 * server/, workers/ and control/.
 */
import { provide } from '../lazy.js';
import { Engine } from '../server/engine.js';
import { becomeReady } from '../server/ready.js';
import { SingleRole } from '../server/single-role.js';
import { isSocket } from '../server/socket-handover.js';
import { webSocketBoundary } from '../server/ws-boundary.js';
import { roleOf } from '../workers/worker.js';
import { ServiceControl } from './service-control.js';
import { formatCommandResult } from './render.js';

/** serviceParts: what a GracefulServer builds itself from. */
export const serviceParts = {
  Engine, becomeReady, SingleRole, isSocket, webSocketBoundary, roleOf, ServiceControl, formatCommandResult,
};
export type ServiceParts = typeof serviceParts;

provide('control/service-parts.js', serviceParts);
