/**
 * The ready protocol: what ready() does, in order, for every role. All that
 * can fail happens before a predecessor (if any) is told: unclaimed
 * descriptors closed, the ready hooks, the pid file, the start of the
 * listeners (and of the workers); a failure gives the hand-off up (the
 * predecessor serves on). Then the state is 'ready', the predecessor and the
 * service manager are told, the runlevel and started hooks run. The roles
 * fill in their steps (Role.prepareReady, startServing, announce).
 */
import { HookFailedError } from '../errors.js';
import type { Meta } from '../meta.js';
import { writePidFile } from '../pidfile.js';
import { notify } from '../systemd.js';
import { Adopter } from './adopt.js';
import { ADOPT_FIELD, ADOPT_LISTENERS_FIELD, ADOPT_SOCKETS_FIELD } from './conn-handover.js';
import type { Engine } from './engine.js';
import type { ServerEvent } from './events.js';
import type { Predecessor } from './predecessor.js';

/** becomeReady: the transition starting -> ready (queued by the facade); rejects with why this instance does not start. */
export async function becomeReady(engine: Engine): Promise<void> {
  const { lifecycle, role, registry, hooks, config, log } = engine;
  await engine.init();
  if (lifecycle.startStepFailed && !lifecycle.terminating) engine.holdAgain();
  lifecycle.checkReady();
  const predecessor = engine.predecessor;
  lifecycle.checkNotAbandoned(predecessor?.pid);
  /** giveUp: a new instance that cannot start tells its predecessor (which serves on) and accepts nothing. */
  const giveUp = (err: unknown) => {
    role.abandonReady();
    if (!predecessor) return;
    // The reason goes to the predecessor over the hand-off: its redeploy
    // then fails with this one line, not with what our stderr nested.
    predecessor.abandon((err as Error)?.message ?? String(err));
    lifecycle.abandonStart();
    engine.listeners.stopAll(false);
  };
  role.prepareReady();
  const leftovers = registry.closeUnclaimed();
  if (leftovers.count > 0) log(`closing ${leftovers.count} inherited descriptor(s) nobody registered: ${leftovers.names.join(', ')}`);
  try {
    if (role.runsAppHooks) await hooks.run('ready');
  } catch (err) {
    const failed = new HookFailedError(`a ready hook failed, so ${role.who} does not start: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    giveUp(failed);
    throw failed;
  }
  try {
    // Before the predecessor is told: a failure here leaves it serving.
    if (config.pidFile && role.ownsService) writePidFile(config.pidFile);
    await role.startServing(predecessor, () => engine.startPending());
  } catch (err) {
    giveUp(err);
    log(`ready: this instance cannot start: ${(err as Error).message}`, { event: 'ready.failed', code: (err as { code?: string }).code });
    throw err;
  }
  // Accepting from here on: status says ready, also while the predecessor is told.
  lifecycle.to('ready');
  await role.announce(predecessor);
  if (role.ownsService) notify(engine.readyNotice());
  await engine.runlevels.runHooks(lifecycle.level);
  if (role.runsAppHooks) await hooks.run('started');
  engine.stats.ready();
  engine.emit('ready');
}

/**
 * announceReady: a new instance (single or primary) tells the service
 * manager its pid, then its predecessor that it is ready, with the receiver
 * of the connections the predecessor hands over. A predecessor gone by then
 * (killed at any moment since this instance holds the descriptors) is no
 * error: this instance is the only one, and serves.
 */
export async function announceReady(engine: Engine, predecessor: Predecessor | null, answer?: () => Meta): Promise<void> {
  if (!predecessor) return;
  // The service manager (or a supervisor) learns the new main pid before
  // the predecessor may exit, so it never sees the service without one.
  notify(`MAINPID=${process.pid}`);
  const err = await predecessor.ready(answer ? answer() : openAdopter(engine, predecessor.pid, predecessor.exited()), true); // kept open for a commit (see Lifecycle.waitForPredecessor)
  // One that died before it could be told was logged then (predecessor.gone).
  if (err && !predecessor.orphaned) engine.log(`could not tell the predecessor (pid ${predecessor.pid}) that this instance is ready (${(err as { code?: string }).code ?? err.message}): it is gone, so this instance serves alone`, { event: 'ready.predecessor-gone' });
}

/** AdoptFrom: who hands connections to a new worker: the old workers (pids), children of the old primary (parent). */
export interface AdoptFrom {
  peers: readonly number[];
  parent: number;
}

/**
 * openAdopter opens the receiver of the connections the predecessor (pid)
 * hands over while it drains (listeners with handOver: true), and returns
 * what the ready answer tells it; nothing when no listener takes connections
 * over or it cannot be opened (the predecessor then drains them itself). It
 * closes once gone resolves, or every peer came and went. With from (a new
 * worker), the old workers named there connect instead, each once.
 */
export function openAdopter(engine: Engine, pid: number, gone: Promise<void>, from?: AdoptFrom): Meta {
  const { listeners, log } = engine;
  const emit = (name: ServerEvent, value: unknown) => engine.emit(name, value);
  const names = listeners.handingOver();
  let sockets = listeners.handingOverSockets();
  if (sockets.length > 0 && engine.listenerCount('adopt-socket') === 0) {
    log(`listeners ${sockets.join(', ')} have handOverSockets: true but nothing listens for 'adopt-socket': the predecessor closes their connections instead`,
      { event: 'ready.adopt-socket-unheard' });
    sockets = [];
  }
  if (names.length === 0 && sockets.length === 0) return {};
  try {
    const adopter = Adopter.open({
      predecessorPid: pid,
      peers: from?.peers,
      parent: from?.parent,
      target: (name) => {
        const l = listeners.get(name);
        return l?.isOpen && l.tracker.handsOver ? l.server : null;
      },
      adopted: (a) => emit('adopt', a),
      socketTarget: (name) => {
        const l = listeners.get(name);
        return l?.isOpen && sockets.includes(name) ? l.tracker : null;
      },
      adoptedSocket: (a) => emit('adopt-socket', a),
      log: (msg) => log(msg),
    });
    engine.adopter = adopter;
    void gone.then(() => adopter.close());
    return { [ADOPT_FIELD]: adopter.path, [ADOPT_LISTENERS_FIELD]: names.join(','), [ADOPT_SOCKETS_FIELD]: sockets.join(',') };
  } catch (err) {
    log(`cannot take connections over from ${from ? `the old workers (pids ${from.peers.join(', ')})` : `the predecessor (pid ${pid})`}: ${(err as Error).message}; ${from ? 'they drain them themselves' : 'it drains them itself'}`, { event: 'ready.adopt-failed' });
    return {};
  }
}
