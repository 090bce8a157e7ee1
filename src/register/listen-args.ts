/**
 * The arguments of net.Server#listen, read the way Node reads them
 * (`listen(port[, host][, backlog][, cb])`, `listen(path[, backlog][, cb])`,
 * `listen(options[, cb])`, `listen(handle[, backlog][, cb])`), and the stable
 * name a listener gets from its address: `tcp:127.0.0.1:8080`, `tcp:*:8080`
 * (every address), `tcp:[::1]:8080`, `unix:/run/app.sock`.
 */
import path from 'node:path';

/** A listen the register takes over: a TCP port other than 0, or a UNIX socket path. */
export interface TakenListen {
  kind: 'tcp' | 'unix';
  name: string;
  bind: { port?: number; host?: string; path?: string; backlog?: number; ipv6Only?: boolean; extraMode?: number };
  callback?: () => void;
}

/** A listen left to Node as it is, and why: port 0 (any free port), a handle or descriptor, arguments Node itself refuses. */
export interface LeftListen {
  kind: 'port0' | 'handle' | 'invalid';
  callback?: () => void;
}

export type ListenCall = TakenListen | LeftListen;

/** toPort: what Node takes for a port (a whole number or a numeric string, 0-65535), else null. */
function toPort(value: unknown): number | null {
  if (typeof value !== 'number' && typeof value !== 'string') return null;
  if (typeof value === 'string' && value.trim() === '') return null;
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 && n <= 65535 ? n : null;
}

/** isPipeName: a string Node takes for a path (one that is not a number). */
function isPipeName(value: unknown): value is string {
  return typeof value === 'string' && !(Number(value) >= 0);
}

/** listenerName: the name of a TCP or UNIX listener, from its address. */
export function listenerName(bind: { port?: number; host?: string; path?: string }): string {
  if (bind.path !== undefined) return `unix:${path.resolve(bind.path)}`;
  const host = bind.host === undefined || bind.host === '' ? '*' : bind.host.includes(':') ? `[${bind.host}]` : bind.host;
  return `tcp:${host}:${String(bind.port)}`;
}

/** tcp: a TCP listen on port (0 is left to Node: its port changes with every start). */
function tcp(port: number, host: string | undefined, backlog: number | undefined, ipv6Only: boolean | undefined, callback: (() => void) | undefined): ListenCall {
  if (port === 0) return { kind: 'port0', callback };
  const bind = { port, host, backlog, ipv6Only };
  return { kind: 'tcp', name: listenerName(bind), bind, callback };
}

/**
 * unix: a listen on a UNIX socket path (an abstract one, "\0...", is left to
 * Node). mode holds the bits readableAll and writableAll add; the service adds
 * them to what Node gives a socket file (0o777 less the umask).
 */
function unix(where: string, backlog: number | undefined, mode: number, callback: (() => void) | undefined): ListenCall {
  if (where.startsWith('\0')) return { kind: 'handle', callback };
  const bind = { path: where, backlog, extraMode: mode };
  return { kind: 'unix', name: listenerName(bind), bind, callback };
}

/** parseListenArgs reads the arguments of one net.Server#listen call. */
export function parseListenArgs(args: readonly unknown[]): ListenCall {
  const last = args[args.length - 1];
  const callback = typeof last === 'function' ? (last as () => void) : undefined;
  const rest = callback ? args.slice(0, -1) : args;
  const first = rest[0];
  if (rest.length === 0 || first === undefined || first === null) return { kind: 'port0', callback };
  if (typeof first === 'object') {
    const o = first as Record<string, unknown>;
    if ('_handle' in o || 'fd' in o || typeof o.fd === 'number') return { kind: 'handle', callback };
    const backlog = toPort(o.backlog) ?? undefined;
    if (typeof o.path === 'string' && o.port === undefined) {
      return unix(o.path, backlog, (o.readableAll ? 0o444 : 0) | (o.writableAll ? 0o222 : 0), callback);
    }
    if (o.port === undefined && !('port' in o)) return { kind: 'invalid', callback };
    const port = o.port === undefined || o.port === null ? 0 : toPort(o.port);
    if (port === null) return { kind: 'invalid', callback };
    const host = typeof o.host === 'string' ? o.host : undefined;
    return tcp(port, host, backlog, o.ipv6Only === true ? true : undefined, callback);
  }
  if (isPipeName(first)) return unix(first, toPort(rest[1]) ?? undefined, 0, callback);
  const port = toPort(first);
  if (port === null) return { kind: 'invalid', callback };
  const host = typeof rest[1] === 'string' ? rest[1] : undefined;
  const backlog = toPort(rest[1]) ?? toPort(rest[2]) ?? undefined;
  return tcp(port, host === undefined || toPort(host) !== null ? undefined : host, backlog, undefined, callback);
}
