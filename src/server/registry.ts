/**
 * Registry: the named descriptors of an instance. What came in (inherited
 * from a predecessor, activated by systemd) waits here, owned, until the
 * application claims it by name; what the application registered is listed
 * for a hand-off. Names are stable keys (never positions), one per thing.
 */
import { DuplicateNameError, invalidArgument } from '../errors.js';
import type { OutgoingFd } from '../handoff/connection.js';
import type { ActivatedFd } from '../systemd.js';
import type { InheritedFd } from './predecessor.js';
import { OwnedFd, closeOwned } from '../owned-fd.js';

export type RegisteredKind = 'listener' | 'dgram' | 'file' | 'fd';

interface Registered {
  name: string;
  kind: RegisteredKind;
  /** What to hand to a new instance now (null: nothing at the moment, e.g. a listener closed in runlevel 1). */
  handoff(): OutgoingFd | null;
}

/** Claimed: an inherited or activated descriptor, now the claimer's, and where it came from. */
export interface Claimed {
  fd: OwnedFd;
  /** 'systemd': socket activation, here or in a predecessor (kept across every redeploy). */
  source: 'predecessor' | 'systemd';
}

export class Registry {
  private readonly inherited = new Map<string, OwnedFd>();
  private readonly activated = new Map<string, OwnedFd>();
  private conns: OwnedFd[] = [];
  private readonly registered = new Map<string, Registered>();

  /** inherit takes ownership of what a predecessor sent: control connections apart, the rest by name (a name twice: the first wins). */
  inherit(fds: readonly InheritedFd[]): void {
    for (const f of fds) {
      const owned = new OwnedFd(f.fd, f.meta);
      if (f.meta.kind === 'control-conn') this.conns.push(owned);
      else if (this.inherited.has(String(f.meta.name))) owned.close();
      else this.inherited.set(String(f.meta.name), owned);
    }
  }

  /** activate takes ownership of the sockets systemd passed (a name twice: the first wins). */
  activate(fds: readonly ActivatedFd[]): void {
    for (const a of fds) {
      const owned = new OwnedFd(a.fd, { name: a.name, kind: 'listener', systemd: true });
      if (this.activated.has(a.name)) owned.close();
      else this.activated.set(a.name, owned);
    }
  }

  /** inheritedCount: descriptors from the predecessor still unclaimed. */
  get inheritedCount(): number {
    return this.inherited.size;
  }

  /**
   * claim gives the caller what came in under name, or undefined. One of
   * another kind than asked is closed (the caller opens afresh), and so is
   * one `accept` refuses (e.g. bound elsewhere than asked), after log says why.
   */
  claim(name: string, kind: string, log: (msg: string) => void, accept?: (c: Claimed) => boolean): Claimed | undefined {
    const inherited = this.inherited.get(name);
    this.inherited.delete(name);
    if (inherited && inherited.meta.kind !== kind) {
      inherited.close();
      log(`inherited "${name}" is a ${String(inherited.meta.kind)}, not a ${kind}: closed it, opening afresh`);
    } else if (inherited) {
      const c: Claimed = { fd: inherited, source: inherited.meta.systemd === true ? 'systemd' : 'predecessor' };
      if (!accept || accept(c)) return c;
      inherited.close();
      log(`inherited ${kind} "${name}" is bound elsewhere than asked: closed it, opening afresh`);
    }
    const activated = kind === 'listener' ? this.activated.get(name) : undefined;
    if (!activated) return undefined;
    this.activated.delete(name);
    return { fd: activated, source: 'systemd' };
  }

  /** takeActivated gives the caller the socket systemd passed under name, whatever its kind, or undefined. */
  takeActivated(name: string): OwnedFd | undefined {
    const activated = this.activated.get(name);
    this.activated.delete(name);
    return activated;
  }

  /** takeConnections gives the caller the control connections the predecessor sent. */
  takeConnections(): OwnedFd[] {
    return this.conns.splice(0);
  }

  /** register adds name; a name used twice is ERR_GRACEFUL_DUPLICATE_NAME. */
  register(name: string, kind: RegisteredKind, handoff: Registered['handoff']): void {
    if (typeof name !== 'string' || name === '') throw invalidArgument('GracefulServer', 'a name must be a non-empty string');
    if (this.registered.has(name)) throw new DuplicateNameError(`"${name}" is already registered: give each listener, socket and file its own name`);
    this.registered.set(name, { name, kind, handoff });
  }

  /** handoffList: what each registered thing hands to a new instance now. */
  handoffList(): OutgoingFd[] {
    const out: OutgoingFd[] = [];
    for (const r of this.registered.values()) {
      const item = r.handoff();
      if (item) out.push(item);
    }
    return out;
  }

  /** closeUnclaimed closes what nobody claimed (at ready): how many, and the names of the named ones. */
  closeUnclaimed(): { count: number; names: string[] } {
    const names = [...this.inherited.keys(), ...this.activated.keys()];
    const all = [...this.inherited.values(), ...this.activated.values(), ...this.conns.splice(0)];
    this.inherited.clear();
    this.activated.clear();
    closeOwned(all);
    return { count: all.length, names };
  }
}
