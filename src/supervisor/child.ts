/**
 * Starting the command: each generation the supervisor starts itself (the
 * first, and each restart) is spawned in a session of its own, with
 * NOTIFY_SOCKET and the supervisor's pid in its environment, and the sockets
 * of socket activation at their own numbers (see activation.ts).
 */
import { spawn as nodeSpawn, type ChildProcess } from 'node:child_process';
import type { LogFields } from '../log.js';
import { takeListenFds, type ActivatedFd } from '../systemd.js';
import { activatedSpawn, canPassListenFds, ACTIVATION_SHELL } from './activation.js';
import type { SupervisorOptions } from './options.js';
import { SUPERVISOR_ENV } from './protocol.js';

/** commandLine: the command and its arguments, as the log shows them. */
export function commandLine(options: Pick<SupervisorOptions, 'command' | 'args'>): string {
  return [options.command, ...(options.args ?? [])].join(' ');
}

/**
 * spawnCommand starts the command of options with notifyPath as its
 * NOTIFY_SOCKET and activated passed on. Without a pid (it could not be
 * started) the child emits 'error' (see startFailure).
 */
export function spawnCommand(options: SupervisorOptions, notifyPath: string, activated: readonly ActivatedFd[]): ChildProcess {
  const env = { ...(options.env ?? process.env), NOTIFY_SOCKET: notifyPath, [SUPERVISOR_ENV]: String(process.pid) };
  const how = activated.length > 0
    ? activatedSpawn(options.command, options.args ?? [], env, activated)
    : { command: options.command, args: [...(options.args ?? [])], stdio: 'inherit' as const };
  // A session of its own: a terminal's Ctrl-C reaches only us, and we forward it once.
  return nodeSpawn(how.command, how.args, { stdio: how.stdio, detached: true, env });
}

/** startFailure: the exit code a shell gives a command it cannot start (127 not found, 126 not executable), and the log line. */
export function startFailure(err: NodeJS.ErrnoException, command: string): { code: number; message: string } {
  const code = err.code === 'ENOENT' ? 127 : 126;
  return { code, message: `cannot start ${command}: ${err.message}${code === 127 ? ': is it installed, and on PATH?' : ': is it executable?'}` };
}

/**
 * takeActivated takes the sockets systemd passed to the supervisor (LISTEN_PID
 * ours, in env), to pass them on to each generation; none (logged) when the
 * shell that passes them is missing.
 */
export function takeActivated(env: NodeJS.ProcessEnv, log: (msg: string, fields?: LogFields) => void): ActivatedFd[] {
  const fds = takeListenFds(env);
  if (fds.length === 0) return [];
  const names = fds.map((f) => `${f.name} (fd ${f.fd})`).join(', ');
  if (!canPassListenFds()) {
    log(`socket activation: cannot pass ${names} on, as ${ACTIVATION_SHELL} is missing: the application will not get them`,
      { event: 'supervisor.activation-unavailable' });
    return [];
  }
  log(`socket activation: passing ${names} on to the application`, { event: 'supervisor.activation', fds: fds.length });
  return fds;
}
