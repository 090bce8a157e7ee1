/**
 * The GracefulServer graceful-restart/register makes for an unmodified
 * program, at its first listen: each listen becomes a listener named after
 * its address (inherited at a redeploy, drained per connection, given to the
 * workers), and ready() is called when the program counts as ready
 * (readiness.ts). Until the listener really accepts (a new instance accepts
 * from ready() on, a primary never does), the program's server is told it
 * listens, with the address it will have, so that code waiting for
 * 'listening' (Fastify's listen(), a callback that logs the port) goes on.
 * With a log file, the program's standard output and error go to it, and
 * `reopen` (or SIGUSR1) re-opens it.
 */
import dns from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { errorCode } from '../errors.js';
import { GracefulServer } from '../graceful-server.js';
// Loaded with this module (at the first listen), so that a Node that cannot require() an ES module has the
// parts before the GracefulServer below asks for them (src/lazy.ts).
import '../control/service-parts.js';
import '../workers/role-parts.js';
import { addon } from '../native.js';
import { preloadState } from '../preload-state.js';
import { readConfigFile } from '../server/options.js';
import type { TakenListen } from './listen-args.js';
import { Readiness } from './readiness.js';
import { OWNER_ENV, readSettings, type HookCallbacks, type RegisterSettings } from './settings.js';

let made: Promise<RegisterService> | null = null;

/** service: the one RegisterService of this process, made at the first call. */
function service(callbacks: HookCallbacks): Promise<RegisterService> {
  made ??= RegisterService.make(readSettings(), callbacks);
  return made;
}

/** takeOver registers one listen of the program; it rejects as the listen would fail. */
export async function takeOver(server: net.Server, call: TakenListen, callbacks: HookCallbacks): Promise<void> {
  await (await service(callbacks)).listen(server, call);
}

/** readyMessage: the program said process.send('ready'). */
export async function readyMessage(callbacks: HookCallbacks): Promise<void> {
  (await service(callbacks)).readiness.message();
}

/**
 * addressOf: the address a server is told it has before it accepts, in
 * Node's shape: the one its listener has, so a host name is looked up as the
 * listener's bind looks it up (the first address). A program that compares
 * it with the addresses of the name (Fastify's listen on localhost) finds the
 * same as in the first instance.
 */
async function addressOf(call: TakenListen): Promise<net.AddressInfo | string> {
  if (call.bind.path !== undefined) return call.bind.path;
  const host = call.bind.host;
  if (host === undefined || host === '') return { address: '::', family: 'IPv6', port: call.bind.port! };
  if (net.isIP(host) !== 0) return { address: host, family: net.isIP(host) === 6 ? 'IPv6' : 'IPv4', port: call.bind.port! };
  const { address, family } = await dns.promises.lookup(host).catch(() => ({ address: host, family: 4 }));
  return { address, family: family === 6 ? 'IPv6' : 'IPv4', port: call.bind.port! };
}

/**
 * addressInUse: what Node gives a second listen on an address this process
 * listens on already (EADDRINUSE, with errno, syscall, address and port), for
 * a listen whose name is registered: the register keeps one listener per
 * address, and a program that handles EADDRINUSE (Fastify, a retry on
 * another port) goes on as in plain Node.
 */
function addressInUse(call: TakenListen, cause: unknown): Error {
  const where = call.bind.path ?? `${call.bind.host ?? '::'}:${String(call.bind.port)}`;
  const err = new Error(`listen EADDRINUSE: address already in use ${where} (graceful-restart/register: this program listens on ${call.name} already; `
    + 'one listener per address is kept across redeploys, so listen on it once)', { cause });
  const fields: Record<string, unknown> = { code: 'EADDRINUSE', errno: -os.constants.errno.EADDRINUSE, syscall: 'listen' };
  if (call.bind.path !== undefined) fields.address = call.bind.path;
  else Object.assign(fields, { address: call.bind.host ?? '::', port: call.bind.port });
  return Object.assign(err, fields);
}

/**
 * announce tells server it listens at where before it accepts: address()
 * answers where, and 'listening' is emitted. When the listener really starts
 * (ready() in a new instance), Node's own 'listening' reaches only the
 * listeners added since, so that nothing the program registered runs twice.
 */
function announce(server: net.Server, where: net.AddressInfo | string): void {
  const own = server as unknown as Record<string, unknown>;
  const emit = server.emit as (this: net.Server, event: string | symbol, ...args: unknown[]) => boolean;
  own.address = () => where;
  emit.call(server, 'listening');
  const seen = server.listeners('listening') as ((...args: unknown[]) => void)[];
  own.emit = function (this: net.Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'listening') return emit.call(this, event, ...args);
    delete own.emit;
    delete own.address;
    for (const l of seen) this.removeListener('listening', l);
    try {
      return emit.call(this, event, ...args);
    } finally {
      for (const l of seen) this.on('listening', l);
    }
  };
}

/** The signals that drain the program, whose handlers of the program's own are said at the signal. */
const DRAIN_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/**
 * sayOwnHandlers: at SIGTERM or SIGINT, before any handler runs, one line on
 * stderr when the program has handlers of its own for it (any but ours):
 * they run beside the drain, and one that calls process.exit() ends the
 * connections in flight with it.
 */
function sayOwnHandlers(ours: ReadonlySet<unknown>): void {
  for (const sig of DRAIN_SIGNALS) {
    const first = (): void => {
      const theirs = process.listeners(sig).filter((l) => l !== first && !ours.has(l)).length;
      if (theirs === 0) return;
      process.stderr.write(`graceful-restart: pid ${process.pid}: ${sig}: the program has ${theirs} ${sig} handler(s) of its own, which run beside the drain: `
        + 'one that calls process.exit() ends the requests in flight with it (let it close its servers and exit when they closed, or remove it)\n');
    };
    process.prependListener(sig, first);
  }
}

class RegisterService {
  readonly readiness: Readiness;
  /** The signal handlers the program had before the GracefulServer was made; null once ours are known. */
  private before: Set<unknown> | null = new Set(DRAIN_SIGNALS.flatMap((s) => process.listeners(s)));

  private constructor(private readonly app: GracefulServer, settings: RegisterSettings, private readonly callbacks: HookCallbacks) {
    const primary = app.isPrimary && app.workers > 0;
    // A real halt (not a hand-over) gives the program its socket files back.
    app.on('halt', (e: { handedOverTo?: unknown }) => {
      if (!e?.handedOverTo) callbacks.releasePaths();
    });
    this.readiness = new Readiness(settings.ready, settings.settle, primary, () => {
      this.app.ready().then(() => callbacks.ready(), (err: Error) => {
        process.stderr.write(`graceful-restart: cannot become ready: ${err.message}\n`);
        process.exit(1);
      });
    });
  }

  static async make(settings: RegisterSettings, callbacks: HookCallbacks): Promise<RegisterService> {
    const state = preloadState();
    process.env[OWNER_ENV] = String(process.pid);
    // Defaults, then the configuration file, then the flags and variables given.
    const given = Object.fromEntries(Object.entries({ controlSocket: settings.controlSocket, pidFile: settings.pidFile }).filter(([, v]) => v !== undefined));
    const options = { signals: true, sigusr1: 'reopen', ...(settings.config ? readConfigFile(settings.config) : {}), ...given };
    state.creating = true;
    let app: GracefulServer;
    try {
      app = new GracefulServer(options);
    } finally {
      state.creating = false;
    }
    const s = new RegisterService(app, settings, callbacks);
    if (settings.logFile) await s.sendOutputTo(settings.logFile);
    return s;
  }

  /** sendOutputTo points descriptors 1 and 2 at a file kept across redeploys, and again at each reopen. */
  private async sendOutputTo(file: string): Promise<void> {
    const log = await this.app.file('output', file);
    const point = (fd: number) => {
      addon.dup2(fd, 1);
      addon.dup2(fd, 2);
    };
    point(log.fd);
    log.on('reopen', point);
  }

  /** ownHandlersKnown: once the first listen installed the GracefulServer's signal handlers, what is new since it was made is ours. */
  private readonly ownHandlersKnown = (): void => {
    if (this.before === null) return;
    const before = this.before;
    this.before = null;
    sayOwnHandlers(new Set(DRAIN_SIGNALS.flatMap((s) => process.listeners(s)).filter((l) => !before.has(l))));
  };

  async listen(server: net.Server, call: TakenListen): Promise<void> {
    const bind = call.kind === 'unix'
      ? { path: call.bind.path, backlog: call.bind.backlog, mode: (0o777 & ~process.umask()) | (call.bind.extraMode ?? 0) }
      : { port: call.bind.port, host: call.bind.host, backlog: call.bind.backlog, ipv6Only: call.bind.ipv6Only };
    this.readiness.listenStarted();
    // A pipe that listens on a descriptor has no name in Node (address() is null): it is given the path it was asked for.
    const pipe = server as unknown as { _pipeName?: string };
    const pipeName = pipe._pipeName;
    if (call.kind === 'unix') pipe._pipeName = call.bind.path;
    // The first listen installs the GracefulServer's signal handlers, before the program's 'listening' callbacks run.
    if (this.before !== null) server.prependOnceListener('listening', this.ownHandlersKnown);
    try {
      await this.app.listen(call.name, server, bind);
    } catch (err) {
      pipe._pipeName = pipeName;
      this.readiness.listenEnded();
      throw errorCode(err) === 'ERR_GRACEFUL_DUPLICATE_NAME' ? addressInUse(call, err) : err;
    }
    this.ownHandlersKnown();
    server.removeListener('listening', this.ownHandlersKnown);
    if (call.kind === 'unix') this.callbacks.keepPath(path.resolve(call.bind.path!));
    if (!server.listening) announce(server, await addressOf(call));
    this.readiness.listenEnded(server);
  }
}
