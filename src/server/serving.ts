/**
 * What an instance that serves tells the world: the pid file names it, and
 * sd_notify says so (MAINPID, READY=1, and for a supervisor the control
 * socket to forward commands to). Said at ready (ready.ts), and again after a
 * failed redeploy or a take-back, when this instance is the main one again.
 */
import path from 'node:path';
import type { LogFields } from '../log.js';
import { writePidFile } from '../pidfile.js';
import { CONTROL_FIELD, SUPERVISOR_ENV } from '../protocol.js';
import { notify } from '../systemd.js';
import type { Config } from './options.js';

/** readyNotice: the sd_notify message of an instance that serves. */
export function readyNotice(config: Config): string {
  const control = config.controlSocket ? `\n${CONTROL_FIELD}=${path.resolve(config.controlSocket)}` : '';
  return `MAINPID=${process.pid}\nREADY=1${process.env[SUPERVISOR_ENV] ? control : ''}`;
}

/** serving: this instance serves (again): the pid file (a failure to write it is logged) and sd_notify say so. */
export function serving(config: Config, log: (msg: string, fields?: LogFields) => void): void {
  if (config.pidFile) {
    try {
      writePidFile(config.pidFile);
    } catch (err) {
      log(`could not write the pid file ${config.pidFile}: ${(err as Error).message}`, { event: 'pidfile.failed' });
    }
  }
  notify(readyNotice(config));
}
