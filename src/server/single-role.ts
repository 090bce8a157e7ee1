/**
 * SingleRole: a process that serves itself, without workers. Its listeners
 * accept here (listener-set.ts), its UDP sockets are read here, and it is
 * the service's main process (control socket, pid file, sd_notify). The
 * worker's role (workers/worker-role.ts) extends it: a worker serves the
 * same way, with what its primary handed it.
 */
import type dgram from 'node:dgram';
import type net from 'node:net';
import { NotConfiguredError } from '../errors.js';
import { fdOf } from '../fds.js';
import type { Meta } from '../meta.js';
import type { Engine } from './engine.js';
import type { ListenerInfo, ListenerStatus } from './listener-set.js';
import type { MoveCounts } from './drain/options.js';
import type { ListenOptions, ManagedListener } from './listeners.js';
import type { Predecessor } from './predecessor.js';
import { announceReady } from './ready.js';
import type { Claimed } from './registry.js';
import type { Refusable, Role, RoleKind } from './role.js';
import { TicketKeys } from './ticket-keys.js';

export class SingleRole implements Role {
  readonly kind: RoleKind = 'single';
  readonly workerId: number | null = null;
  readonly workers: number = 0;
  readonly runsAppHooks: boolean = true;
  readonly ownsService: boolean = true;
  readonly who: string = 'this instance';

  constructor(protected readonly engine: Engine) {}

  refuse(what: Refusable): Error | null {
    // The syntax is right, the service is not made for it: not a usage error (the CLI exits 1, not 2).
    if (what === 'scale') return new NotConfiguredError('scale: this service runs without workers: set the workers option (or GRACEFUL_WORKERS) to scale it');
    return null;
  }

  /** generationAfter: a new instance is the next generation. */
  generationAfter(previous: number): number {
    return previous + 1;
  }

  inherit(): void {}

  /**
   * listen: the listener accepts here, on the socket inherited under its
   * name if bound where asked, else on one systemd passed, else bound fresh;
   * in runlevel 1 it only registers, and a new instance starts it in ready().
   */
  async listen(listener: ManagedListener, server: net.Server, _bind: ListenOptions, rotation: number): Promise<void> {
    const { registry, listeners, stats, log, lifecycle } = this.engine;
    const name = listener.name;
    registry.register(name, 'listener', () => (listener.isOpen
      ? { fd: listener.fd(), meta: { name, kind: 'listener', ...listener.address(), ...listener.tickets?.meta() } }
      : null));
    listeners.add(listener);
    stats.watch(name, server);
    let claimed = registry.claim(name, 'listener', log, (c) => c.source === 'systemd' || listener.matches(c.fd.meta) || this.moves(listener, c));
    if (claimed?.source === 'systemd') listener.activated = true;
    const ticketsFrom = claimed?.source === 'predecessor' ? claimed.fd.meta : undefined;
    if (claimed !== undefined && this.moves(listener, claimed)) {
      // Same port, another host: bound beside the predecessor's socket (see ManagedListener.moveFrom).
      log(`listener "${name}" moves from ${String(claimed.fd.meta.host)}:${String(claimed.fd.meta.port)} to ${listener.bindHost()}:${String(claimed.fd.meta.port)} on the same port`);
      listener.moveFrom(claimed.fd);
      claimed = undefined;
      void this.engine.predecessor?.exited().then(() => listener.retireMoved());
    }
    this.watchServer(server);
    listener.tickets = TicketKeys.attach(server, { name, rotation: this.ticketRotation(rotation), inherited: ticketsFrom, log,
      rotated: (rotations) => this.engine.emit('ticketkeys', { listener: name, rotations }) });
    this.claimExtras(listener, claimed);
    // A listener closed in runlevel 1 comes back on the port it had.
    const lastPort = this.engine.predecessor?.state[`port:${name}`];
    if (!claimed && typeof lastPort === 'number') listener.rememberPort(lastPort);
    if (lifecycle.level !== 3) {
      claimed?.fd.close(); // runlevel 1: the port must be free
      listener.dropExtras();
      listener.dropMoved();
    } else {
      await this.engine.startOrDefer(() => listener.start(claimed?.fd));
    }
  }

  /** moves: an inherited socket is this listener's on the same port but another host (a single instance only: a worker's come from its primary). */
  private moves(listener: ManagedListener, c: Claimed): boolean {
    return this.kind === 'single' && c.source === 'predecessor' && listener.overlaps(c.fd.meta);
  }

  /** ticketRotation: the rotation of the session-ticket keys of a listener here. */
  protected ticketRotation(rotation: number): number {
    return rotation;
  }

  /** watchServer: what else watches a listener's server (a worker reports to its primary). */
  protected watchServer(_server: net.Server): void {}

  /** claimExtras: further sockets of the listener (a worker's members of a group). */
  protected claimExtras(_listener: ManagedListener, _claimed: Claimed | undefined): void {}

  /** dgram: the socket is bound to the inherited one, else per bind (in a new instance, in ready()). */
  async dgram(name: string, socket: dgram.Socket, bind: { port?: number; address?: string }): Promise<void> {
    const { registry, log } = this.engine;
    let bound = false;
    registry.register(name, 'dgram', () => (bound ? { fd: fdOf(socket), meta: { name, kind: 'dgram', port: socket.address().port } } : null));
    const claimed = registry.claim(name, 'dgram', log);
    await this.engine.startOrDefer(() => new Promise<void>((resolve, reject) => {
      const fd = claimed?.fd.take();
      socket.once('error', reject);
      const done = () => {
        socket.off('error', reject);
        bound = true;
        resolve();
      };
      if (fd !== undefined) socket.bind({ fd }, done);
      else socket.bind({ port: bind.port ?? 0, address: bind.address }, done);
    }));
  }

  prepareReady(): void {}

  abandonReady(): void {}

  async startServing(_predecessor: Predecessor | null, startPending: () => Promise<void>): Promise<void> {
    await startPending();
  }

  announce(predecessor: Predecessor | null): Promise<void> {
    return announceReady(this.engine, predecessor);
  }

  async runTask(_name: string, args: string[], run: (args: string[]) => unknown): Promise<unknown> {
    return run(args);
  }

  async reopenElsewhere(): Promise<void> {}

  /** rotateTickets rotates the session-ticket keys of every TLS listener here; their names. */
  rotateTickets(): string[] {
    const names: string[] = [];
    for (const l of this.engine.listeners) {
      if (!l.tickets) continue;
      l.tickets.rotate();
      names.push(l.name);
    }
    return names;
  }

  async drain(): Promise<void> {}

  movedElsewhere(): MoveCounts | null {
    return null;
  }

  release(): void {}

  status(): Record<string, unknown> {
    return {};
  }

  async statusOfService(status: Record<string, unknown>): Promise<Record<string, unknown>> {
    return status;
  }

  listenerStatus(): ListenerStatus[] {
    return this.engine.listeners.status();
  }

  listenerInfo(): ListenerInfo[] {
    return this.engine.listeners.info();
  }

  heldAddress(): Meta | null {
    return null;
  }

  redeployParts(): { state(): Meta } {
    return { state: () => ({}) };
  }
}

