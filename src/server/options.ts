/**
 * The options of a GracefulServer: their defaults, the environment variables
 * that override them, the keys a configuration file may set, and the checks
 * that turn them into a Config once, in the constructor.
 */
import os from 'node:os';
import { ConfigError, InvalidRunlevelError, invalidArgument } from '../errors.js';
import { loadConfig } from '../config.js';
import type { LogSink } from '../log.js';
import type { SighupAction } from './signals.js';
import type { SpawnFunction } from './successor.js';
import type { ControlLimits } from './control-port.js';
import { DEFAULT_TICKET_KEY_ROTATION, checkRotation } from './ticket-keys.js';

export type Runlevel = 0 | 1 | 3;
/** ms a new instance has to become ready. */
export const DEFAULT_UPGRADE_TIMEOUT = 60_000;
/** ms to drain at halt before the rest is closed. */
export const DEFAULT_SHUTDOWN_TIMEOUT = 10_000;
/** How long a drained keep-alive connection may sit idle before it is closed. */
export const DEFAULT_IDLE_GRACE = 1_000;
/** Default of controlFdName: the FileDescriptorName= of a control socket systemd passes. */
export const DEFAULT_CONTROL_FD_NAME = 'control';

/** How long a drained instance watches its successor, ready to serve again if it dies. */
export const DEFAULT_TAKE_BACK_WINDOW = 1_000;

/**
 * ms a worker may leave its primary's liveness pings (one every third of it)
 * unanswered before status and health call it unresponsive: three missed
 * pings, so a GC pause or a short synchronous burst is not reported.
 */
export const DEFAULT_WORKER_LIVENESS_TIMEOUT = 3_000;
/**
 * ms of silence after which an unresponsive worker is killed (SIGKILL) and
 * restarted in its slot: long enough for a long synchronous step to finish,
 * short enough that the slot heals before a probe-driven orchestrator
 * (three failed 10 s probes) gives up on the whole service.
 */
export const DEFAULT_WORKER_KILL_TIMEOUT = 10_000;

export interface GracefulServerOptions {
  /** Path of the control socket (none by default). */
  controlSocket?: string;
  /**
   * The FileDescriptorName= of a socket systemd passes as the control socket
   * (socket activation) instead of one bound at controlSocket (default 'control').
   */
  controlFdName?: string;
  /** File mode of the control socket (default 0o600). */
  controlMode?: number;
  /** uids allowed on the control socket besides this process's and root. */
  controlAllowUids?: number[];
  /** ms a silent control connection stays open (default 300 s). */
  controlIdleTimeout?: number;
  /** Bounds of the control socket (connections, probe slots, refusals, queued lines, unread output, timeouts): see ControlServerOptions. */
  controlLimits?: ControlLimits;
  /** Shell commands behind the control commands update and rebuild (off unless set). */
  commands?: { update?: string; rebuild?: string };
  /** Pid file, written atomically before this instance says ready, and removed at halt. */
  pidFile?: string;
  /** ms a new instance has to become ready (default 60 s; GRACEFUL_UPGRADE_TIMEOUT in seconds overrides). */
  upgradeTimeout?: number;
  /** ms to drain at halt before the rest is closed (default 10 s; GRACEFUL_SHUTDOWN_TIMEOUT in seconds overrides). */
  shutdownTimeout?: number;
  /** ms a drained keep-alive connection may stay idle before it is closed (default 1 s). */
  idleGrace?: number;
  /**
   * ms after a new instance is ready during which this one keeps a copy of
   * the sockets and serves again if the new one dies (default 1 s). redeploy()
   * resolves once it has passed.
   */
  takeBackWindow?: number;
  /** Runlevel to start in without a predecessor: 1 or 3 (default 3). */
  runlevel?: 1 | 3;
  /** Handle signals (default true): SIGTERM and SIGINT halt (a second SIGINT forces), SIGHUP per `sighup`. */
  signals?: boolean;
  /** What SIGHUP does: 'redeploy' (default), 'stop' or 'ignore'. */
  sighup?: SighupAction;
  /** Tasks (see task()) that SIGUSR1 and SIGUSR2 run, e.g. 'reopen'. */
  sigusr1?: string;
  sigusr2?: string;
  /**
   * Call process.exit once halted. Default: yes after handing over to a new
   * instance (no old code keeps running) and after a halt by SIGTERM/SIGINT
   * (what those signals did before the handler took them); no after telinit 0.
   */
  exitProcess?: boolean;
  /** The process seam, for tests that need a new instance to crash or hang. */
  spawn?: SpawnFunction;
  /**
   * ms between two rotations of the session-ticket keys of every TLS
   * listener (https, http2 secure) that does not set its own; 0: never
   * (default 1 h). The keys and their age go to a new instance at a redeploy.
   */
  ticketKeyRotation?: number;
  /**
   * Run the service as this many worker processes of the same program (see
   * the README's Workers section): a number, or 'auto' for one per available
   * core. GRACEFUL_WORKERS overrides. Unset or 0: one process, as without it.
   */
  workers?: number | 'auto';
  /**
   * How workers share a TCP listener: 'reuseport' (default: one socket per
   * worker slot in an SO_REUSEPORT group, which the kernel balances) or
   * 'shared' (one socket that every worker accepts on). See the README.
   */
  balance?: 'reuseport' | 'shared';
  /**
   * How a redeploy replaces the workers: 'all' (default: every new worker
   * ready before any old one stops; two generations run for a moment) or
   * 'rolling' (one slot at a time: a new worker starts, then the old one of
   * its slot drains; at most one worker more than configured runs).
   */
  rollout?: 'all' | 'rolling';
  /**
   * ms a worker may leave its primary's liveness pings unanswered before
   * status and health call it unresponsive (default 3 s, a ping every third
   * of it; 0: no liveness check). GRACEFUL_WORKER_LIVENESS_TIMEOUT in seconds overrides.
   */
  workerLivenessTimeout?: number;
  /**
   * ms of silence after which an unresponsive worker is killed (SIGKILL) and
   * restarted in its slot, counted as a crash (default 10 s; 0: never; at
   * least workerLivenessTimeout). GRACEFUL_WORKER_KILL_TIMEOUT in seconds overrides.
   */
  workerKillTimeout?: number;
  /** Where the library's own log lines go (default: stderr; JSON lines when GRACEFUL_JSON_LOG=1). */
  log?: LogSink;
}

/** Config: the options, checked, with every default and override applied. */
export interface Config extends GracefulServerOptions {
  upgradeTimeout: number;
  shutdownTimeout: number;
  idleGrace: number;
  takeBackWindow: number;
  /** The runlevel to start in without a predecessor. */
  runlevel: 1 | 3;
  ticketKeyRotation: number;
  /** How many workers the service runs: 0 without workers. */
  workers: number;
  balance: 'reuseport' | 'shared';
  rollout: 'all' | 'rolling';
  workerLivenessTimeout: number;
  workerKillTimeout: number;
}

/** The options a configuration file may set. */
export const CONFIG_KEYS: ReadonlySet<string> = new Set(['controlSocket', 'controlFdName', 'controlMode', 'controlAllowUids', 'controlIdleTimeout', 'controlLimits', 'commands', 'pidFile',
  'upgradeTimeout', 'shutdownTimeout', 'idleGrace', 'takeBackWindow', 'runlevel', 'signals', 'sighup', 'sigusr1', 'sigusr2', 'exitProcess', 'workers', 'balance', 'rollout', 'ticketKeyRotation',
  'workerLivenessTimeout', 'workerKillTimeout']);

/** checkRunlevel reads a runlevel (a number or a one-digit string), or throws InvalidRunlevelError. */
export function checkRunlevel(level: unknown): Runlevel {
  const n = typeof level === 'string' && /^[0-9]$/.test(level) ? Number(level) : level;
  if (n === 0 || n === 1 || n === 3) return n;
  throw new InvalidRunlevelError(`runlevel must be 0 (halt), 1 (single user: listeners closed) or 3 (serving), got ${JSON.stringify(level)}`);
}

/** envTimeout reads a timeout in seconds from the environment variable name, in ms; fallbackMs when unset. */
function envTimeout(env: NodeJS.ProcessEnv, name: string, fallbackMs: number): number {
  const v = env[name];
  if (v === undefined || v === '') return fallbackMs;
  const secs = Number(v);
  if (!(secs > 0)) throw invalidArgument('GracefulServer', `${name} must be a positive number of seconds, got ${JSON.stringify(v)}`);
  return secs * 1000;
}

function positive(name: string, v: number, zeroOk = false): number {
  if (!Number.isFinite(v) || v < 0 || (!zeroOk && v === 0)) throw invalidArgument('GracefulServer', `${name} must be a ${zeroOk ? 'non-negative' : 'positive'} number of ms, got ${v}`);
  return v;
}

/**
 * checkLiveness reads workerLivenessTimeout and workerKillTimeout (or their
 * environment variables, in seconds; 0 turns each off): non-negative ms, the
 * kill timeout no shorter than the liveness timeout (a worker is called
 * unresponsive before it is killed).
 */
function checkLiveness(options: GracefulServerOptions, env: NodeJS.ProcessEnv): { workerLivenessTimeout: number; workerKillTimeout: number } {
  const read = (name: string, envName: string, v: unknown, fallback: number): number => {
    const e = env[envName];
    if (e !== undefined && e !== '') {
      const secs = Number(e);
      if (!(secs >= 0) || !Number.isFinite(secs)) throw invalidArgument('GracefulServer', `${envName} must be a non-negative number of seconds (0: off), got ${JSON.stringify(e)}`);
      return Math.round(secs * 1000);
    }
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw invalidArgument('GracefulServer', `${name} must be a non-negative number of ms (0: off), got ${JSON.stringify(v)}`);
    return v;
  };
  const bounded = (name: string, ms: number): number => {
    if (ms > MAX_TIMER_MS) throw invalidArgument('GracefulServer', `${name} must be at most ${MAX_TIMER_MS} ms (a Node.js timer's limit), got ${ms}`);
    return ms;
  };
  const liveness = bounded('workerLivenessTimeout', read('workerLivenessTimeout', 'GRACEFUL_WORKER_LIVENESS_TIMEOUT', options.workerLivenessTimeout, DEFAULT_WORKER_LIVENESS_TIMEOUT));
  const kill = bounded('workerKillTimeout', read('workerKillTimeout', 'GRACEFUL_WORKER_KILL_TIMEOUT', options.workerKillTimeout, DEFAULT_WORKER_KILL_TIMEOUT));
  if (kill > 0 && liveness === 0) throw invalidArgument('GracefulServer', `workerKillTimeout (${kill} ms) needs the liveness check: workerLivenessTimeout is 0; set it, or set workerKillTimeout to 0 too`);
  if (kill > 0 && kill < liveness) throw invalidArgument('GracefulServer', `workerKillTimeout (${kill} ms) must be at least workerLivenessTimeout (${liveness} ms), or 0 (never killed)`);
  return { workerLivenessTimeout: liveness, workerKillTimeout: kill };
}

/** The longest delay a Node.js timer takes (longer ones fire at once, with a warning). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** MAX_WORKERS: a bound on workers, so that a typo does not fork a thousand processes. */
export const MAX_WORKERS = 256;

/** checkWorkers reads the workers option or GRACEFUL_WORKERS: a whole number 0..MAX_WORKERS, or 'auto' (os.availableParallelism()). */
export function checkWorkers(v: unknown, from: string): number {
  if (v === undefined || v === '') return 0;
  if (v === 'auto') return os.availableParallelism();
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= MAX_WORKERS) return n;
  throw invalidArgument('GracefulServer', `${from} must be a whole number of workers from 0 to ${MAX_WORKERS}, or 'auto', got ${JSON.stringify(v)}`);
}

function checkBalance(v: unknown): 'reuseport' | 'shared' {
  if (v === undefined || v === 'reuseport' || v === 'shared') return v ?? 'reuseport';
  throw invalidArgument('GracefulServer', `the balance option must be 'reuseport' or 'shared', got ${JSON.stringify(v)}`);
}

function checkRollout(v: unknown): 'all' | 'rolling' {
  if (v === undefined || v === 'all' || v === 'rolling') return v ?? 'all';
  throw invalidArgument('GracefulServer', `the rollout option must be 'all' or 'rolling', got ${JSON.stringify(v)}`);
}

/**
 * resolveOptions checks options and applies the environment:
 * GRACEFUL_UPGRADE_TIMEOUT and GRACEFUL_SHUTDOWN_TIMEOUT (seconds) and
 * GRACEFUL_RUNLEVEL, GRACEFUL_WORKERS, GRACEFUL_WORKER_LIVENESS_TIMEOUT and
 * GRACEFUL_WORKER_KILL_TIMEOUT (seconds). Throws ERR_GRACEFUL_INVALID_ARGUMENT or
 * ERR_GRACEFUL_INVALID_RUNLEVEL naming the option.
 */
export function resolveOptions(options: GracefulServerOptions, env: NodeJS.ProcessEnv = process.env): Config {
  const runlevel = checkRunlevel(env.GRACEFUL_RUNLEVEL || (options.runlevel ?? 3));
  if (runlevel === 0) throw invalidArgument('GracefulServer', 'the default runlevel must be 1 or 3');
  const fdName = options.controlFdName ?? DEFAULT_CONTROL_FD_NAME;
  if (typeof fdName !== 'string' || !/^[\x21-\x39\x3b-\x7e]{1,255}$/.test(fdName)) {
    throw invalidArgument('GracefulServer', `controlFdName must be a FileDescriptorName= (1 to 255 printable characters, no ':'), got ${JSON.stringify(fdName)}`);
  }
  return {
    ...options,
    controlFdName: fdName,
    upgradeTimeout: positive('upgradeTimeout', envTimeout(env, 'GRACEFUL_UPGRADE_TIMEOUT', options.upgradeTimeout ?? DEFAULT_UPGRADE_TIMEOUT)),
    shutdownTimeout: positive('shutdownTimeout', envTimeout(env, 'GRACEFUL_SHUTDOWN_TIMEOUT', options.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT)),
    idleGrace: positive('idleGrace', options.idleGrace ?? DEFAULT_IDLE_GRACE, true),
    takeBackWindow: positive('takeBackWindow', options.takeBackWindow ?? DEFAULT_TAKE_BACK_WINDOW, true),
    runlevel,
    ticketKeyRotation: checkRotation('GracefulServer', options.ticketKeyRotation ?? DEFAULT_TICKET_KEY_ROTATION),
    balance: checkBalance(options.balance),
    rollout: checkRollout(options.rollout),
    ...checkLiveness(options, env),
    workers: env.GRACEFUL_WORKERS ? checkWorkers(env.GRACEFUL_WORKERS, 'GRACEFUL_WORKERS') : checkWorkers(options.workers, 'the workers option'),
  };
}

/**
 * readConfigFile loads a JSON configuration file (see loadConfig) and checks
 * its keys: an unknown one is ERR_GRACEFUL_CONFIG, so a typo never goes unnoticed.
 */
export function readConfigFile(file: string): GracefulServerOptions {
  const config = loadConfig(file);
  for (const key of Object.keys(config)) {
    if (!CONFIG_KEYS.has(key)) throw new ConfigError(`${file}: unknown option "${key}"; known: ${[...CONFIG_KEYS].join(', ')}`);
  }
  return config as GracefulServerOptions;
}
