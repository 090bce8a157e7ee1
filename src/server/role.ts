/**
 * Role: what this process is to its service, behind one interface, so that
 * nothing else asks which role it is. Three implementations:
 *   single   (server/single-role.ts)  serves itself, without workers;
 *   primary  (workers/primary-role.ts) holds the sockets, runs the workers, never accepts;
 *   worker   (workers/worker-role.ts) serves through what its primary handed it.
 * Each owns the state and the descriptors of its role; the engine (engine.ts)
 * and the ready protocol (ready.ts) call it at the points where roles differ.
 */
import type dgram from 'node:dgram';
import type net from 'node:net';
import type { Meta } from '../meta.js';
import type { ListenerInfo, ListenerStatus } from './listener-set.js';
import type { MoveCounts } from './drain/options.js';
import type { ListenOptions, ManagedListener } from './listeners.js';
import type { Runlevel } from './options.js';
import type { Predecessor } from './predecessor.js';
import type { RedeployParts } from './redeploy.js';

export type RoleKind = 'single' | 'primary' | 'worker';

/** The transitions a role may refuse. */
export type Refusable = 'telinit' | 'redeploy' | 'scale';

export interface Role {
  readonly kind: RoleKind;
  /** The worker's slot, 0..N-1; null outside a worker. */
  readonly workerId: number | null;
  /** How many workers the service runs (0 without workers). */
  readonly workers: number;
  /** The application's start, ready and started hooks run in this process (not in a primary: in its workers). */
  readonly runsAppHooks: boolean;
  /** This process is the service's main one (not a worker): it has the control socket, the pid file, sd_notify. */
  readonly ownsService: boolean;
  /** Who does not start when a ready hook fails, for the error message. */
  readonly who: string;

  /** refuse: the error a transition is refused with in this role (level: telinit's target), or null. */
  refuse(what: Refusable, level?: Runlevel | string | number): Error | null;
  /** generationAfter: this process's generation, given its predecessor's. */
  generationAfter(previous: number): number;
  /** inherit: what the predecessor's state tells this role besides the descriptors. */
  inherit(state: Meta): void;

  /** listen: the role's part of GracefulServer.listen() (rotation: the ticket key rotation asked). */
  listen(listener: ManagedListener, server: net.Server, bind: ListenOptions, rotation: number): Promise<void>;
  /** dgram: the role's part of GracefulServer.dgram(). */
  dgram(name: string, socket: dgram.Socket, bind: { port?: number; address?: string }): Promise<void>;

  /** prepareReady: first step of ready(), after init (a worker claims its link and its go). */
  prepareReady(): void;
  /** abandonReady: ready() failed: let go of what prepareReady took. */
  abandonReady(): void;
  /** startServing: start accepting (startPending starts what waited for ready()); rejects when the start fails. */
  startServing(predecessor: Predecessor | null, startPending: () => Promise<void>): Promise<void>;
  /** announce: the instance is ready; tell the predecessor (and the service manager). */
  announce(predecessor: Predecessor | null): Promise<void>;

  /** runTask: run a task where its state is (run: here). */
  runTask(name: string, args: string[], run: (args: string[]) => unknown): Promise<unknown>;
  /** reopenElsewhere: the files re-opened here; re-open them where else they are open (every worker). */
  reopenElsewhere(): Promise<void>;
  /** rotateTickets: rotate the TLS session-ticket keys this role serves with (none in a worker: its primary's); their names. */
  rotateTickets(): string[];
  /** drain: besides the listeners here, what drains at a halt or runlevel 1 (the workers). */
  drain(): Promise<void>;
  /** movedElsewhere: what the drains of the service's other processes this role runs (a primary: its workers) did with their connections; null in the others. */
  movedElsewhere(): MoveCounts | null;
  /** release: at the halt, let go of what the role holds. */
  release(): void;

  /** status: the role's fields of status(). */
  status(): Record<string, unknown>;
  /** statusOfService: status with what other processes of the service say. */
  statusOfService(status: Record<string, unknown>): Promise<Record<string, unknown>>;
  listenerStatus(): ListenerStatus[];
  listenerInfo(): ListenerInfo[];
  /** heldAddress: where a socket held for the workers is bound (the primary), else null. */
  heldAddress(name: string): Meta | null;
  /** redeployParts: what a redeploy does differently in this role (and the state handed over). */
  redeployParts(): Pick<RedeployParts, 'takeBack' | 'retire' | 'refill' | 'handingOver'> & { state(): Meta };
}
