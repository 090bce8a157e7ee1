/**
 * The listening sockets a primary holds for its workers, and their
 * SO_REUSEPORT groups. The primary binds each listener and never accepts on
 * it. A shared listener is one socket every worker accepts on; a balanced one
 * is a group of sockets bound to one port with SO_REUSEPORT (the kernel
 * spreads connections over them), whose members are dealt to the workers by
 * slot. A group keeps every member it ever had (one that closed would drop
 * the connections queued on it), so fewer workers accept on more members each.
 */
import dns from 'node:dns';
import net from 'node:net';
import { invalidArgument } from '../errors.js';
import type { Meta } from '../meta.js';
import { addon } from '../native.js';
import { rawListen } from '../raw-listen.js';
import { fdOf } from '../fds.js';
import type { OutgoingFd } from '../handoff/connection.js';
import { bindSocket, clearStaleSocket } from '../socketpath.js';
import type { ManagedListener } from '../server/listeners.js';
import { OwnedFd } from '../owned-fd.js';

/** PrimaryListener: a listening socket the primary holds and hands to workers; it never accepts on it. */
export interface PrimaryListener {
  fd: OwnedFd;
  meta: Meta;
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
    rawListen.call(server, { port: bind.port ?? 0, host: bind.host, backlog: bind.backlog, ipv6Only: bind.ipv6Only }, () => {
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
