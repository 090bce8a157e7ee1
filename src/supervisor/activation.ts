/**
 * Socket activation through the supervisor. systemd (or
 * systemd-socket-activate) passes the supervisor its sockets as fds 3.. with
 * LISTEN_PID set to the supervisor's pid; every generation the supervisor
 * starts gets them again, at the same numbers, with LISTEN_FDS,
 * LISTEN_FDNAMES and LISTEN_PID set to the generation's own pid, as
 * sd_listen_fds(3) requires of any program.
 *
 * LISTEN_PID is rewritten rather than relaxed. The child's pid is known only
 * after fork, so a POSIX shell sets it between fork and exec
 * (`LISTEN_PID=$$; export LISTEN_PID; exec "$@"`: exec keeps the pid), which is what systemd does
 * itself. A child that accepted its parent's pid instead would make every
 * process the application spawns with its environment, before it took the
 * variables out, a candidate owner of the same sockets; and programs that use
 * libsystemd, which compares LISTEN_PID with getpid(), would refuse them.
 */
import fs from 'node:fs';
import type { StdioOptions } from 'node:child_process';
import { LISTEN_FDS_START, type ActivatedFd } from '../systemd.js';

/** The shell that sets LISTEN_PID to its own pid, then execs the command. */
export const ACTIVATION_SHELL = '/bin/sh';
const SCRIPT = 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"';

export interface ActivatedSpawn {
  command: string;
  args: string[];
  stdio: StdioOptions;
}

/** canPassListenFds tells whether the shell that sets LISTEN_PID is there. */
export function canPassListenFds(): boolean {
  try {
    fs.accessSync(ACTIVATION_SHELL, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * activatedSpawn returns how to start command so that it gets fds at their
 * own numbers (3..), with LISTEN_FDS and LISTEN_FDNAMES set in env (a
 * number whose fd is missing stays closed, named 'unknown') and LISTEN_PID
 * set to its pid by the shell. env is changed in place.
 */
export function activatedSpawn(command: string, args: readonly string[], env: NodeJS.ProcessEnv, fds: readonly ActivatedFd[]): ActivatedSpawn {
  const last = Math.max(...fds.map((f) => f.fd));
  const stdio: StdioOptions = ['inherit', 'inherit', 'inherit'];
  const names: string[] = [];
  for (let fd = LISTEN_FDS_START; fd <= last; fd++) {
    const passed = fds.find((f) => f.fd === fd);
    stdio.push(passed ? fd : 'ignore');
    names.push(passed?.name ?? 'unknown');
  }
  delete env.LISTEN_PID;
  env.LISTEN_FDS = String(last - LISTEN_FDS_START + 1);
  env.LISTEN_FDNAMES = names.join(':');
  return { command: ACTIVATION_SHELL, args: ['-c', SCRIPT, 'graceful-restart', command, ...args], stdio };
}
