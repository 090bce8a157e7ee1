/**
 * The hook graceful-restart/register installs in an unmodified program:
 * net.Server#listen is replaced, so that every listen of the program (http,
 * https, http2, Express's app.listen, Fastify's listen, Koa, Nest, ws) goes
 * to a GracefulServer made for it (service.ts, loaded at the first listen:
 * a program that never listens pays nothing). Listens that cannot be kept
 * across versions (port 0, a descriptor or handle) are left to Node, and said
 * so; listens that cannot be taken over (a worker thread, node:cluster) fail
 * with ERR_GRACEFUL_LISTEN_UNSUPPORTED and what to do. With --ready message,
 * process.send('ready') (PM2's wait_ready) is what makes it ready.
 *
 * A program that makes a GracefulServer of its own uses the API: from then on
 * the hook steps aside (preload-state.ts).
 */
import { createRequire } from 'node:module';
import net from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { ListenUnsupportedError } from '../errors.js';
import { HANDOFF_ENV } from '../protocol.js';
import { preloadState } from '../preload-state.js';
import { rawListen } from '../raw-listen.js';
import { parseListenArgs, type TakenListen } from './listen-args.js';
import { OWNER_ENV, readSettings, type HookCallbacks, type RegisterSettings } from './settings.js';
import { UnlinkGuard } from './unlink-guard.js';

type AnyListen = (this: net.Server, ...args: unknown[]) => net.Server;
type SendFunction = (message: unknown, ...rest: unknown[]) => boolean;

/** unsupported says why this process cannot have its listens taken over, with what to do; null when it can. */
export function unsupported(clusterWorker = isClusterWorker(), mainThread = isMainThread): string | null {
  if (!mainThread) {
    return 'the program listens in a worker thread, whose listeners cannot be handed to a new version: listen in the main thread '
      + '(and use --workers n, or GRACEFUL_WORKERS, for more processes)';
  }
  if (clusterWorker) {
    return 'the program runs node:cluster itself, whose workers listen through their primary: run it as one process, '
      + 'without cluster.fork(), and use --workers n (or GRACEFUL_WORKERS) for more processes';
  }
  return null;
}

/** isClusterWorker: node:cluster started this process (Node has removed NODE_UNIQUE_ID from the environment by then). */
function isClusterWorker(): boolean {
  return (createRequire(import.meta.url)('node:cluster') as typeof import('node:cluster').default).isWorker;
}

/**
 * servesHere: this process is one the register serves: the first (no
 * process of this service made its GracefulServer yet: OWNER_ENV unset, as
 * under `npm start`, whose npm never listens), or a new version or worker the
 * library started (HANDOFF_ENV). A process the program starts itself (a
 * fork, a tool) inherits NODE_OPTIONS and OWNER_ENV: there the register
 * stays out of the way, and its listens are Node's.
 */
export function servesHere(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[OWNER_ENV] === undefined || env[HANDOFF_ENV] !== undefined;
}

/** say writes one line of the register's to stderr. */
function say(line: string): void {
  process.stderr.write(`graceful-restart: ${line}\n`);
}

/** installListenHook installs the hook once per process; a bad setting throws ERR_GRACEFUL_INVALID_ARGUMENT naming the variable. */
export function installListenHook(): void {
  const state = preloadState();
  if (state.installed || !servesHere()) return;
  const settings = readSettings();
  state.installed = true;
  const raw = rawListen as unknown as AnyListen;
  const deadline = newInstanceDeadline(settings);
  const guard = new UnlinkGuard(say);
  const callbacks: HookCallbacks = { ready: () => clearTimeout(deadline), keepPath: (p) => guard.keep(p), releasePaths: () => guard.release() };
  let why: string | null | undefined;
  const hooked: AnyListen = function listen(this: net.Server, ...args: unknown[]): net.Server {
    if (state.apiInUse) return raw.apply(this, args);
    const parsed = parseListenArgs(args);
    if (parsed.kind === 'handle' || parsed.kind === 'invalid') return raw.apply(this, args);
    if (parsed.kind === 'port0') {
      say(`pid ${process.pid} listens on port 0 (any free port): that listener is not kept across redeploys, since its port changes with every start; `
        + 'it serves as in plain Node and its connections end with this instance. Give it a fixed port to have it kept.');
      return raw.apply(this, args);
    }
    const call = parsed as TakenListen;
    why ??= unsupported();
    if (why !== null) {
      const err = new ListenUnsupportedError(`listen("${call.name}"): ${why}`);
      process.nextTick(() => this.emit('error', err));
      return this;
    }
    if (call.callback) this.once('listening', call.callback);
    takeOver(this, call, callbacks);
    return this;
  };
  net.Server.prototype.listen = hooked as unknown as net.Server['listen'];
  if (isMainThread) guard.install();
  if (settings.ready.kind === 'message' && isMainThread) wrapSend(callbacks);
}

/** takeOver hands one listen to the service; a failure is the server's 'error', as a failed listen is in Node. */
function takeOver(server: net.Server, call: TakenListen, callbacks: HookCallbacks): void {
  import('./service.js')
    .then((m) => m.takeOver(server, call, callbacks))
    .catch((err: Error) => server.emit('error', err));
}

/** wrapSend makes process.send('ready') the ready signal (kept for an IPC channel, made up where there is none). */
function wrapSend(callbacks: HookCallbacks): void {
  const original = process.send?.bind(process) as SendFunction | undefined;
  const send: SendFunction = (message, ...rest) => {
    if (message === 'ready') {
      import('./service.js').then((m) => m.readyMessage(callbacks)).catch((err: Error) => {
        say(`cannot become ready: ${err.message}`);
        process.exitCode = 1;
      });
    }
    if (original) return original(message, ...rest);
    const cb = rest.find((r) => typeof r === 'function') as ((err: Error | null) => void) | undefined;
    if (cb) process.nextTick(cb, null);
    return true;
  };
  process.send = send as typeof process.send;
}

/**
 * newInstanceDeadline: a new instance (one a redeploy started, whose
 * predecessor waits for it) that has not become ready a second before the
 * upgrade timeout says why on stderr and exits 1, so that the redeploy fails
 * with that reason rather than with a bare timeout.
 */
function newInstanceDeadline(settings: RegisterSettings): NodeJS.Timeout | undefined {
  if (process.env[HANDOFF_ENV] === undefined) return undefined;
  const what = settings.ready.kind === 'message' ? 'sent process.send(\'ready\')'
    : settings.ready.kind === 'http' ? `listened and answered 2xx on ${settings.ready.path}` : 'listened';
  const timer = setTimeout(() => {
    say(`pid ${process.pid} has not ${what} within ${Math.round(settings.listenDeadline / 1000)} s, so this new version never became ready: `
      + 'it exits, and the serving version goes on. Check that it starts (and listens) when run by hand, or raise GRACEFUL_UPGRADE_TIMEOUT.');
    process.exit(1);
  }, settings.listenDeadline);
  timer.unref();
  return timer;
}
