/**
 * The environment `graceful-restart run` gives its command so that an
 * unmodified Node program runs under graceful-restart/register: NODE_OPTIONS
 * preloads the register (in the program, and in every node process it is
 * started through, such as `npm start`), and the flags become the variables
 * the register and GracefulServer read.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseReady } from '../register/settings.js';
import { checkWorkers } from '../server/options.js';
import { EXIT_USAGE, Exit } from './connect.js';

/** The flags of `run` about the register. */
export interface RegisterFlags {
  /** false with --no-register (or --no-notify: a program that is not adapted). */
  register: boolean;
  workers?: string;
  ready?: string;
  settle?: string;
  log?: string;
  config?: string;
  pidFile?: string;
  /** The supervisor's control socket: the application's is this path with `.app` added. */
  socket?: string;
}

/**
 * REGISTER_URL: the register module of this package, as NODE_OPTIONS names
 * it: the bundle's (what `graceful-restart/register` resolves to), else the
 * compiled module beside this one.
 */
export const REGISTER_URL = (() => {
  const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const bundled = path.join(dist, 'bundle', 'register.js');
  return pathToFileURL(fs.existsSync(bundled) ? bundled : path.join(dist, 'src', 'register.js')).href;
})();

/** APP_SOCKET_SUFFIX: what is added to the supervisor's control socket path to name the application's. */
export const APP_SOCKET_SUFFIX = '.app';

/**
 * registerEnv: the environment for the command, or a usage error (exit 2)
 * for a bad flag, or for a register flag given with --no-register.
 */
export function registerEnv(flags: RegisterFlags, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const given = (['workers', 'ready', 'settle', 'log', 'config', 'pidFile'] as const).filter((k) => flags[k] !== undefined);
  if (!flags.register) {
    if (given.length > 0) {
      throw new Exit(EXIT_USAGE, `error: --${given[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is for a program run under graceful-restart/register, which --no-register and --no-notify turn off`);
    }
    return env;
  }
  const out: NodeJS.ProcessEnv = { ...env, NODE_OPTIONS: `${env.NODE_OPTIONS ? `${env.NODE_OPTIONS} ` : ''}--import ${REGISTER_URL}` };
  try {
    if (flags.workers !== undefined) {
      checkWorkers(flags.workers, '--workers');
      out.GRACEFUL_WORKERS = flags.workers;
    }
    if (flags.ready !== undefined) {
      parseReady(flags.ready, '--ready');
      out.GRACEFUL_READY = flags.ready;
    }
  } catch (err) {
    throw new Exit(EXIT_USAGE, `error: ${(err as Error).message}`);
  }
  if (flags.settle !== undefined) {
    if (!/^\d+$/.test(flags.settle)) throw new Exit(EXIT_USAGE, `error: --settle must be a whole number of milliseconds >= 0, got ${JSON.stringify(flags.settle)}`);
    out.GRACEFUL_SETTLE = flags.settle;
  }
  if (flags.log !== undefined) out.GRACEFUL_LOG_FILE = path.resolve(flags.log);
  if (flags.config !== undefined) out.GRACEFUL_CONFIG = path.resolve(flags.config);
  if (flags.pidFile !== undefined) out.GRACEFUL_PID_FILE = path.resolve(flags.pidFile);
  if (flags.socket !== undefined && !env.GRACEFUL_CONTROL_SOCKET) out.GRACEFUL_CONTROL_SOCKET = path.resolve(flags.socket) + APP_SOCKET_SUFFIX;
  return out;
}
