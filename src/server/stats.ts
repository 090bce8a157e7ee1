/**
 * Stats: the live statistics of the `stats` control command (after
 * unixsock): requests and connections per listener, redeploys done, failed
 * and taken back, and the timings of the last redeploys.
 *
 * What survives a redeploy: the totals, carried to the new instance in the
 * hand-off state. They are the old instance's totals when it hands over:
 * what it still answers while it drains is not added. The counts of open
 * connections are this instance's own. A redeploy is counted as done by the
 * new instance at its ready, as failed (and taken back) by the old one,
 * which serves on.
 */
import type net from 'node:net';
import { isHttp2Server, loadedBuiltin } from '../node-builtins.js';
import type { Meta } from '../meta.js';
import type { RedeployEvent } from './redeploy.js';

/** How many redeploys `stats` keeps the timings of. */
export const STATS_LAST_REDEPLOYS = 5;
/** A carried state longer than this is dropped (the totals start over): a hand-off message has 4 KiB. */
const MAX_STATE_CHARS = 2048;

/** The protocol a listener speaks, for stats and for `health --probe-listeners`. */
export type ListenerProtocol = 'http' | 'https' | 'h2c' | 'h2' | 'tls' | 'tcp';

export function protocolOf(listening: net.Server): ListenerProtocol {
  const server: object = listening;
  if (isHttp2Server(server, 'secure')) return 'h2';
  if (isHttp2Server(server, 'plain')) return 'h2c';
  // A module never loaded defines no server of this process.
  const [https, http, tls] = [loadedBuiltin('https'), loadedBuiltin('http'), loadedBuiltin('tls')];
  if (https && server instanceof https.Server) return 'https';
  if (http && server instanceof http.Server) return 'http';
  if (tls && server instanceof tls.Server) return 'tls';
  return 'tcp';
}

/** RedeployTiming: one redeploy, as `stats` lists it. */
export interface RedeployTiming {
  /** The new instance's pid (null if it never started). */
  pid: number | null;
  result: 'done' | 'failed' | 'taken-back';
  /** When it was asked for (ISO 8601). */
  at: string;
  /** ms from the trigger to the new instance's ready (null if it never was). */
  readyMs: number | null;
  /** For a failure: its reason (exit, timeout, spawn, handoff, aborted, taken-back). */
  reason?: string;
}

/** Counts: requests (HTTP/2: streams) and accepted connections of one listener. */
export interface Counts { requests: number; connections: number }

interface Carried {
  since: string;
  listeners: Record<string, Counts>;
  redeploys: { done: number; failed: number; takenBack: number };
  last: RedeployTiming[];
  /** When the redeploy that started this instance was asked for (ms since the epoch). */
  startedAt?: number;
}

export class Stats {
  private since = new Date().toISOString();
  private readonly counts = new Map<string, Counts>();
  private readonly protocols = new Map<string, ListenerProtocol>();
  private redeploys = { done: 0, failed: 0, takenBack: 0 };
  private last: RedeployTiming[] = [];
  /** The redeploy under way here: when it was asked for, and its ready time. */
  private current: { startedAt: number; readyMs: number | null; pid: number | null } | null = null;
  /** When the redeploy that started this instance was asked for, from the predecessor. */
  private startedAt: number | null = null;
  /** In a primary: the counts its running workers last reported. */
  private live: () => Record<string, Counts>[] = () => [];

  /** restore takes the predecessor's totals from its hand-off state (a bad one is ignored: the totals start over). */
  restore(state: Meta): void {
    if (typeof state.stats !== 'string') return;
    let c: Carried;
    try {
      c = JSON.parse(state.stats) as Carried;
    } catch {
      return;
    }
    if (typeof c !== 'object' || c === null) return;
    if (typeof c.since === 'string') this.since = c.since;
    for (const [name, v] of Object.entries(c.listeners ?? {})) {
      if (Number.isSafeInteger(v?.requests) && Number.isSafeInteger(v?.connections)) this.counts.set(name, { requests: v.requests, connections: v.connections });
    }
    const r = c.redeploys;
    if (r && [r.done, r.failed, r.takenBack].every((n) => Number.isSafeInteger(n) && n >= 0)) this.redeploys = { ...r };
    if (Array.isArray(c.last)) this.last = c.last.slice(-STATS_LAST_REDEPLOYS);
    if (typeof c.startedAt === 'number') this.startedAt = c.startedAt;
  }

  /**
   * watch counts the requests (HTTP/2: streams) and accepted connections of
   * a listener's server; with count false (a primary, whose workers accept),
   * it only learns the listener's protocol.
   */
  watch(name: string, server: net.Server, count = true): void {
    const protocol = protocolOf(server);
    this.protocols.set(name, protocol);
    if (!count) return;
    const counts = this.countsOf(name);
    server.on('connection', () => counts.connections++);
    if (protocol === 'h2' || protocol === 'h2c') server.on('stream', () => counts.requests++);
    else if (protocol === 'http' || protocol === 'https') server.on('request', () => counts.requests++);
  }

  /** own: this process's counts per listener (a worker reports them to its primary). */
  own(): Record<string, Counts> {
    return Object.fromEntries([...this.counts].map(([name, c]) => [name, { ...c }]));
  }

  /**
   * fromWorkers: in a primary, where the counts of its running workers come
   * from (each worker's last report); snapshot and state() add them up.
   */
  fromWorkers(live: () => Record<string, Counts>[]): void {
    this.live = live;
  }

  /** retire adds what a worker that ended had counted to the totals, which outlive it. */
  retire(counts: Record<string, Counts>): void {
    for (const [name, c] of Object.entries(counts)) {
      if (!Number.isSafeInteger(c?.requests) || !Number.isSafeInteger(c?.connections)) continue;
      const mine = this.countsOf(name);
      mine.requests += c.requests;
      mine.connections += c.connections;
    }
  }

  /** total: the counts of listener name, with the running workers' (in a primary). */
  private total(name: string): Counts {
    const t = { ...this.countsOf(name) };
    for (const w of this.live()) {
      const c = w[name];
      if (!c) continue;
      t.requests += Number(c.requests) || 0;
      t.connections += Number(c.connections) || 0;
    }
    return t;
  }

  /** ready: this instance, started by a redeploy, is ready: that redeploy is done. */
  ready(): void {
    if (this.startedAt === null) return;
    this.redeploys.done++;
    this.push({ pid: process.pid, result: 'done', at: new Date(this.startedAt).toISOString(), readyMs: Date.now() - this.startedAt });
    this.startedAt = null;
  }

  /** onRedeploy follows the redeploys this instance runs. */
  onRedeploy(event: RedeployEvent): void {
    if (event.type === 'spawned') this.current = { startedAt: Date.now() - event.ms, readyMs: null, pid: event.pid };
    else if (event.type === 'ready' && this.current) this.current.readyMs = event.ms;
    else if (event.type === 'failed') {
      const reason = event.error.failure.reason;
      const c = this.current ?? { startedAt: Date.now() - event.ms, readyMs: null, pid: event.error.failure.pid ?? null };
      this.redeploys.failed++;
      if (reason === 'taken-back') this.redeploys.takenBack++;
      this.push({ pid: c.pid, result: reason === 'taken-back' ? 'taken-back' : 'failed', at: new Date(c.startedAt).toISOString(), readyMs: c.readyMs, reason });
      this.current = null;
    } else if (event.type === 'done') this.current = null;
  }

  /**
   * state: what the new instance carries on (a string in the hand-off
   * state; omitted if too long). It is taken as a redeploy starts, before
   * the spawn: now is when that redeploy was asked for.
   */
  state(): Meta {
    const carried: Carried = {
      since: this.since,
      listeners: Object.fromEntries([...this.counts.keys()].map((name) => [name, this.total(name)])),
      redeploys: this.redeploys,
      last: this.last,
      startedAt: Date.now(),
    };
    const text = JSON.stringify(carried);
    return text.length <= MAX_STATE_CHARS ? { stats: text } : {};
  }

  /** snapshot: the `stats` result; listeners gives each listener's address and open connections. */
  snapshot(listeners: { name: string; open: boolean; connections: number; address: Meta }[]): Record<string, unknown> {
    return {
      pid: process.pid,
      since: this.since,
      listeners: listeners.map((l) => ({
        name: l.name,
        protocol: this.protocols.get(l.name) ?? 'tcp',
        open: l.open,
        ...l.address,
        requests: this.total(l.name).requests,
        connections: this.total(l.name).connections,
        openConnections: l.connections,
      })),
      redeploys: { ...this.redeploys },
      last: this.last.map((t) => ({ ...t })),
    };
  }

  private countsOf(name: string): Counts {
    let c = this.counts.get(name);
    if (!c) this.counts.set(name, (c = { requests: 0, connections: 0 }));
    return c;
  }

  private push(t: RedeployTiming): void {
    this.last.push(t);
    if (this.last.length > STATS_LAST_REDEPLOYS) this.last.splice(0, this.last.length - STATS_LAST_REDEPLOYS);
  }
}
