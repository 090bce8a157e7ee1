/**
 * Redeploy: the old instance's side of replacing itself. Spawn the new
 * instance and hand it every descriptor (successor.ts), then hand over: stop
 * accepting and drain while watching the new one for the take-back window.
 * If it dies in the window, take back (listen again on the duplicates kept)
 * and fail the redeploy; once the window has passed, commit: resolve the
 * redeploy and halt. The Lifecycle says what may happen when.
 */
import fs from 'node:fs';
import { RedeployFailedError } from '../errors.js';
import type { Meta } from '../meta.js';
import { closeAll, type OutgoingFd } from '../handoff/connection.js';
import type { ControlPort } from './control-port.js';
import type { LogFields } from '../log.js';
import { monotonicUsec, notify } from '../systemd.js';
import { COMMIT_MARK, COMMITTED_MARK, EXIT_FIELD, SUPERVISOR_ENV } from '../protocol.js';
import { receiveFrom, sendTo } from '../handoff/client.js';
import type { Lifecycle, RedeployTicket } from './lifecycle.js';
import type { MoveCounts } from './drain/options.js';
import type { Listeners } from './listener-set.js';
import type { Config } from './options.js';
import { startSuccessor, type Successor, type SuccessorLink, type SuccessorOptions } from './successor.js';
import { connectSender, type ConnectionSender } from './conn-handover.js';
import type { ReopenRelay } from './reopen-relay.js';

/**
 * RedeployEvent: progress of a redeploy, for the control socket and the CLI.
 * 'predecessor-committed': the instance this one replaced, still in its
 * take-back window, ended it when asked, after ms (of the redeploy), so this
 * redeploy did not wait for its exit.
 */
export type RedeployEvent =
  | { type: 'predecessor-committed'; predecessor: number; ms: number }
  | { type: 'spawned'; pid: number; ms: number; timeoutMs: number }
  | { type: 'ready'; pid: number; ms: number }
  | { type: 'worker'; pid: number; worker: number; ms: number }
  | { type: 'draining'; pid: number; connections: number; ms: number }
  | { type: 'done'; pid: number; forced: number; handedOver: number; drained: number; ms: number }
  | { type: 'failed'; error: RedeployFailedError; ms: number };

export interface RedeployResult {
  /** pid of the new instance, now serving. */
  pid: number;
  /** ms from the spawn to its readiness. */
  readyMs: number;
}

/** What a redeploy works with; the facade passes it in. */
export interface RedeployParts {
  lifecycle: Lifecycle;
  config: Config;
  log(msg: string, fields?: LogFields): void;
  /** Every registered descriptor, and the control socket's, to hand over. */
  descriptors(): OutgoingFd[];
  /** State for the new instance (runlevel, generation, ports closed in runlevel 1). */
  state(): Meta;
  listeners: Listeners;
  /** What the drains did with the connections: this process's listeners', and its workers' (a primary). */
  moveCounts(): MoveCounts;
  control(): ControlPort | null;
  /** Stop accepting everywhere and drain; resolves with how many connections were forced closed. */
  drain(release: boolean): Promise<number>;
  /** This instance serves (again): pid file, sd_notify. */
  serving(): void;
  /** The rest of a halt, after the drain. */
  finishHalt(how: { handedOver: boolean; forced: number }): Promise<void>;
  /**
   * What brings the new instance up and resolves once it is ready
   * (startSuccessor: one process of the same program). The workers of a
   * service bring up a whole generation here instead, behind the same
   * contract: reject with RedeployFailedError, kill what failed.
   */
  start?: (options: SuccessorOptions) => Promise<Successor>;
  /** What a take-back does besides listening again (the primary of workers brings its workers up again). */
  takeBack?: () => Promise<void>;
  /** A rolling redeploy of workers: drain the worker of slot (see SuccessorOptions.retire). */
  retire?: (slot: number) => Promise<void>;
  /** After a failed redeploy: start again what retire drained. */
  refill?: () => Promise<void>;
  /** The drain starts: the new instance's ready answer (the workers take connections over there), or null at a take-back. */
  handingOver?: (answer: Meta | null) => void;
  /** relay: a reopen here reaches the new instance while it holds copies of the files (see ReopenRelay). */
  relay?: ReopenRelay;
  /** Events for the application ('redeploy', 'takeback', and 'draining' with the open connections). */
  emit(name: 'redeploy' | 'takeback' | 'draining', value: unknown): void;
}

type Exit = { code: number | null; signal: NodeJS.Signals | null };

/**
 * commitAsked resolves with COMMIT_MARK when the new instance asks, on the
 * hand-off kept open, that the take-back window end now; never otherwise
 * (its end of the connection closing is its exit's to tell).
 */
function commitAsked(link: SuccessorLink | undefined): Promise<typeof COMMIT_MARK> {
  if (!link) return new Promise(() => undefined);
  return new Promise((resolve) => {
    // Reopen records (either way) are the relay's; the loop ends at commit or at the connection's end.
    void (async () => {
      for (;;) {
        const got = await receiveFrom(link.connection);
        if (!got) return;
        closeAll([got.fd]);
        if (got.meta?.graceful === COMMIT_MARK) return resolve(COMMIT_MARK);
        if (!(await link.reopen?.handle(got.meta))) return;
      }
    })().catch(() => undefined);
  });
}

/** childAlive: our child pid runs (it is neither a zombie waiting to be reaped, nor gone), from /proc. */
function childAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/**
 * answerCommit says committed to the new instance that asked; false when the
 * answer cannot reach it (it went away after asking: a request read late, from
 * a dead asker, must not end the window, or nobody would serve).
 */
async function answerCommit(link: SuccessorLink, pid: number): Promise<boolean> {
  // Our child, so the kernel keeps its entry until we reap it: a zombie (or none) asked before it died.
  if (!childAlive(pid)) return false;
  try {
    await sendTo(link.connection, 2, { graceful: COMMITTED_MARK });
    return true;
  } catch {
    return false;
  }
}

export class Redeployer {
  constructor(private readonly parts: RedeployParts) {}

  /**
   * redeploy replaces this instance with a new one (see GracefulServer.redeploy).
   * Resolves once the new instance is ready and has outlived the take-back
   * window; rejects with RedeployFailedError when it failed (this one goes on
   * serving), or with the Lifecycle's refusal.
   */
  async redeploy(onEvent?: (event: RedeployEvent) => void): Promise<RedeployResult> {
    const { lifecycle, config } = this.parts;
    const ticket = lifecycle.beginRedeploy();
    const started = ticket.since;
    const emit = (event: RedeployEvent) => this.report(event, onEvent);
    try {
      await lifecycle.waitForPredecessor(ticket, config.upgradeTimeout, this.parts.log,
        (predecessor) => emit({ type: 'predecessor-committed', predecessor, ms: Date.now() - started }));
    } catch (err) {
      lifecycle.endRedeploy(ticket);
      this.parts.log(`redeploy refused: ${(err as Error).message}`, { event: 'redeploy.refused', code: (err as { code?: string }).code });
      throw err;
    }
    notify(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`);
    let spawnedAt = started;
    let successor: Successor;
    const start = this.parts.start ?? startSuccessor;
    try {
      successor = await start({
        descriptors: () => this.parts.descriptors(),
        state: this.parts.state(),
        timeoutMs: config.upgradeTimeout,
        spawn: config.spawn,
        signal: ticket.abort.signal,
        retire: this.parts.retire,
        keep: true,
        relay: this.parts.relay,
        onWorkerReady: (worker, pid) => emit({ type: 'worker', pid, worker, ms: Date.now() - started }),
        onSpawned: (pid) => {
          ticket.pid = pid;
          spawnedAt = Date.now();
          emit({ type: 'spawned', pid, ms: spawnedAt - started, timeoutMs: config.upgradeTimeout });
        },
      });
    } catch (err) {
      await this.parts.refill?.().catch((e: Error) => this.parts.log(`refill: ${e.message}`));
      this.failed(err as RedeployFailedError, started, emit);
      lifecycle.endRedeploy(ticket);
      throw err;
    }
    const readyMs = Date.now() - spawnedAt;
    const exited = new Promise<Exit>((resolve) => {
      successor.child.once('exit', (code, signal) => {
        // A supervisor cannot learn how a grandchild ended: tell it.
        if (process.env[SUPERVISOR_ENV]) notify(`${EXIT_FIELD}=${successor.pid} ${signal ?? code}`);
        resolve({ code, signal });
      });
    });
    emit({ type: 'ready', pid: successor.pid, ms: Date.now() - started });
    ticket.stopSuccessor = () => successor.child.kill('SIGTERM');
    lifecycle.endRedeploy(ticket);
    let commit!: (r: RedeployResult) => void;
    let fail!: (err: Error) => void;
    const committed = new Promise<RedeployResult>((resolve, reject) => {
      commit = resolve;
      fail = reject;
    });
    void lifecycle.run(() => this.handOver(ticket, successor, exited, started, emit, () => commit({ pid: successor.pid, readyMs }), fail))
      .catch((err: Error) => {
        successor.link?.release();
        this.parts.log(`hand-over to pid ${successor.pid} failed: ${err.message}`, { event: 'redeploy.handover-failed' });
        fail(err);
      });
    return committed;
  }

  /**
   * handOver is the transition ready -> handing-over -> draining | taken-back.
   * It stops accepting and drains at once (the new instance holds the
   * sockets, so nothing queued is lost), and keeps duplicates of the sockets
   * until the take-back window has passed, or the new instance asks it to
   * commit on the hand-off kept open (it is asked to redeploy in turn): then
   * the window ends at once, as if it had passed, and committed is answered.
   * The hand-off connection closes when the window ends, however it ends.
   */
  private async handOver(ticket: RedeployTicket, successor: Successor, exited: Promise<Exit>, started: number,
    emit: (e: RedeployEvent) => void, commit: () => void, fail: (err: Error) => void): Promise<void> {
    const { lifecycle, config } = this.parts;
    const pid = successor.pid;
    if (lifecycle.state !== 'ready' || ticket.abort.signal.aborted) {
      // Halted meanwhile: the new instance does not serve alone.
      successor.link?.release();
      ticket.stopSuccessor?.();
      const error = new RedeployFailedError(`the redeploy was abandoned because this instance is stopping; the new instance (pid ${pid}) was told to stop`,
        { reason: 'aborted', pid, signal: 'SIGTERM', stderr: [] });
      this.failed(error, started, emit);
      fail(error);
      return;
    }
    lifecycle.to('handing-over', pid);
    const control = this.parts.control();
    control?.handoffDone();
    this.parts.listeners.keepSpares();
    const open = this.parts.listeners.connectionCount();
    emit({ type: 'draining', pid, connections: open, ms: Date.now() - started });
    this.parts.emit('draining', open); // the application closes what it owns (upgraded connections)
    // Idle keep-alive connections of the listeners that hand over go to the new instance,
    // and so do the sockets the application hands over (from onDrain, in the drain below).
    const sender = await connectSender(successor.answer, pid, this.parts.listeners.handingOver(), this.parts.log,
      this.parts.listeners.handingOverSockets());
    this.parts.listeners.setMover(sender);
    this.parts.handingOver?.(successor.answer ?? null);
    const before = this.parts.moveCounts();
    const drained = this.parts.drain(false);
    let timer: NodeJS.Timeout | undefined;
    const windowEnd = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), config.takeBackWindow)));
    let exit = await Promise.race([exited, windowEnd, commitAsked(successor.link)]);
    if (exit === COMMIT_MARK && !(await answerCommit(successor.link!, pid))) exit = await Promise.race([exited, windowEnd]);
    clearTimeout(timer);
    // Exit code 0 is a halt asked for (SIGTERM, telinit 0), not a crash: the service is meant to stop.
    if (exit && exit !== COMMIT_MARK && (exit.signal || exit.code !== 0)) {
      successor.link?.release();
      this.parts.listeners.setMover(null);
      this.parts.handingOver?.(null);
      sender?.close();
      await this.takeBack(pid, exit, started, emit, fail, sender);
      await drained;
      return;
    }
    lifecycle.to('draining');
    this.parts.listeners.dropSpares();
    commit();
    if (exit === COMMIT_MARK) this.parts.log(`redeploy: the new instance (pid ${pid}) is redeploying in turn: take-back window ended after ${Date.now() - started} ms`, { event: 'redeploy.committed', newPid: pid });
    successor.link?.release(); // the window ended: the hand-off kept open closes
    const forced = await drained;
    sender?.close();
    if (sender?.error) this.parts.log(sender.error.message, { event: 'redeploy.handover-stopped', code: (sender.error as { code?: string }).code, passed: sender.passed });
    const after = this.parts.moveCounts();
    await this.parts.finishHalt({ handedOver: true, forced });
    emit({ type: 'done', pid, forced, handedOver: after.handedOver - before.handedOver, drained: after.drained - before.drained, ms: Date.now() - started });
  }

  /**
   * takeBack: the new instance died within the take-back window. This one
   * listens again on the sockets it kept and serves as before; only what was
   * in flight in the dead process is lost. The redeploy fails, with the reason.
   */
  private async takeBack(pid: number, exit: Exit, started: number, emit: (e: RedeployEvent) => void, fail: (err: Error) => void,
    sender: ConnectionSender | null): Promise<void> {
    const { lifecycle, log } = this.parts;
    lifecycle.to('taken-back');
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    // Connections handed to it went with it; those not yet passed are ours again.
    const lost = sender?.passed ?? 0;
    log(`the new instance (pid ${pid}) ${how} while this one drained: serving again` +
      (lost > 0 ? `; the ${lost} connection(s) handed to it are lost` : ''), { event: 'redeploy.takeback', newPid: pid, lost });
    await this.parts.listeners.takeBack(log);
    await this.parts.takeBack?.().catch((err: Error) => log(`take-back: ${err.message}`));
    await this.parts.control()?.takeBack().catch((err: Error) => log(`take-back of the control socket failed: ${err.message}`));
    lifecycle.to('ready');
    this.parts.serving();
    const error = new RedeployFailedError(
      `the new instance (pid ${pid}) ${how} ${Date.now() - started} ms into the redeploy, after it was ready but within the take-back window: ` +
        'this instance took back its sockets and goes on serving' + (lost > 0 ? ` (the ${lost} connection(s) handed to it are lost)` : '') +
        '; look at the new instance\'s log for why it died',
      { reason: 'taken-back', pid, exitCode: exit.code, signal: exit.signal, stderr: [] },
    );
    emit({ type: 'failed', error, ms: Date.now() - started });
    this.parts.emit('takeback', { pid, lost });
    fail(error);
  }

  /** failed: the new instance did not become ready; this one serves on, as the service manager is told. */
  private failed(error: RedeployFailedError, started: number, emit: (e: RedeployEvent) => void): void {
    this.parts.control()?.handoffFailed();
    emit({ type: 'failed', error, ms: Date.now() - started });
    if (!this.parts.lifecycle.terminating) this.parts.serving();
  }

  private report(event: RedeployEvent, onEvent?: (event: RedeployEvent) => void): void {
    const { type, ms } = event;
    const fields: LogFields = { event: `redeploy.${type}`, ms };
    if ('pid' in event) fields.newPid = event.pid;
    if (event.type === 'draining') fields.connections = event.connections;
    if (event.type === 'done') {
      fields.forced = event.forced;
      fields.handedOver = event.handedOver;
      fields.drained = event.drained;
    }
    if (event.type === 'failed') fields.code = event.error.code;
    this.parts.log(event.type === 'failed' ? `redeploy failed: ${event.error.message}` : `redeploy: ${type}${'pid' in event ? ` (pid ${event.pid})` : ''} after ${ms} ms`, fields);
    this.parts.emit('redeploy', event);
    try {
      onEvent?.(event);
    } catch (err) {
      this.parts.log(`a redeploy event listener threw: ${(err as Error).message}`);
    }
  }
}
