/**
 * What graceful-restart/register reads from the environment
 * (`graceful-restart run` sets it from its flags): when the program counts as
 * ready, and the options of the GracefulServer it makes. The other options
 * come as for any GracefulServer: GRACEFUL_WORKERS, GRACEFUL_UPGRADE_TIMEOUT,
 * GRACEFUL_SHUTDOWN_TIMEOUT, ... and the configuration file.
 */
import path from 'node:path';
import { invalidArgument } from '../errors.js';

/** When the program counts as ready: listened (then settled), said process.send('ready'), or an HTTP path answers 2xx. */
export type ReadyWhen = { kind: 'listen' } | { kind: 'message' } | { kind: 'http'; path: string };

export interface RegisterSettings {
  ready: ReadyWhen;
  /** ms after the program's last listen before it counts as ready (--ready listen), or before the first probe (--ready http). */
  settle: number;
  /** ms before a new instance that has not listened yet says so and exits (the upgrade timeout less a second). */
  listenDeadline: number;
  /** A file the program's standard output and error go to, re-opened by `reopen` and SIGUSR1. */
  logFile?: string;
  /** A JSON configuration file (GracefulServer.fromConfig). */
  config?: string;
  controlSocket?: string;
  pidFile?: string;
}

/** Set to its pid by the process whose register made its GracefulServer; its own children inherit it (hook.ts, servesHere). */
export const OWNER_ENV = 'GRACEFUL_REGISTER_OWNER';

/** What the service tells the hook. */
export interface HookCallbacks {
  /** The program counts as ready: the deadline of a new instance is off. */
  ready(): void;
  /** A UNIX listener's path (absolute) is kept: the program's unlinks of it leave it in place. */
  keepPath(where: string): void;
  /** A real halt: the kept paths are released. */
  releasePaths(): void;
}

/** The settle time: long enough for a second listen that follows the first after a little asynchronous work, short enough not to slow a redeploy. */
export const DEFAULT_SETTLE = 500;
const DEFAULT_UPGRADE_TIMEOUT = 60_000;

/** parseReady reads --ready / GRACEFUL_READY: listen, message, or http:/path. */
export function parseReady(value: string | undefined, where = 'GRACEFUL_READY'): ReadyWhen {
  if (value === undefined || value === '' || value === 'listen') return { kind: 'listen' };
  if (value === 'message') return { kind: 'message' };
  const m = /^http:(\/[^\s]*)$/.exec(value);
  if (m) return { kind: 'http', path: m[1]! };
  throw invalidArgument(where, `must be listen, message or http:/path (an HTTP path that answers 2xx once the program is ready), got ${JSON.stringify(value)}`);
}

/** wholeMs reads a whole number of milliseconds >= 0 from the environment. */
function wholeMs(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw invalidArgument(name, `must be a whole number of milliseconds >= 0, got ${JSON.stringify(v)}`);
  return n;
}

/** absolute: a path from the environment, made absolute against the working directory (a redeploy keeps it). */
function absolute(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : path.resolve(v);
}

/** readSettings reads the register's settings; a bad value throws ERR_GRACEFUL_INVALID_ARGUMENT naming the variable. */
export function readSettings(env: NodeJS.ProcessEnv = process.env): RegisterSettings {
  const upgrade = env.GRACEFUL_UPGRADE_TIMEOUT ? Number(env.GRACEFUL_UPGRADE_TIMEOUT) * 1000 : DEFAULT_UPGRADE_TIMEOUT;
  return {
    ready: parseReady(env.GRACEFUL_READY),
    settle: wholeMs(env, 'GRACEFUL_SETTLE', DEFAULT_SETTLE),
    listenDeadline: Math.max(500, (Number.isFinite(upgrade) && upgrade > 0 ? upgrade : DEFAULT_UPGRADE_TIMEOUT) - 1000),
    logFile: absolute(env, 'GRACEFUL_LOG_FILE'),
    config: absolute(env, 'GRACEFUL_CONFIG'),
    controlSocket: absolute(env, 'GRACEFUL_CONTROL_SOCKET'),
    pidFile: absolute(env, 'GRACEFUL_PID_FILE'),
  };
}
