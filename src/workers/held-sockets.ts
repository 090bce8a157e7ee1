/**
 * HeldSockets: what the primary of a service with workers holds for them,
 * and owns until its halt: the listening sockets (one per listener, or an
 * SO_REUSEPORT group of members, one per slot), the UDP sockets, and the
 * TLS session-ticket keys of its listeners. The primary never accepts nor
 * reads on them; each member is registered for hand-offs under its own name.
 */
import dns from 'node:dns';
import type dgram from 'node:dgram';
import net from 'node:net';
import { DuplicateNameError } from '../errors.js';
import type { LogFields } from '../log.js';
import type { Meta } from '../meta.js';
import { addon } from '../native.js';
import { rawListen } from '../raw-listen.js';
import { OwnedFd } from '../owned-fd.js';
import type { ListenerInfo, ListenerStatus } from '../server/listener-set.js';
import type { ListenOptions, ManagedListener } from '../server/listeners.js';
import type { Predecessor } from '../server/predecessor.js';
import type { Registry } from '../server/registry.js';
import type { TicketKeys } from '../server/ticket-keys.js';
import { emptyStates } from '../conn-states.js';
import { MAX_WORKERS } from '../server/options.js';
import { bindListener, bindMember, memberName, memberOf, type PrimaryListener } from './listener-groups.js';

/** The highest member index of a listener's group looked for in what a predecessor sent. */
const MAX_MEMBER_INDEX = 16 * MAX_WORKERS;

/** probeFree rejects with Node's EADDRINUSE error when something listens on port already (a plain bind, closed at once). */
function probeFree(port: number | string, host: string | undefined, ipv6Only: boolean | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    rawListen.call(probe, { port: Number(port), host, ipv6Only }, () => probe.close(() => resolve()));
  });
}

export interface HeldSocketsOptions {
  registry: Registry;
  log(msg: string, fields?: LogFields): void;
  /** balance: 'reuseport' gives each listener an SO_REUSEPORT group. */
  reuseport: boolean;
  predecessor(): Predecessor | null;
}

export class HeldSockets {
  /** The listening sockets, by listener name (one, or the members of a group). */
  private readonly listeners = new Map<string, PrimaryListener[]>();
  private readonly dgrams = new Map<string, PrimaryListener>();
  /** The names of the group members registered for hand-offs. */
  private readonly registeredMembers = new Set<string>();
  /** The session-ticket keys of the TLS listeners, which every worker started gets. */
  readonly tickets = new Map<string, TicketKeys>();

  constructor(private readonly options: HeldSocketsOptions) {}

  /**
   * holdListener: the listener's socket is inherited (from a predecessor or
   * systemd) or bound, and held for the workers; the application's server
   * stays unbound here. Resolves with the meta of the socket a predecessor
   * sent, if it did.
   */
  async holdListener(listener: ManagedListener, bind: ListenOptions): Promise<Meta | undefined> {
    const { registry, log } = this.options;
    const name = listener.name;
    if (this.listeners.has(name)) throw new DuplicateNameError(`listen("${name}"): a listener of that name exists already`);
    const claimed = registry.claim(name, 'listener', log, (c) => c.source === 'systemd' || listener.matches(c.fd.meta));
    const lastPort = this.options.predecessor()?.state[`port:${name}`];
    const where = typeof lastPort === 'number' && !bind.port && bind.path === undefined ? { ...bind, port: lastPort } : bind;
    // An SO_REUSEPORT group, one member per slot, unless the socket is systemd's,
    // a UNIX one, or inherited from an instance that shared one socket.
    const group = this.options.reuseport && bind.path === undefined && claimed?.source !== 'systemd' &&
      (claimed === undefined || typeof claimed.fd.meta.group === 'string');
    const members: PrimaryListener[] = [];
    try {
      // Every member a predecessor's group had comes along, however many
      // workers run now: closing one would reset what waits in its queue.
      for (let i = 1; group && i <= MAX_MEMBER_INDEX; i++) {
        const inherited = registry.claim(memberName(name, i), 'listener', log);
        if (inherited) members.push({ fd: inherited.fd, meta: inherited.fd.meta });
      }
      if (claimed) {
        members.unshift({ fd: claimed.fd, meta: { ...claimed.fd.meta, name, kind: 'listener', ...(claimed.source === 'systemd' ? { systemd: true } : {}) } });
      } else {
        const port = members[0] ? Number(members[0].meta.port) : where.port;
        // SO_REUSEPORT would let a second copy of the service join the port silently: a
        // plain bind first fails with EADDRINUSE where anyone else listens, as without workers.
        if (group && !members[0] && port) await probeFree(port, where.host, where.ipv6Only);
        members.unshift(group ? await bindMember(name, 0, { ...where, port }) : await bindListener(listener, where));
      }
      for (const m of members) this.registerMember(name, m);
    } catch (err) {
      for (const m of members) m.fd.close();
      throw err;
    }
    this.listeners.set(name, members);
    return claimed?.source === 'predecessor' ? claimed.fd.meta : undefined;
  }

  /**
   * holdDgram: the UDP socket is inherited or bound (and read by nobody
   * here); every worker gets it and reads from it, and the kernel gives each
   * datagram to one of them. The application's socket stays unbound here.
   */
  async holdDgram(name: string, socket: dgram.Socket, bind: { port?: number; address?: string }): Promise<void> {
    const { registry, log } = this.options;
    if (this.dgrams.has(name)) throw new DuplicateNameError(`dgram("${name}"): "${name}" is already registered: give each listener, socket and file its own name`);
    const claimed = registry.claim(name, 'dgram', log);
    let held: OwnedFd;
    if (claimed) {
      held = claimed.fd;
    } else {
      const ipv6 = (socket as unknown as { type?: string }).type === 'udp6';
      const host = bind.address ?? (ipv6 ? '::' : '0.0.0.0');
      const numeric = net.isIP(host) ? host : (await dns.promises.lookup(host, { family: ipv6 ? 6 : 4 })).address;
      const { fd, port } = addon.bindUdp(numeric, bind.port ?? 0, false);
      held = new OwnedFd(fd, { name, kind: 'dgram', port });
    }
    const meta = { ...held.meta, name, kind: 'dgram' };
    try {
      registry.register(name, 'dgram', () => (held.open ? { fd: held.fd, meta } : null));
    } catch (err) {
      held.close();
      throw err;
    }
    this.dgrams.set(name, { fd: held, meta });
  }

  /** registerMember lists a member of a held listener for hand-offs, under its own name (once: a name comes back after a failed scale). */
  private registerMember(name: string, m: PrimaryListener): void {
    const regName = String(m.meta.name);
    if (this.registeredMembers.has(regName)) return;
    this.registeredMembers.add(regName);
    this.options.registry.register(regName, 'listener', () => {
      const cur = this.listeners.get(name)?.find((x) => x.meta.name === regName && x.fd.open);
      return cur ? { fd: cur.fd.fd, meta: { ...cur.meta, ...this.tickets.get(name)?.meta() } } : null;
    });
  }

  /**
   * growGroups gives each listener's SO_REUSEPORT group at least count open
   * members, binding (without listening) what is missing: a member joins the
   * group only when the worker that gets it listens. Resolves with what
   * closes the members added, should their workers not start.
   */
  async growGroups(count: number): Promise<() => void> {
    const added: PrimaryListener[] = [];
    try {
      for (const [name, members] of this.listeners) {
        const first = members.find((m) => m.fd.open);
        if (!first || typeof first.meta.group !== 'string') continue; // one shared socket
        let open = members.filter((m) => m.fd.open).length;
        let next = Math.max(...members.map((m) => Number(m.meta.member ?? 0))) + 1;
        for (; open < count; open++, next++) {
          const m = await bindMember(name, next, {
            host: String(first.meta.host), port: Number(first.meta.port),
            ipv6Only: first.meta.ipv6Only === true, backlog: typeof first.meta.backlog === 'number' ? first.meta.backlog : undefined,
          }, false);
          members.push(m);
          added.push(m);
          this.registerMember(name, m);
        }
      }
    } catch (err) {
      for (const m of added) m.fd.close();
      throw err;
    }
    return () => {
      for (const m of added) m.fd.close();
      for (const [name, members] of this.listeners) this.listeners.set(name, members.filter((m) => !added.includes(m)));
    };
  }

  /** crashLooping: the slot stopped restarting: its member of each group closes, so that the kernel sends new connections to the members still served. */
  crashLooping(slot: number, count: number): void {
    for (const members of this.listeners.values()) {
      if (members.length > 1) members.filter((m) => m.fd.open && memberOf(m.meta.member, slot, count)).forEach((m) => m.fd.close());
    }
  }

  /** rotateTickets rotates the keys of every TLS listener held; their names. */
  rotateTickets(): string[] {
    const names: string[] = [];
    for (const [name, tickets] of this.tickets) {
      tickets.rotate();
      names.push(name);
    }
    return names;
  }

  /** address: where a listener or UDP socket is bound ({ port } or { path }). */
  address(name: string): Meta | null {
    return this.listeners.get(name)?.[0]?.meta ?? this.dgrams.get(name)?.meta ?? null;
  }

  /** release closes every socket held and pauses the ticket rotations: the workers are gone, and a successor holds its own copies. */
  release(): void {
    for (const members of this.listeners.values()) for (const m of members) m.fd.close();
    for (const t of this.tickets.values()) t.pause();
    for (const d of this.dgrams.values()) d.fd.close();
  }

  /** status: the listeners as status reports them: the sockets held (the connections are the workers'). */
  status(): ListenerStatus[] {
    return [...this.listeners].map(([name, members]) => {
      const open = members.filter((m) => m.fd.open);
      const { family, host, port, path: where } = members[0]!.meta;
      const at = family === 'unix' ? { path: typeof where === 'string' ? where : null } : { host: typeof host === 'string' ? host : null, port: typeof port === 'number' ? port : null };
      return { name, state: open.length > 0 ? 'open' : 'closed', kind: family === 'unix' ? 'unix' : 'tcp', ...at, fd: open[0]?.fd.fd ?? null, connections: 0, systemd: members[0]!.meta.systemd === true, members: open.length };
    });
  }

  /** info: name, address and state of every listener held (the connections are the workers'). */
  info(): ListenerInfo[] {
    return [...this.listeners].map(([name, members]) => {
      const { family, host, port, path: where } = members[0]!.meta;
      const address: Meta = family === 'unix' ? { family, path: where ?? null } : { family: family ?? 'tcp', host: host ?? null, port: port ?? null };
      return { name, open: members.some((m) => m.fd.open), draining: false, connections: 0, states: emptyStates(), address: members.length > 1 ? { ...address, members: members.length } : address };
    });
  }
}
