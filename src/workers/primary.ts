/**
 * The primary of a service with workers: it holds every listening socket
 * (bound here without ever accepting on it) and the registered files, and
 * runs N worker processes of the same program, one per slot, each handed
 * those descriptors through the hand-off core (successor.ts). Model: one
 * generation of workers serves; a redeploy replaces the primary, whose new
 * workers are all ready before it tells this one, which then drains its own.
 * A worker that dies while its generation serves is restarted in its slot,
 * with backoff, until it crashes CRASH_LOOP_COUNT times in CRASH_LOOP_MS.
 */
import dns from 'node:dns';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { HandoffFailedError, RedeployFailedError, UpgradeInProgressError, WorkerFailedError, invalidArgument, type RedeployFailure } from '../errors.js';
import type { Meta } from '../meta.js';
import { addon } from '../native.js';
import { fdOf } from '../fds.js';
import type { OutgoingFd } from '../handoff/connection.js';
import type { LogFields } from '../log.js';
import { WORKER_COUNT_ENV, WORKER_ENV } from '../protocol.js';
import { bindSocket, clearStaleSocket } from '../socketpath.js';
import type { ManagedListener } from '../server/listeners.js';
import { OwnedFd } from '../owned-fd.js';
import { startSuccessor, type SpawnFunction } from '../server/successor.js';
import { LINK_NAME, PrimaryLink } from './worker-link.js';

/**
 * GO_NAME: the descriptor a worker of a starting generation gets besides the
 * listeners: one end of a socket pair on which the primary writes one byte
 * once every worker of the generation is ready (then each starts
 * accepting), or which it closes to call the start off (then none accepted
 * anything). A worker restarted in its slot gets none and starts at once.
 */
export const GO_NAME = 'graceful:go';

/** A slot stops restarting after this many crashes within CRASH_LOOP_MS. */
export const CRASH_LOOP_COUNT = 5;
export const CRASH_LOOP_MS = 30_000;
/** Restart delays: the first after BACKOFF_MIN_MS, doubling per recent crash, at most BACKOFF_MAX_MS. */
export const BACKOFF_MIN_MS = 100;
export const BACKOFF_MAX_MS = 5_000;
/** How long past the shutdown timeout a draining worker has before it is killed. */
const DRAIN_MARGIN_MS = 5_000;

export type WorkerState = 'starting' | 'ready' | 'restarting' | 'crash-loop' | 'draining' | 'stopped' | 'retired';

/** WorkerInfo: one slot, as status shows it. */
export interface WorkerInfo {
  id: number;
  pid: number | null;
  generation: number;
  state: WorkerState;
  /** seconds since this slot's process became ready (0 when none is). */
  uptime: number;
  /** how many times this slot was restarted after a crash. */
  restarts: number;
}

interface Slot {
  id: number;
  child: ChildProcess | null;
  state: WorkerState;
  readyAt: number;
  restarts: number;
  crashes: number[];
  timer: NodeJS.Timeout | null;
  exited: Promise<void> | null;
  /** The primary's end of the worker's link (stats, commands), while the worker runs. */
  link: PrimaryLink | null;
}

export interface PoolOptions {
  count: number;
  /** What the worker of slot (of count) gets: the listeners (its members of each group) and files, never the control socket. */
  descriptors(slot: number, count: number): OutgoingFd[];
  /**
   * grow: before count workers start, give each listener's group at least
   * count members; resolves with what undoes it (closes the members added,
   * which nothing listened on) should the start fail.
   */
  grow?(count: number): Promise<() => void>;
  /** State sent to each worker (runlevel, generation). */
  state(): Meta;
  generation(): number;
  timeoutMs: number;
  shutdownTimeoutMs: number;
  spawn?: SpawnFunction;
  log(msg: string, fields?: LogFields): void;
  /** A slot changed state (for events). */
  changed?(info: WorkerInfo): void;
  /** A worker's link ended: what its listeners counted, its last report. */
  retired?(counts: PrimaryLink['listeners']): void;
}

/** MAX_WORKERS: the most workers a service runs. */
export const MAX_WORKERS = 256;

function makeSlots(count: number): Slot[] {
  return Array.from({ length: count }, (_, id) => ({ id, child: null, state: 'stopped' as WorkerState, readyAt: 0, restarts: 0, crashes: [], timer: null, exited: null, link: null }));
}

export class WorkerPool {
  private slots: Slot[];
  /** The workers of a scale() under way, until they replace these. */
  private incoming: Slot[] | null = null;
  /** The links still open, of every worker that has not ended yet. */
  private readonly links = new Set<PrimaryLink>();
  /** 'serving' restarts crashed workers; 'draining' and 'idle' do not. */
  private mode: 'idle' | 'serving' | 'draining' = 'idle';

  constructor(private readonly options: PoolOptions) {
    this.slots = makeSlots(options.count);
  }

  /** resize sets the number of workers before the first start (a predecessor's scale carries over). */
  resize(count: number): void {
    if (this.mode !== 'idle' || this.slots.some((s) => s.child)) throw new UpgradeInProgressError('resize: the workers run already: use scale()');
    this.slots = makeSlots(count);
  }

  /** scaling: a scale() is under way. */
  get scaling(): boolean {
    return this.incoming !== null;
  }

  get count(): number {
    return this.slots.length;
  }

  /** wanted: the workers this primary means to run (a rolling redeploy retired the others to its successor's). */
  get wanted(): number {
    return this.slots.filter((s) => s.state !== 'retired').length;
  }

  /** readyCount: workers ready and serving. */
  get readyCount(): number {
    return this.slots.filter((s) => s.state === 'ready').length;
  }

  /** pids of the live workers. */
  pids(): number[] {
    return this.slots.flatMap((s) => (s.child?.pid !== undefined && s.child.exitCode === null && s.child.signalCode === null ? [s.child.pid] : []));
  }

  info(): WorkerInfo[] {
    return this.slots.map((s) => ({
      id: s.id,
      pid: s.child?.pid ?? null,
      generation: this.options.generation(),
      state: s.state,
      uptime: s.state === 'ready' ? Math.round((Date.now() - s.readyAt) / 1000) : 0,
      restarts: s.restarts,
    }));
  }

  /**
   * startAll brings up every slot at once and resolves when all are ready.
   * If one fails, every other is killed (SIGKILL, and waited for) and this
   * rejects with WorkerFailedError naming the first worker that failed.
   */
  async startAll(onReady?: (info: WorkerInfo) => void): Promise<void> {
    const undo = (await this.options.grow?.(this.slots.length)) ?? (() => undefined);
    try {
      await this.startSlots(this.slots, onReady);
    } catch (err) {
      undo();
      throw err;
    }
    this.mode = 'serving';
  }

  /**
   * startRolling brings up the slots one at a time, for a rolling redeploy:
   * the worker of slot i starts and accepts, then retire(i) has the old
   * worker of that slot drain (and resolves once it exited), then slot i+1
   * starts: at most one worker more than configured runs. If one fails,
   * every new worker is killed and this rejects with its error.
   */
  async startRolling(retire: (slot: number) => Promise<void>, onReady?: (info: WorkerInfo) => void): Promise<void> {
    const undo = (await this.options.grow?.(this.slots.length)) ?? (() => undefined);
    // Serving from the first slot on: a new worker that crashes meanwhile is restarted.
    this.mode = 'serving';
    try {
      for (const slot of this.slots) {
        await this.startSlots([slot], onReady, this.slots.length);
        await retire(slot.id);
      }
    } catch (err) {
      // The new workers already serving drain (they accepted connections);
      // the old primary starts its retired slots again meanwhile.
      this.mode = 'draining';
      for (const s of this.slots) {
        if (s.timer) clearTimeout(s.timer);
        if (s.child) s.child.kill('SIGTERM');
      }
      undo();
      throw err;
    }
  }

  /** retire drains the worker of slot (a successor's worker of that slot serves now); resolves once it exited. */
  async retire(id: number): Promise<void> {
    const slot = this.slots[id];
    if (!slot) return;
    await this.stopSlots([slot]);
    slot.state = 'retired';
    this.options.changed?.(this.infoOf(slot));
  }

  /** refill starts again the slots retired to a rolling redeploy that then failed: this primary serves on with all of them. */
  async refill(): Promise<void> {
    const retired = this.slots.filter((s) => s.state === 'retired');
    await Promise.all(retired.map((slot) => this.startSlot(slot).catch((err: Error) => {
      this.options.log(`worker ${slot.id} could not be started again after the failed redeploy: ${err.message}`, { event: 'worker.restart-failed', worker: slot.id });
    })));
  }

  /** startSlots starts slots together (go once all are ready); on a failure kills them all and throws the first worker's error. */
  private async startSlots(slots: Slot[], onReady?: (info: WorkerInfo) => void, count = slots.length): Promise<void> {
    const abort = new AbortController();
    const gos: OwnedFd[] = [];
    try {
      const results = await Promise.allSettled(slots.map(async (slot) => {
        const pair = socketPair(GO_NAME);
        gos.push(pair.write);
        try {
          await this.startSlot(slot, abort.signal, pair.read, count);
        } finally {
          pair.read.close();
        }
        onReady?.(this.infoOf(slot));
      }).map((p) => p.catch((err: unknown) => {
        abort.abort();
        throw err;
      })));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && !(r.reason instanceof WorkerFailedError && r.reason.cause instanceof RedeployFailedError && r.reason.cause.failure.reason === 'aborted'))
        ?? results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        for (const go of gos) go.close(); // EOF: the ready workers give up without accepting
        await this.kill(slots);
        throw failed.reason;
      }
      try {
        if (slots.some((sl) => sl.child === null)) throw new Error('a worker ended after it was ready');
        for (const go of gos) fs.writeSync(go.fd, 'g');
      } catch (err) {
        // A worker died between ready and go: none of this generation may serve.
        for (const go of gos) go.close();
        await this.kill(slots);
        throw new WorkerFailedError(`a worker of generation ${this.options.generation()} ended before all of them could start accepting (${(err as Error).message}): every one was stopped`, { cause: err });
      }
    } finally {
      for (const go of gos) go.close();
    }
  }

  /** startSlot spawns the worker of one slot and resolves once it is ready; rejects with WorkerFailedError. */
  private async startSlot(slot: Slot, signal?: AbortSignal, go?: OwnedFd, count = this.slots.length): Promise<void> {
    slot.state = 'starting';
    this.options.changed?.(this.infoOf(slot));
    let started;
    const link = socketPair(LINK_NAME);
    try {
      started = await startSuccessor({
        descriptors: () => [
          ...this.options.descriptors(slot.id, count),
          { fd: link.read.fd, meta: { name: LINK_NAME, kind: 'fd' } },
          ...(go?.open ? [{ fd: go.fd, meta: { name: GO_NAME, kind: 'fd' } }] : []),
        ],
        state: { ...this.options.state(), workerId: slot.id },
        timeoutMs: this.options.timeoutMs,
        spawn: this.options.spawn,
        signal,
        env: { [WORKER_ENV]: String(slot.id), [WORKER_COUNT_ENV]: String(count), NOTIFY_SOCKET: undefined },
      });
    } catch (err) {
      link.write.close();
      slot.state = 'stopped';
      const e = err as RedeployFailedError;
      const f = e.failure as RedeployFailure | undefined;
      const who = `worker ${slot.id} of generation ${this.options.generation()}`;
      if ((f?.reason === 'exit' || (f?.reason === 'handoff' && e.cause instanceof HandoffFailedError)) && f.pid !== undefined) {
        // One line with the worker's own first error (its reported reason, or
        // its first error on stderr), never its last lines: those are what
        // its halt logged, and this message is nested again by the old primary.
        const how = f.reason === 'handoff' ? 'closed its hand-off' : f.signal ? `was killed by ${f.signal}` : `exited with code ${f.exitCode}`;
        throw new WorkerFailedError(`${who} (pid ${f.pid}) ${how} before it was ready${f.said ? `: ${f.said}` : ''}`, { cause: err });
      }
      const what = (e.message ?? String(err)).replace(/^the new instance/, '').replace(/;( it was killed( \(SIGKILL\))? and)? this instance goes on serving$/, '');
      throw new WorkerFailedError(`${who}${what.startsWith(' ') ? what : `: ${what}`}`,
        { cause: err });
    } finally {
      link.read.close(); // the worker has its own copy
    }
    const child = started.child;
    if (this.mode === 'draining' || !(this.slots.includes(slot) || (this.incoming?.includes(slot) ?? false))) {
      // Its slot was let go while it started (a halt, a scale): it must not serve untracked.
      link.write.close();
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
      slot.state = 'stopped';
      throw new WorkerFailedError(`worker ${slot.id} of generation ${this.options.generation()} was no longer wanted once it was ready (a halt or a scale came first): it was killed`);
    }
    slot.child = child;
    const primaryEnd = new PrimaryLink(link.write.take(), `worker ${slot.id} (pid ${child.pid})`, (msg) => this.options.log(msg), (ended) => {
      this.links.delete(ended);
      this.options.retired?.(ended.listeners);
    });
    this.links.add(primaryEnd);
    slot.link = primaryEnd;
    slot.state = 'ready';
    slot.readyAt = Date.now();
    slot.exited = new Promise((resolve) => child.once('exit', (code, sig) => {
      this.exited(slot, child, code, sig);
      resolve();
    }));
    this.options.changed?.(this.infoOf(slot));
  }

  private infoOf(slot: Slot): WorkerInfo {
    return {
      id: slot.id,
      pid: slot.child?.pid ?? null,
      generation: this.options.generation(),
      state: slot.state,
      uptime: slot.state === 'ready' ? Math.round((Date.now() - slot.readyAt) / 1000) : 0,
      restarts: slot.restarts,
    };
  }

  /**
   * scale replaces the workers by count new ones, under load without a
   * failed request: every listener's group gets the members it needs (a group
   * never loses one), the new workers start together and accept once all are
   * ready, then the old ones drain as at a redeploy. If a new one fails, the
   * new ones are killed and the old ones serve on (WorkerFailedError).
   */
  async scale(count: number, onReady?: (info: WorkerInfo) => void): Promise<void> {
    if (!Number.isInteger(count) || count < 1 || count > MAX_WORKERS) {
      throw invalidArgument('scale', `the number of workers must be an integer from 1 to ${MAX_WORKERS}, got ${String(count)} (telinit 0 halts the service)`);
    }
    if (this.incoming) throw new UpgradeInProgressError('scale: another scale is under way: wait for it (see status)');
    if (this.mode !== 'serving') throw new UpgradeInProgressError(`scale: the workers are ${this.mode === 'draining' ? 'draining' : 'not started yet'}: try again once the service serves`);
    const next = makeSlots(count);
    this.incoming = next;
    try {
      const undo = (await this.options.grow?.(count)) ?? (() => undefined);
      try {
        await this.startSlots(next, onReady);
      } catch (err) {
        undo();
        throw err;
      }
      const old = this.slots;
      this.slots = next;
      // One that died between its ready and the swap is a crash of the new generation.
      for (const slot of next) if (slot.child === null && slot.state === 'stopped') this.crashed(slot, 'ended while the scale started');
      await this.stopSlots(old);
    } finally {
      this.incoming = null;
    }
  }

  /** reported: what the running workers' listeners counted, as each last reported it. */
  reported(): PrimaryLink['listeners'][] {
    return [...this.links].map((l) => l.listeners);
  }

  /**
   * ask sends one operation to every worker that is ready and gathers the
   * answers by slot: a result, or the error of a worker that failed it or
   * ended first. onLine gets each output line with its slot.
   */
  async ask(op: string, fields: Record<string, unknown>, onLine?: (id: number, line: string, link: PrimaryLink) => void, signal?: AbortSignal):
    Promise<{ id: number; pid: number | null; result?: unknown; error?: { code: string; message: string } }[]> {
    const ready = this.slots.filter((s) => s.state === 'ready' && s.link !== null);
    return Promise.all(ready.map(async (s) => {
      const pid = s.child?.pid ?? null;
      try {
        const link = s.link!;
        const result = await link.request(op, fields, onLine && ((line) => onLine(s.id, line, link)), signal);
        const open = (result as { connections?: unknown } | null)?.connections;
        if (op === 'stats' && typeof open === 'number') link.connections = open;
        return { id: s.id, pid, result };
      } catch (err) {
        const e = err as { code?: string; message?: string };
        return { id: s.id, pid, error: { code: e.code ?? 'ERR_GRACEFUL_COMMAND_FAILED', message: e.message ?? String(err) } };
      }
    }));
  }

  /** exited: a worker ended; outside a drain it is a crash, and its slot restarts with backoff (or gives up, in a crash loop). */
  private exited(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return;
    slot.child = null;
    // Its link closes by itself once its last report is read (then its counts are retired).
    const link = slot.link;
    slot.link = null;
    if (this.mode !== 'serving' || !this.slots.includes(slot) || slot.state === 'draining') {
      slot.state = 'stopped';
      return;
    }
    const lost = link?.connections ?? 0;
    this.crashed(slot, `(pid ${child.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}` +
      (lost > 0 ? `, losing the ${lost} connection(s) it had open` : ''), lost);
  }

  /**
   * crashed counts a crash of a slot of the serving generation (its worker
   * died, or could not be started again) and restarts it after a backoff,
   * or stops restarting it in a crash loop.
   */
  private crashed(slot: Slot, how: string, lost = 0): void {
    const now = Date.now();
    slot.crashes = [...slot.crashes.filter((t) => now - t < CRASH_LOOP_MS), now];
    if (slot.crashes.length >= CRASH_LOOP_COUNT) {
      slot.state = 'crash-loop';
      this.options.log(`worker ${slot.id} ${how}: ${slot.crashes.length} crashes within ${CRASH_LOOP_MS / 1000} s, so slot ${slot.id} is not restarted; ` +
        'fix the cause and redeploy', { event: 'worker.crash-loop', worker: slot.id, lost });
      this.options.changed?.(this.infoOf(slot));
      return;
    }
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (slot.crashes.length - 1));
    this.options.log(`worker ${slot.id} ${how}; restarting it in ${delay} ms (the other workers serve on)`, { event: 'worker.crashed', worker: slot.id, lost });
    slot.state = 'restarting';
    this.options.changed?.(this.infoOf(slot));
    slot.timer = setTimeout(() => {
      slot.timer = null;
      if (!this.serves(slot)) return;
      slot.restarts += 1;
      this.startSlot(slot).catch((err: Error) => {
        // A failed start counts as a crash of the slot (unless the slot was let go meanwhile).
        if (this.serves(slot)) this.crashed(slot, `could not be started again (${err.message})`);
      });
    }, delay);
    slot.timer.unref();
  }

  /** serves: slot belongs to the generation that serves (or to a scale that starts), and the pool is not draining. */
  private serves(slot: Slot): boolean {
    return this.mode === 'serving' && (this.slots.includes(slot) || (this.incoming?.includes(slot) ?? false));
  }

  /**
   * drain tells every worker to stop (SIGTERM: each drains as a single
   * instance does) and resolves once all have exited; one still running past
   * the shutdown timeout (and a margin) is killed.
   */
  async drain(): Promise<void> {
    this.mode = 'draining';
    await this.stopSlots([...this.slots, ...(this.incoming ?? [])]);
  }

  /** stopSlots: SIGTERM to each slot's worker (it drains), SIGKILL past the shutdown timeout and a margin; resolves once all exited. */
  private async stopSlots(slots: Slot[]): Promise<void> {
    const live = slots.filter((s) => {
      if (s.timer) clearTimeout(s.timer);
      s.timer = null;
      if (s.state !== 'ready' && s.child === null) s.state = 'stopped';
      return s.child !== null;
    });
    for (const s of live) {
      s.state = 'draining';
      s.child!.kill('SIGTERM');
    }
    const children = live.map((s) => s.child!);
    const timer = setTimeout(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }, this.options.shutdownTimeoutMs + DRAIN_MARGIN_MS);
    await Promise.all(live.map((s) => s.exited));
    clearTimeout(timer);
  }

  /** kill ends every worker now (SIGKILL) and waits for each. */
  private async kill(slots: Slot[]): Promise<void> {
    const live = slots.filter((s) => s.child !== null);
    for (const s of live) s.child!.kill('SIGKILL');
    await Promise.all(live.map((s) => s.exited));
  }

  /** restart: after a take-back, bring up every slot again. */
  async restart(): Promise<void> {
    this.mode = 'idle';
    for (const s of this.slots) s.crashes = [];
    await this.startAll();
  }
}

/**
 * forSlot: what the worker of slot `slot` (of `count`) gets out of every
 * registered descriptor: of a listener's SO_REUSEPORT group the members of
 * index i with i % count === slot (the first under the listener's name, the others
 * as `<name>+1`, `<name>+2`, ...: a group keeps every member it ever had, so
 * that none closes, and fewer workers accept on more members each);
 * everything else as it is.
 */
export function forSlot(all: OutgoingFd[], slot: number, count: number): OutgoingFd[] {
  const taken = new Map<string, number>();
  return all.flatMap((d) => {
    const meta = d.meta;
    if (!meta || meta instanceof Uint8Array || typeof meta.group !== 'string') return [d];
    if (!memberOf(meta.member, slot, count)) return [];
    const k = taken.get(meta.group) ?? 0;
    taken.set(meta.group, k + 1);
    return [{ fd: d.fd, meta: { ...meta, name: extraName(meta.group, k) } }];
  });
}

/** memberOf: member index `member` of a group is the slot's of `count` (by its stable index, so that a closed member moves no other). */
export function memberOf(member: unknown, slot: number, count: number): boolean {
  return Number(member ?? 0) % count === slot;
}

/** extraName: the name under which a worker finds the k-th member of listener name it accepts on (0: the name itself). */
export function extraName(name: string, k: number): string {
  return k === 0 ? name : `${name}+${k}`;
}

/** socketPair: a connected pair of UNIX stream sockets (close-on-exec), made through a listener in a private directory. */
function socketPair(name: string): { read: OwnedFd; write: OwnedFd } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graceful-pair-'));
  let lfd: number;
  try {
    lfd = addon.listen(path.join(dir, 'go.sock'), 0o600, 1);
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let read: number | undefined;
  try {
    read = addon.connect(path.join(dir, 'go.sock'));
    const write = addon.accept(lfd);
    if (read < 0 || write < 0) throw new Error(`could not connect a socket pair for ${name}`);
    return { read: new OwnedFd(read, { name }), write: new OwnedFd(write, { name }) };
  } catch (err) {
    if (read !== undefined && read >= 0) addon.close(read);
    throw err;
  } finally {
    addon.close(lfd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * waitForGo resolves true once the primary wrote the go byte on fd, false at
 * EOF (the start was called off); fd is closed either way.
 */
export function waitForGo(fd: number): Promise<boolean> {
  return new Promise((resolve) => {
    const poller = new addon.Poller(fd, () => {
      poller.close();
      let n = 0;
      try {
        n = fs.readSync(fd, Buffer.alloc(1), 0, 1, null);
      } catch {
        n = 0;
      }
      addon.close(fd);
      resolve(n === 1);
    });
    poller.start(1);
  });
}

/** PrimaryListener: a listening socket the primary holds and hands to workers; it never accepts on it. */
export interface PrimaryListener {
  fd: OwnedFd;
  meta: Meta;
}

/** memberName: the registry name of member i of a listener's group (member 0 keeps the listener's name). */
export function memberName(name: string, member: number): string {
  return member === 0 ? name : `${name}#${member}`;
}

/** numericHost: the address a reuseport member binds: no host is every address (:: dual-stack, else 0.0.0.0); a name is looked up. */
async function numericHost(host: string | undefined): Promise<string[]> {
  if (host === undefined || host === '') return ['::', '0.0.0.0'];
  if (net.isIP(host)) return [host];
  return [(await dns.promises.lookup(host)).address];
}

/**
 * bindMember binds member `member` of the SO_REUSEPORT group of listener
 * `name` (port 0 for the first: the kernel picks; the others join its port).
 * With listen false it is bound only, and joins the group when the worker
 * that gets it listens: nothing waits on it for a worker that never came.
 * The caller owns the result.
 */
export async function bindMember(name: string, member: number, bind: { port?: number | string; host?: string; backlog?: number; ipv6Only?: boolean }, listen = true): Promise<PrimaryListener> {
  const port = typeof bind.port === 'string' && /^\d+$/.test(bind.port) ? Number(bind.port) : bind.port ?? 0;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw invalidArgument('listen', `"${name}": the port must be a whole number from 0 to 65535, got ${JSON.stringify(bind.port)}`);
  }
  const hosts = await numericHost(bind.host);
  let last: unknown;
  for (const host of hosts) {
    try {
      const bound = addon.listenReusePort(host, port, bind.backlog ?? 511, bind.ipv6Only ?? false, listen);
      const regName = memberName(name, member);
      return {
        fd: new OwnedFd(bound.fd, { name: regName }),
        meta: { name: regName, kind: 'listener', family: 'tcp', host, port: bound.port, group: name, member, ...(bind.ipv6Only ? { ipv6Only: true } : {}), ...(bind.backlog ? { backlog: bind.backlog } : {}) },
      };
    } catch (err) {
      last = err;
      if ((err as { code?: string }).code !== 'EAFNOSUPPORT') break;
    }
  }
  throw last;
}

/**
 * bindListener binds what listener asks for and returns the listening
 * socket, which nothing in this process accepts on. A TCP socket is bound by
 * a net.Server that is closed right in its listening callback, after its
 * descriptor was duplicated: no turn of the event loop ran in between, so it
 * accepted nothing, and what arrives waits in the kernel's queue for the
 * workers. The caller owns the result.
 */
export async function bindListener(listener: ManagedListener, bind: { port?: number; host?: string; path?: string; mode?: number; backlog?: number; ipv6Only?: boolean }): Promise<PrimaryListener> {
  if (bind.path !== undefined) {
    clearStaleSocket(bind.path, `listen ${listener.name}`);
    const fd = bindSocket(bind.path, bind.mode ?? 0o660, bind.backlog ?? 511, `listen ${listener.name}`);
    return { fd: new OwnedFd(fd, { name: listener.name }), meta: { name: listener.name, kind: 'listener', family: 'unix', path: bind.path } };
  }
  const server = net.createServer();
  return new Promise<PrimaryListener>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: bind.port ?? 0, host: bind.host, backlog: bind.backlog, ipv6Only: bind.ipv6Only }, () => {
      server.off('error', reject);
      const a = server.address() as net.AddressInfo;
      let fd: number;
      try {
        fd = addon.dup(fdOf(server));
      } finally {
        server.close();
      }
      resolve({ fd: new OwnedFd(fd, { name: listener.name }), meta: { name: listener.name, kind: 'listener', family: 'tcp', host: a.address, port: a.port } });
    });
  });
}
