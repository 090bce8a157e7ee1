/**
 * systemd integration: socket activation (sd_listen_fds(3)) and readiness
 * notification (sd_notify(3)), without libsystemd.
 */
import { debuglog } from 'node:util';
import { addon } from './native.js';
import { sendDatagram } from './datagram.js';

const debug = debuglog('graceful');

/** SD_LISTEN_FDS_START: the first descriptor systemd passes. */
export const LISTEN_FDS_START = 3;

/** ActivatedFd: a socket systemd passed, with its FileDescriptorName= (or 'unknown'). */
export interface ActivatedFd {
  fd: number;
  name: string;
}

/**
 * takeListenFds returns the sockets systemd passed to this process
 * (LISTEN_PID must be ours), makes them close-on-exec so no child inherits
 * them by accident, and removes LISTEN_* from the environment so a process
 * spawned later does not take them for its own. Returns [] when there are none.
 * Under `graceful-restart run`, the supervisor sets LISTEN_PID to the pid of
 * each generation it starts (see supervisor/activation.ts).
 */
export function takeListenFds(env: NodeJS.ProcessEnv = process.env): ActivatedFd[] {
  const pid = Number(env.LISTEN_PID);
  const count = Number(env.LISTEN_FDS);
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pid !== process.pid || !Number.isInteger(count) || count <= 0) return [];
  const fds: ActivatedFd[] = [];
  for (let i = 0; i < count; i++) {
    const fd = LISTEN_FDS_START + i;
    try {
      addon.setCloexec(fd, true);
    } catch (err) {
      debug('LISTEN_FDS: descriptor %d is not open: %s', fd, (err as Error).message);
      continue;
    }
    fds.push({ fd, name: names[i] || 'unknown' });
  }
  return fds;
}

/**
 * notify sends state lines to the service manager when NOTIFY_SOCKET is set
 * ('READY=1', 'MAINPID=42', 'RELOADING=1', 'STOPPING=1', 'STATUS=...').
 * Returns false when there is no manager to tell; never throws (a manager
 * that went away must not take the service down).
 */
export function notify(state: string | Record<string, string | number>, env: NodeJS.ProcessEnv = process.env): boolean {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return false;
  const text = typeof state === 'string' ? state : Object.entries(state).map(([k, v]) => `${k}=${v}`).join('\n');
  try {
    sendDatagram(socket, text);
    return true;
  } catch (err) {
    debug('sd_notify %j to %s failed: %s', text, socket, (err as Error).message);
    return false;
  }
}

/** monotonicUsec: CLOCK_MONOTONIC in microseconds, which RELOADING=1 carries (MONOTONIC_USEC=). */
export function monotonicUsec(): string {
  return (process.hrtime.bigint() / 1000n).toString();
}
