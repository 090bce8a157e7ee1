/**
 * Listeners: every ManagedListener of an instance, acted on together: start,
 * stop and drain, the duplicates kept for a take-back, and what status and a
 * successor need to know about them.
 */
import type net from 'node:net';
import type { Meta } from '../meta.js';
import type { ManagedListener } from './listeners.js';
import type { ConnectionMover } from './drain/handover.js';
import { addMoved, type MoveCounts } from './drain/options.js';
import type { ConnectionStates } from '../conn-states.js';

/** ListenerInfo: what status says of one listener. */
export interface ListenerInfo {
  name: string;
  open: boolean;
  /** A drain of its connections is under way. */
  draining: boolean;
  connections: number;
  /** Its open connections by state. */
  states: ConnectionStates;
  address: Meta;
}

/** ListenerStatus: a listener as the status command reports it (JSON mode keeps these fields). */
export interface ListenerStatus {
  name: string;
  /** draining: closed, its connections draining. */
  state: 'open' | 'closed' | 'draining';
  kind: 'tcp' | 'unix';
  host?: string | null;
  port?: number | null;
  path?: string | null;
  fd: number | null;
  connections: number;
  systemd: boolean;
}

export class Listeners implements Iterable<ManagedListener> {
  private readonly byName = new Map<string, ManagedListener>();

  add(listener: ManagedListener): void {
    this.byName.set(listener.name, listener);
  }

  [Symbol.iterator](): Iterator<ManagedListener> {
    return this.byName.values();
  }

  /** startAll binds (or listens again on) every listener not open: telinit 3. */
  async startAll(): Promise<void> {
    for (const l of this) await l.start();
  }

  /** stopAll stops accepting everywhere; with release, UNIX socket files go too (no successor wants them). */
  stopAll(release: boolean): void {
    for (const l of this) l.stop(release);
  }

  /**
   * drain stops accepting everywhere and drains the connections, at most
   * timeoutMs; resolves with how many were forced closed at the end. A
   * take-back ends it early (the trackers are reset).
   */
  async drain(release: boolean, idleGraceMs: number, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    this.stopAll(release);
    const forced = await Promise.all([...this].map((l) => l.tracker.drain(idleGraceMs, deadline)));
    for (const l of this) l.tracker.reset();
    return forced.reduce((a, b) => a + b, 0);
  }

  /** get: the listener of that name, if any. */
  get(name: string): ManagedListener | undefined {
    return this.byName.get(name);
  }

  /** handingOver: the names of the listeners that move their idle connections to a new instance (the handOver option). */
  handingOver(): string[] {
    return [...this].filter((l) => l.tracker.handsOver).map((l) => l.name);
  }

  /** handingOverSockets: the names of the listeners whose sockets the application may hand over (the handOverSockets option). */
  handingOverSockets(): string[] {
    return [...this].filter((l) => l.tracker.handsOverSockets).map((l) => l.name);
  }

  /** owner: the listener that socket is a connection of, if any. */
  owner(socket: net.Socket): ManagedListener | undefined {
    return [...this].find((l) => l.tracker.owns(socket));
  }

  /** setMover: drains pass idle HTTP/1 connections to mover (null: they close them). */
  setMover(mover: ConnectionMover | null): void {
    for (const l of this) l.tracker.setMover(mover);
  }

  /** moveCounts: connections handed over, drained and forced, over every drain of every listener. */
  moveCounts(): MoveCounts {
    const sum: MoveCounts = { handedOver: 0, drained: 0, forced: 0 };
    for (const l of this) addMoved(sum, l.tracker.moved);
    return sum;
  }

  /** keepSpares keeps a duplicate of every open listener, for takeBack(). */
  keepSpares(): void {
    for (const l of this) l.keepSpare();
  }

  /** dropSpares closes the duplicates, once no take-back can come. */
  dropSpares(): void {
    for (const l of this) l.dropSpare();
  }

  /** takeBack listens again on the duplicates and stops the drain: the connections are ours to keep again. */
  async takeBack(log: (msg: string) => void): Promise<void> {
    for (const l of this) {
      await l.takeBack().catch((err: Error) => log(`take-back of "${l.name}" failed: ${err.message}`));
      l.tracker.reset();
    }
  }

  /** requestCount: requests received on every listener. */
  requestCount(): number {
    let n = 0;
    for (const l of this) n += l.tracker.requests;
    return n;
  }

  /** connectionCount: connections open on every listener. */
  connectionCount(): number {
    let n = 0;
    for (const l of this) n += l.tracker.count;
    return n;
  }

  /** info: name, address and state of every listener, for status. */
  info(): ListenerInfo[] {
    return [...this].map((l) => ({
      name: l.name, open: l.isOpen, draining: l.tracker.isDraining, connections: l.tracker.count, states: l.tracker.states(), address: l.address(),
    }));
  }

  /** states: every listener's connections by state, by listener name. */
  states(): Record<string, ConnectionStates> {
    const out: Record<string, ConnectionStates> = {};
    for (const l of this) out[l.name] = l.tracker.states();
    return out;
  }

  /**
   * status: one structured row per listener, for the status command: name,
   * state (open or closed), kind (tcp or unix), host and port or path, the fd
   * while open (null when closed), connections, and whether systemd passed it.
   */
  status(): ListenerStatus[] {
    return [...this].map((l) => {
      const a = l.address();
      const where = a.family === 'unix'
        ? { path: typeof a.path === 'string' ? a.path : null }
        : { host: typeof a.host === 'string' ? a.host : null, port: typeof a.port === 'number' ? a.port : null };
      return { name: l.name, state: l.isOpen ? 'open' : l.tracker.isDraining ? 'draining' : 'closed', kind: a.family === 'unix' ? 'unix' : 'tcp', ...where, fd: l.isOpen ? fdOrNull(l) : null, connections: l.tracker.count, systemd: a.systemd === true };
    });
  }

  /** closedPorts: the ports of listeners closed in runlevel 1, which a successor binds again at telinit 3. */
  closedPorts(): Meta {
    const ports: Meta = {};
    for (const l of this) {
      const port = l.address().port;
      if (!l.isOpen && typeof port === 'number' && port > 0) ports[`port:${l.name}`] = port;
    }
    return ports;
  }
}

/** fdOrNull: a listener's fd, or null when its server was closed behind the library's back (status must still answer). */
function fdOrNull(l: ManagedListener): number | null {
  try {
    return l.fd();
  } catch {
    return null;
  }
}
