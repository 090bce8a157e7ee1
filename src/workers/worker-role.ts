/**
 * WorkerRole: a worker process of a service with workers. It serves as a
 * single instance does (it extends SingleRole), with what its primary handed
 * it as a new instance takes from its predecessor; besides, it owns its end
 * of the link to the primary (stats, tasks and the application's commands
 * run here on the primary's request), claims the go that says when its
 * generation accepts, reports its open connections, and halts once the
 * primary is gone. It takes its runlevel, redeploys and scale from the primary.
 * In a redeploy it takes connections over from the old workers its primary
 * names (its adopt socket, named in its ready answer), and an old worker
 * hands its own to the new worker its primary names over the link
 * (handover.ts).
 */
import type net from 'node:net';
import { HandoffFailedError, NotPrimaryError } from '../errors.js';
import type { Meta } from '../meta.js';
import { connectSender, type ConnectionSender } from '../server/conn-handover.js';
import type { Engine } from '../server/engine.js';
import type { ManagedListener } from '../server/listeners.js';
import { checkRunlevel, type Runlevel } from '../server/options.js';
import type { Predecessor } from '../server/predecessor.js';
import { openAdopter } from '../server/ready.js';
import type { Claimed } from '../server/registry.js';
import type { Refusable, RoleKind } from '../server/role.js';
import { SingleRole } from '../server/single-role.js';
import { GO_NAME, waitForGo } from './go.js';
import { adoptFrom } from './handover.js';
import { pidGone } from '../server/pid-gone.js';
import { extraName } from './listener-groups.js';
import { watchPrimary, type RoleInfo } from './worker.js';
import { LINK_NAME, serveLink, type WorkerLink } from './worker-link.js';

/** LinkCommandContext: what an application command run on the primary's request gets (as the control socket's context). */
export interface LinkCommandContext {
  name: string;
  args: string[];
  json: boolean;
  signal: AbortSignal;
  peer: never;
  write(line: string): boolean;
  event(event: unknown, text: string): boolean;
  drain(): Promise<void>;
  handover(): undefined;
}

/** runCommand runs the worker's application command name (as registered with command()). */
export type RunCommand = (name: string, ctx: LinkCommandContext) => Promise<unknown>;

export class WorkerRole extends SingleRole {
  override readonly kind: RoleKind = 'worker';
  override readonly workerId: number;
  override readonly workers: number;
  override readonly ownsService = false;
  override readonly who: string;
  /** The worker's end of the link to its primary. */
  private link: WorkerLink | null = null;
  /** The go of a starting generation: readable once the primary says accept. */
  private go: Claimed | undefined;
  /** In an old worker, during a redeploy: the new worker its connections go to. */
  private sender: ConnectionSender | null = null;

  constructor(engine: Engine, info: RoleInfo, private readonly runCommand: RunCommand) {
    super(engine);
    this.workerId = info.workerId!;
    this.workers = info.workers;
    this.who = `worker ${this.workerId} (pid ${process.pid})`;
  }

  override refuse(what: Refusable, level?: Runlevel | string | number): Error | null {
    const primary = `the primary (pid ${process.ppid})`;
    // A worker's telinit(0) halts that worker alone, so that the README's start pattern
    // (`catch { await app.telinit(0); process.exit(1) }`) works unchanged in a worker;
    // its runlevel 1 or 3 is the primary's to set.
    // A level that is no runlevel is refused as such first, as in every role (it throws).
    if (what === 'telinit' && checkRunlevel(level!) === 0) return null;
    if (what === 'telinit') return new NotPrimaryError(`telinit ${level}: worker ${this.workerId} takes its runlevel from ${primary}: run telinit there (its control socket)`);
    if (what === 'redeploy') return new NotPrimaryError(`redeploy(): worker ${this.workerId} cannot redeploy the service: ${primary} does, on SIGHUP or its control command redeploy`);
    return new NotPrimaryError(`scale(): worker ${this.workerId} cannot scale the service: ${primary} does (its control command scale)`);
  }

  /** generationAfter: a worker belongs to its primary's generation. */
  override generationAfter(previous: number): number {
    return previous;
  }

  /** A worker serves with its primary's keys, as its siblings do: rotating alone, it would differ from them. */
  protected override ticketRotation(): number {
    return 0;
  }

  /** The primary learns of the worker's open connections (to say what a crash lost), and what its drains did with them. */
  protected override watchServer(server: net.Server): void {
    const report = () => this.link?.report(() => ({ connections: this.engine.listeners.connectionCount(), listeners: this.engine.stats.own(), moved: this.engine.listeners.moveCounts() }));
    server.on('connection', (socket: net.Socket) => {
      report();
      socket.once('close', report);
    });
    server.on('request', report);
    server.on('stream', report);
  }

  /** A worker may accept on several members of the listener's group. */
  protected override claimExtras(listener: ManagedListener, claimed: Claimed | undefined): void {
    for (let k = 1; claimed; k++) {
      const extra = this.engine.registry.claim(extraName(listener.name, k), 'listener', this.engine.log);
      if (!extra) break;
      listener.addExtra(extra.fd);
    }
  }

  /** prepareReady claims the go (a worker of a starting generation accepts only once its primary says so) and serves the link. */
  override prepareReady(): void {
    const { registry, log } = this.engine;
    this.go = registry.claim(GO_NAME, 'fd', log);
    const link = registry.claim(LINK_NAME, 'fd', log);
    if (link) this.serveLink(link.fd.take());
  }

  override abandonReady(): void {
    this.go?.fd.close();
  }

  override async startServing(predecessor: Predecessor | null, startPending: () => Promise<void>): Promise<void> {
    if (this.go && predecessor) {
      const told = await predecessor.ready(this.adopt(predecessor));
      if (told || !(await waitForGo(this.go.fd.take()))) {
        throw new HandoffFailedError(`ready(): the primary (pid ${predecessor.pid}) called off the start of worker ${this.workerId}'s generation (another worker failed, or it is gone): this worker accepted nothing; exit this process`);
      }
    }
    await startPending();
  }

  /**
   * adopt: in a generation a redeploy starts, opens the socket where the old
   * workers its primary named hand their connections over, and returns what
   * the ready answer says of it (nothing otherwise). It closes once the old
   * primary has exited, or every old worker named came and went.
   */
  private adopt(predecessor: Predecessor): Meta {
    const from = adoptFrom(predecessor.state);
    return from ? openAdopter(this.engine, from.parent, pidGone(from.parent), from) : {};
  }

  /**
   * handOver: an old worker's primary named the new worker its connections
   * go to: the drain hands them there from now on (the listeners with
   * handOver, and what the application hands over). False when it cannot be
   * reached: the connections then drain here (ERR_GRACEFUL_HANDOVER_FAILED in the log).
   */
  private async handOver(target: Record<string, unknown>): Promise<boolean> {
    const { listeners, log } = this.engine;
    if (this.sender) return true;
    const sender = await connectSender(target as Meta, Number(target.pid), listeners.handingOver(), log, listeners.handingOverSockets());
    if (!sender) return false;
    this.sender = sender;
    listeners.setMover(sender);
    return true;
  }

  /** announce: a worker serves as long as its primary runs, and no longer. */
  override async announce(predecessor: Predecessor | null): Promise<void> {
    if (!predecessor) return;
    await predecessor.ready();
    watchPrimary(predecessor, () => {
      this.engine.log(`worker ${this.workerId}: the primary (pid ${predecessor.pid}) is gone: halting`, { event: 'worker.orphaned' });
      this.engine.stop(true).catch((err: Error) => this.engine.log(`stop: ${err.message}`));
    });
  }

  /** rotateTickets: none here: a worker serves with its primary's keys, rotated there. */
  override rotateTickets(): string[] {
    return [];
  }

  override release(): void {
    this.link?.close();
    const sender = this.sender;
    if (!sender) return;
    sender.close();
    if (sender.error) this.engine.log(sender.error.message, { event: 'redeploy.handover-stopped', code: (sender.error as { code?: string }).code, passed: sender.passed });
  }

  override heldAddress(): Meta | null {
    return null;
  }

  /** serveLink: a worker answers its primary's stats, task and command requests on the link. */
  private serveLink(fd: number): void {
    const engine = this.engine;
    this.link = serveLink(fd, {
      stats: () => ({ connections: engine.listeners.connectionCount(), requests: engine.listeners.requestCount(), rss: process.memoryUsage().rss }),
      task: (name, args) => engine.runTask(name, args),
      handOver: (target) => this.handOver(target),
      run: async (name, args, json, peer, write, drain, signal) => this.runCommand(name, {
        name, args, json, signal,
        peer: (peer ?? { pid: 0, uid: 0, gid: 0 }) as never,
        write,
        event: (_e, text) => write(text),
        drain,
        handover: () => undefined,
      }),
    }, (msg) => engine.log(msg));
  }
}
