/**
 * The options of a Supervisor (SupervisorOptions), checked by
 * checkSupervisorOptions, and its restart policy (restartDue).
 */
import { invalidArgument } from '../errors.js';
import type { LogSink } from '../log.js';

export type RestartPolicy = 'no' | 'on-failure' | 'always';

export interface SupervisorOptions {
  command: string;
  args?: readonly string[];
  /** The supervisor's own control socket (none by default). */
  socket?: string;
  /** File mode of that socket (default 0o600). */
  socketMode?: number;
  /** Start the command again when no generation is left: 'no' (default), 'on-failure', 'always'. */
  restart?: RestartPolicy;
  /** ms between an exit and the restart (default 1000). */
  restartDelay?: number;
  /** Most restarts (default: no limit). */
  maxRestarts?: number;
  /** The application speaks sd_notify (default true); false: it counts as ready once started. */
  notify?: boolean;
  /** ms processes left behind at the end have between SIGTERM and SIGKILL (default 10 s). */
  killTimeout?: number;
  /** The command runs under graceful-restart/register (run preloads it): said where the application is not ready yet. */
  registered?: boolean;
  /** The application's environment (default: ours). */
  env?: NodeJS.ProcessEnv;
  /** Where the supervisor's log lines go (default stderr). */
  log?: LogSink;
}

/** checkSupervisorOptions throws ERR_GRACEFUL_INVALID_ARGUMENT (naming `Supervisor`) for a missing command or a bad number or policy. */
export function checkSupervisorOptions(options: SupervisorOptions): void {
  if (typeof options.command !== 'string' || options.command === '') throw invalidArgument('Supervisor', 'a command to run is required');
  for (const key of ['restartDelay', 'killTimeout', 'maxRestarts'] as const) {
    const v = options[key];
    if (v !== undefined && !(Number.isInteger(v) && v >= 0)) throw invalidArgument('Supervisor', `${key} must be a whole number >= 0, got ${String(v)}`);
  }
  if (options.restart !== undefined && !['no', 'on-failure', 'always'].includes(options.restart)) {
    throw invalidArgument('Supervisor', `restart must be no, on-failure or always, got ${JSON.stringify(options.restart)}`);
  }
}

/**
 * restartDue: the command starts again, after the last generation ended
 * (failed: with an exit code other than 0), when the policy says so and
 * fewer than maxRestarts restarts were made.
 */
export function restartDue(options: Pick<SupervisorOptions, 'restart' | 'maxRestarts'>, failed: boolean, restarts: number): boolean {
  const policy = options.restart ?? 'no';
  return (policy === 'always' || (policy === 'on-failure' && failed)) && restarts < (options.maxRestarts ?? Infinity);
}
