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
import type net from 'node:net';
import { GracefulServer } from '../graceful-server.js';
import { addon } from '../native.js';
import { preloadState } from '../preload-state.js';
import { readConfigFile } from '../server/options.js';
import type { TakenListen } from './listen-args.js';
import { Readiness } from './readiness.js';
import { readSettings, type HookCallbacks, type RegisterSettings } from './settings.js';

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

/** The address a server is told it has before it accepts: Node's shape for it. */
function addressOf(call: TakenListen): net.AddressInfo | string {
  if (call.bind.path !== undefined) return call.bind.path;
  const host = call.bind.host;
  const family = host === undefined || host === '' || host.includes(':') ? 'IPv6' : 'IPv4';
  return { address: host === undefined || host === '' ? '::' : host, family, port: call.bind.port! };
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

class RegisterService {
  readonly readiness: Readiness;

  private constructor(private readonly app: GracefulServer, settings: RegisterSettings, callbacks: HookCallbacks) {
    const primary = app.isPrimary && app.workers > 0;
    this.readiness = new Readiness(settings.ready, settings.settle, primary, () => {
      this.app.ready().then(() => callbacks.ready(), (err: Error) => {
        process.stderr.write(`graceful-restart: cannot become ready: ${err.message}\n`);
        process.exit(1);
      });
    });
  }

  static async make(settings: RegisterSettings, callbacks: HookCallbacks): Promise<RegisterService> {
    const state = preloadState();
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

  async listen(server: net.Server, call: TakenListen): Promise<void> {
    const bind = call.kind === 'unix'
      ? { path: call.bind.path, backlog: call.bind.backlog, mode: (0o777 & ~process.umask()) | (call.bind.extraMode ?? 0) }
      : { port: call.bind.port, host: call.bind.host, backlog: call.bind.backlog, ipv6Only: call.bind.ipv6Only };
    this.readiness.listenStarted();
    try {
      await this.app.listen(call.name, server, bind);
    } catch (err) {
      this.readiness.listenEnded();
      throw err;
    }
    if (!server.listening) announce(server, addressOf(call));
    this.readiness.listenEnded(server);
  }
}
