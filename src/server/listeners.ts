/**
 * ManagedListener: one named listening socket of the application, bound fresh
 * or taken from a predecessor, that can stop accepting without Node's
 * close-idle step and without unlinking a UNIX socket a successor still uses.
 */
import dns from 'node:dns';
import net from 'node:net';
import { fdOf, listenOnFd } from '../fds.js';
import { OwnedFd } from '../owned-fd.js';
import { addon } from '../native.js';
import { rawListen } from '../raw-listen.js';
import { bindSocket, clearStaleSocket, SocketFile } from '../socketpath.js';
import type { Meta } from '../meta.js';
import { ConnectionTracker } from './drain.js';
import type { DrainOptions } from './drain/options.js';
import type { TicketKeys } from './ticket-keys.js';

/** Where a listener binds when it is not inherited. */
export interface BindOptions {
  /** TCP port (0: any; the real port is kept across redeploys and runlevels). */
  port?: number;
  host?: string;
  /** UNIX socket path, instead of port/host. */
  path?: string;
  /** File mode of a UNIX socket (default 0o660). */
  mode?: number;
  backlog?: number;
  ipv6Only?: boolean;
}

/** What `listen()` takes: where to bind, what the drain does with connections it does not close itself, and TLS. */
export interface ListenOptions extends BindOptions, DrainOptions {
  /**
   * ms between two rotations of a TLS listener's session-ticket keys (https,
   * http2 secure); 0: never. Default: the server's `ticketKeyRotation` (1 h).
   */
  ticketKeyRotation?: number;
}

/**
 * listenError gives a failed TCP bind a message that names the listener, the
 * address and what to do; the errno's code, errno, syscall, address and port
 * stay as Node set them, and the original is the cause.
 */
export function listenError(name: string, err: Error): Error {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  const where = e.address === undefined ? `port ${e.port}` : `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`;
  const todo = e.code === 'EADDRINUSE' ? `${where} is in use by another process: stop it, or listen on another port`
    : e.code === 'EACCES' ? `permission denied to bind ${where}: use a port above 1023, or give node CAP_NET_BIND_SERVICE`
    : e.code === 'EADDRNOTAVAIL' ? `this machine has no address ${e.address}: listen on one of its addresses, or on every address`
    : null;
  if (todo === null) return err;
  return Object.assign(new Error(`listen("${name}"): ${e.code}: ${todo}`, { cause: err }), {
    code: e.code, errno: e.errno, syscall: e.syscall, address: e.address, port: e.port,
  });
}

export class ManagedListener {
  readonly tracker: ConnectionTracker;
  private file: SocketFile | null = null;
  private open = false;
  /** A duplicate kept while a new instance takes over, to serve again if it dies. */
  private spare: OwnedFd | null = null;
  /**
   * The socket came from systemd (socket activation), here or in a
   * predecessor: it is kept across every redeploy, whatever the bind options
   * say, since systemd owns the address.
   */
  activated = false;
  /** The session-ticket keys of a TLS listener (null for plain ones): they go with its socket to a new instance. */
  tickets: TicketKeys | null = null;
  /** More sockets of the same listener (members of its SO_REUSEPORT group, in a worker), not yet listened on. */
  private extras: OwnedFd[] = [];
  /** Servers accepting on the extra sockets, each passing its connections to the application's server. */
  private aux: net.Server[] = [];
  /**
   * The predecessor's socket on the same port but another host (see
   * moveFrom): accepted on beside the new bind until dropMoved().
   */
  private moved: OwnedFd | null = null;
  private movedAux: net.Server | null = null;

  constructor(readonly name: string, readonly server: net.Server, private bind: ListenOptions) {
    this.tracker = new ConnectionTracker(server, bind, name);
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** address: what the listener is bound to, for status and meta. */
  address(): Meta {
    const systemd: Meta = this.activated ? { systemd: true } : {};
    const a = this.open ? this.server.address() : null;
    if (typeof a === 'string') return { family: 'unix', path: a, ...systemd };
    if (this.bind.path !== undefined && !this.activated) return { family: 'unix', path: this.bind.path };
    if (a && typeof a === 'object') return { family: 'tcp', host: a.address, port: a.port, ...systemd };
    return { family: 'tcp', host: this.bind.host ?? null, port: this.bind.port ?? 0, ...systemd };
  }

  /**
   * matches tells whether an inherited socket's meta fits this listener's
   * bind options: same UNIX path, or same port (any, when the options leave
   * it to the kernel) and same host. A socket from systemd always fits.
   */
  matches(meta: Meta): boolean {
    if (meta.kind !== 'listener') return false;
    if (meta.systemd === true) return true;
    if (this.bind.path !== undefined) return meta.family === 'unix' && meta.path === this.bind.path;
    if (meta.family !== 'tcp') return false;
    if (this.bind.port && meta.port !== this.bind.port) return false;
    return sameHost(this.bind.host, typeof meta.host === 'string' ? meta.host : null);
  }

  /**
   * overlaps tells whether an inherited socket is a TCP listener on the port
   * this listener binds (a port given, not left to the kernel) but on another
   * host: the address moved (127.0.0.1:P to 0.0.0.0:P, or the reverse), and
   * a fresh bind beside it would fail with EADDRINUSE (see moveFrom).
   */
  overlaps(meta: Meta): boolean {
    if (meta.kind !== 'listener' || meta.systemd === true || meta.family !== 'tcp') return false;
    if (this.bind.path !== undefined || !this.bind.port || meta.port !== this.bind.port) return false;
    return !this.matches(meta);
  }

  /**
   * moveFrom takes the predecessor's socket on the same port but another
   * host (overlaps). Linux refuses a bind beside a listening socket on an
   * overlapping address (EADDRINUSE) unless both have SO_REUSEPORT and the
   * same uid; the flag is checked on the old socket at the time of the bind,
   * so it is set here on the copy received (the same socket the predecessor
   * listens on). start() then binds fresh with SO_REUSEPORT and also accepts
   * on this socket: connections the kernel still gives it (it prefers a
   * socket bound to the very address over a wildcard one) are served here
   * and not left in its queue once the predecessor stops accepting, until
   * dropMoved() once the predecessor is gone. Takes fd (closed on failure).
   */
  moveFrom(fd: OwnedFd): void {
    try {
      addon.setReusePort(fd.fd);
    } catch (err) {
      fd.close();
      throw err;
    }
    this.moved?.close();
    this.moved = fd;
  }

  /**
   * retireMoved, once the predecessor is gone, stops the predecessor's socket
   * taken by moveFrom() without resetting a connection: a socket filter drops
   * what comes to it from now on (a client sends its SYN again a second later,
   * to the new bind then), what it queued is accepted here for `graceMs`, then
   * it is closed (the last copy: the kernel unbinds it).
   */
  async retireMoved(graceMs = 100): Promise<void> {
    const aux = this.movedAux;
    if (aux === null) return this.dropMoved();
    try {
      addon.dropIncoming(fdOf(aux));
    } catch {
      // not a socket any more: nothing to keep from it
    }
    await new Promise((resolve) => setTimeout(resolve, graceMs).unref());
    if (this.movedAux === aux) this.dropMoved();
  }

  /** dropMoved stops accepting on the predecessor's socket taken by moveFrom() and closes this copy. */
  dropMoved(): void {
    this.moved?.close();
    this.moved = null;
    this.movedAux?.close();
    this.movedAux = null;
  }

  /** bindHost: the host asked for, as a log line names it. */
  bindHost(): string {
    return this.bind.host === undefined || this.bind.host === '' ? 'every address' : this.bind.host;
  }

  /** rememberPort sets the port a fresh bind uses, when the bind options left it to the kernel. */
  rememberPort(port: number): void {
    if (this.bind.path === undefined && !this.bind.port) this.bind = { ...this.bind, port };
  }

  /**
   * addExtra: one more socket for this listener (a worker accepting on
   * several members of a group): start() listens on it too, and every
   * connection it accepts goes to the application's server as its own.
   */
  addExtra(fd: OwnedFd): void {
    this.extras.push(fd);
  }

  /** dropExtras closes the extra sockets not listened on yet. */
  dropExtras(): void {
    for (const e of this.extras.splice(0)) e.close();
  }

  /** start listens on an inherited fd (taken from its owner, even if this fails) or binds fresh. */
  async start(inherited?: OwnedFd): Promise<void> {
    if (this.open) {
      inherited?.close();
      return;
    }
    try {
      await this.startMain(inherited);
    } catch (err) {
      for (const e of this.extras.splice(0)) e.close();
      this.dropMoved();
      throw err;
    }
    for (const extra of this.extras.splice(0)) {
      const aux = this.auxServer();
      this.aux.push(aux);
      await listenOnFd(aux, extra.take());
    }
    if (this.moved !== null) {
      const aux = this.auxServer();
      this.movedAux = aux;
      await listenOnFd(aux, this.moved.take());
      this.moved = null;
    }
  }

  /** auxServer: a server that accepts as the application's own would (half-open, Nagle, keep-alive) and passes it every connection. */
  private auxServer(): net.Server {
    const own = this.server as net.Server & { allowHalfOpen?: boolean; pauseOnConnect?: boolean; noDelay?: boolean; keepAlive?: boolean; keepAliveInitialDelay?: number };
    const aux = net.createServer({
      allowHalfOpen: own.allowHalfOpen ?? false, pauseOnConnect: own.pauseOnConnect ?? false,
      noDelay: own.noDelay ?? false, keepAlive: own.keepAlive ?? false, keepAliveInitialDelay: own.keepAliveInitialDelay ?? 0,
    }, (socket) => this.server.emit('connection', socket));
    aux.on('error', (err) => this.server.emit('error', err));
    return aux;
  }

  /**
   * bindBeside binds the listener's TCP address with SO_REUSEPORT, beside
   * the predecessor's socket taken by moveFrom(); a name is resolved first,
   * no host is every address (IPv6 and IPv4 where the machine has IPv6).
   */
  private async bindBeside(): Promise<number> {
    const hosts = this.bind.host === undefined || this.bind.host === '' ? ['::', '0.0.0.0']
      : net.isIP(this.bind.host) ? [this.bind.host]
      : [(await dns.promises.lookup(this.bind.host)).address];
    for (let i = 0; ; i++) {
      try {
        return addon.listenReusePort(hosts[i]!, this.bind.port ?? 0, this.bind.backlog ?? 511, this.bind.ipv6Only ?? false).fd;
      } catch (err) {
        if ((err as { code?: string }).code !== 'EAFNOSUPPORT' || i + 1 >= hosts.length) throw listenError(this.name, err as Error);
      }
    }
  }

  private async startMain(inherited?: OwnedFd): Promise<void> {
    if (inherited !== undefined) {
      await listenOnFd(this.server, inherited.take());
    } else if (this.moved !== null) {
      await listenOnFd(this.server, await this.bindBeside());
    } else if (this.bind.path !== undefined) {
      clearStaleSocket(this.bind.path, `listen ${this.name}`);
      await listenOnFd(this.server, bindSocket(this.bind.path, this.bind.mode ?? 0o660, this.bind.backlog ?? 511, `listen ${this.name}`));
    } else {
      await new Promise<void>((resolve, reject) => {
        const failed = (err: Error) => reject(listenError(this.name, err));
        this.server.once('error', failed);
        rawListen.call(this.server, { port: this.bind.port ?? 0, host: this.bind.host, backlog: this.bind.backlog, ipv6Only: this.bind.ipv6Only }, () => {
          this.server.off('error', failed);
          resolve();
        });
      });
    }
    this.open = true;
    this.tickets?.resume();
    if (this.bind.path !== undefined && !this.activated) this.file ??= new SocketFile(this.bind.path);
    const a = this.server.address();
    // Keep the real port: a rebind after runlevel 1 takes the same one.
    if (a && typeof a === 'object' && this.bind.path === undefined) this.bind = { ...this.bind, port: a.port };
  }

  /** fd of the listening socket, to hand over. */
  fd(): number {
    return fdOf(this.server);
  }

  /** keepSpare keeps a duplicate of the listening socket, for takeBack(). */
  keepSpare(): void {
    if (this.open && this.spare === null) this.spare = new OwnedFd(addon.dup(this.fd()), { name: this.name });
  }

  /** takeBack listens again on the spare (if the copy was already stopped); the spare is used or closed. */
  async takeBack(): Promise<void> {
    const spare = this.spare;
    this.spare = null;
    if (spare !== null) await this.start(spare);
  }

  /** dropSpare closes the spare, once no take-back can come. */
  dropSpare(): void {
    this.spare?.close();
    this.spare = null;
  }

  /**
   * stop closes this process's copy of the socket: with a successor holding
   * one, nothing queued is lost. It skips http.Server's close-idle step, which
   * would race clients' next requests (connections are drained separately).
   * With `release`, a UNIX socket file is removed too (no successor wants it).
   */
  stop(release: boolean): void {
    if (!this.open) return;
    this.open = false;
    this.tickets?.pause();
    net.Server.prototype.close.call(this.server);
    for (const aux of this.aux.splice(0)) aux.close();
    this.dropMoved();
    if (release && !this.activated) this.file?.remove();
  }
}

/** ANY: what a listener bound without a host reports (Node binds :: when it can, else 0.0.0.0). */
const ANY = new Set(['::', '0.0.0.0']);

/**
 * sameHost tells whether a socket bound to actual serves what wanted asks:
 * no host means every address; an IP address must be the same; a name
 * (localhost) is resolved by the kernel at bind time, so its loopback
 * addresses fit, and another name is taken as it is.
 */
function sameHost(wanted: string | undefined, actual: string | null): boolean {
  if (wanted === undefined || wanted === '') return actual === null || ANY.has(actual);
  if (actual === null) return false;
  const norm = (h: string) => h.toLowerCase().replace(/^::ffff:(?=\d+\.)/, '');
  if (net.isIP(wanted)) return norm(wanted) === norm(actual) || (ANY.has(wanted) && ANY.has(actual));
  if (wanted.toLowerCase() === 'localhost') return actual === '127.0.0.1' || actual === '::1';
  return true;
}
