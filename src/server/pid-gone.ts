/**
 * pidGone resolves once a process has exited: a pidfd of it becomes
 * readable. Where pidfds are missing (ENOSYS before Linux 5.3), running() is
 * asked every 100 ms instead (by default: a signal 0 reaches the pid).
 * Nothing here keeps the process alive. The pidfd is opened at the call, so
 * the caller knows the pid to be the process it means then (its parent, a
 * peer that just spoke): a pid reused later is not mistaken for it.
 */
import { addon } from '../native.js';
import { closeAll } from '../handoff/connection.js';

export function pidGone(pid: number, running: () => boolean = () => alive(pid)): Promise<void> {
  return new Promise((resolve) => {
    if (!running()) return resolve();
    let pidfd: number;
    try {
      pidfd = addon.pidfdOpen(pid);
    } catch {
      const timer = setInterval(() => {
        if (running()) return;
        clearInterval(timer);
        resolve();
      }, 100);
      timer.unref();
      return;
    }
    const poller = new addon.Poller(pidfd, () => {
      poller.close();
      closeAll([pidfd]);
      resolve();
    });
    poller.start(1);
    poller.unref();
  });
}

/** alive: a signal 0 reaches pid (EPERM: it exists, as another user's). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
