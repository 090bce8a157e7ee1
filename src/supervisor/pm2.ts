/**
 * What a supervisor tells PM2, when PM2 started it (fork mode, with the IPC
 * channel PM2 gives every process it spawns). PM2 watches the pid it spawned,
 * the supervisor's; so:
 * - PM2 measures memory and CPU (`pm2 ls`, `pm2 monit`) of the pid an
 *   `axm:option:configuration` message names: the supervisor names the
 *   current generation each time it changes, so PM2 shows the application's
 *   memory, not its own (its pid column still shows the supervisor's pid);
 * - it registers the action `redeploy` (`axm:action`), so `pm2 trigger
 *   <app> redeploy` redeploys the application through its control socket,
 *   with no connection dropped, and prints the result (`axm:reply`);
 * - PM2's fork mode has no reload: `pm2 reload` stops the supervisor and
 *   starts a new one, which drops what arrives in between. The supervisor
 *   cannot refuse it, but it tells a reload (PM2's reload.lock holds the time
 *   the reload began) from a stop, and says in PM2's error log what to type
 *   instead.
 * These are the messages @pm2/io sends; PM2 7 reads them in lib/God/ForkMode.js
 * and lib/Daemon.js.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EventEmitter } from 'node:events';
import { ControlClient } from '../control/client.js';
import { NotConfiguredError, errorCode } from '../errors.js';
import { underPm2, type LogFields } from '../log.js';
import { noControl, type SupervisedTarget } from './commands.js';

/** The action `pm2 trigger <app> redeploy` runs. */
export const PM2_REDEPLOY_ACTION = 'redeploy';

/**
 * The least time between an action's message and its reply. `pm2 trigger`
 * counts replies only once the daemon answered its own request; a reply that
 * came first would leave it waiting for ever.
 */
const REPLY_AFTER_MS = 250;

/** How recent PM2's reload.lock must be for a SIGINT to be a reload's (PM2 holds it while its reload runs). */
const RELOAD_LOCK_MS = 30_000;

/** What the PM2 link needs of a supervisor: the supervisor's target, and its 'current', 'gone' and 'exit' events. */
export type Pm2Target = SupervisedTarget & Pick<EventEmitter, 'on' | 'off'>;

/** The IPC channel to PM2: process.send and the 'message' events, or another pair in tests. */
export interface Pm2Channel {
  send(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): void;
  off(event: 'message', listener: (message: unknown) => void): void;
}

/**
 * processChannel: this process's IPC channel to PM2, when PM2 started it
 * (its environment, and an IPC channel), else null. It does not keep the
 * process alive.
 */
export function processChannel(env: NodeJS.ProcessEnv = process.env): Pm2Channel | null {
  if (!underPm2(env) || typeof process.send !== 'function' || !process.connected) return null;
  return {
    send: (message) => {
      if (process.connected) process.send!(message, undefined, {}, () => undefined); // PM2 gone: nothing to tell
    },
    on: (event, listener) => {
      process.on(event, listener);
      process.channel?.unref();
    },
    off: (event, listener) => {
      process.off(event, listener);
    },
  };
}

/** reloadInProgress: PM2's reload.lock (in PM2_HOME) holds the time of a reload begun less than 30 s ago. */
export function reloadInProgress(env: NodeJS.ProcessEnv = process.env, now = Date.now()): boolean {
  const home = env.PM2_HOME || path.join(os.homedir(), '.pm2');
  let text: string;
  try {
    text = fs.readFileSync(path.join(home, 'reload.lock'), 'utf8').trim();
  } catch {
    return false;
  }
  const began = Number(text);
  return text !== '' && Number.isFinite(began) && now - began >= 0 && now - began < RELOAD_LOCK_MS;
}

/** redeployApp redeploys the application through the control socket it announced; rejects with a coded error. */
export async function redeployApp(target: SupervisedTarget): Promise<unknown> {
  const socket = target.appControl;
  if (!socket) throw new NotConfiguredError(noControl(target, 'redeploy'));
  const client = await ControlClient.connect(socket, 5_000);
  try {
    return await client.request('redeploy', []);
  } finally {
    client.close();
  }
}

/**
 * linkPm2 speaks to PM2 for target over channel (see the top of this file):
 * the current pid for PM2's monitoring, the `redeploy` action, and the hint
 * on a reload's SIGINT. name is the app's name in PM2 (its `name` variable),
 * for the hint. The function it returns undoes it.
 */
export function linkPm2(target: Pm2Target, channel: Pm2Channel, log: (msg: string, fields?: LogFields) => void, env: NodeJS.ProcessEnv = process.env): () => void {
  const name = env.name || '<app>';
  const monitor = (pid: number) => channel.send({ type: 'axm:option:configuration', data: { pid } });
  const onMessage = (message: unknown) => {
    const action = typeof message === 'string' ? message : (message as { msg?: unknown } | null)?.msg;
    if (action !== PM2_REDEPLOY_ACTION) return;
    const asked = Date.now();
    const reply = (value: unknown) => {
      const send = () => channel.send({ type: 'axm:reply', data: { return: value, action_name: PM2_REDEPLOY_ACTION } });
      const wait = asked + REPLY_AFTER_MS - Date.now();
      if (wait > 0) setTimeout(send, wait);
      else send();
    };
    log(`pm2 trigger ${name} ${PM2_REDEPLOY_ACTION}: redeploying pid ${target.currentPid}`, { event: 'supervisor.pm2-redeploy' });
    redeployApp(target).then((result) => {
      log(`pm2 trigger ${name} ${PM2_REDEPLOY_ACTION}: done, pid ${target.currentPid} serves`, { event: 'supervisor.pm2-redeploy-done' });
      reply({ ok: true, pid: target.currentPid, ...(typeof result === 'object' && result !== null ? result : {}) });
    }, (err: Error) => {
      const code = errorCode(err) ?? 'ERR_GRACEFUL_COMMAND_FAILED';
      log(`pm2 trigger ${name} ${PM2_REDEPLOY_ACTION} failed: ${err.message}`, { event: 'supervisor.pm2-redeploy-failed', code, level: 'warn' });
      reply({ ok: false, code, error: err.message });
    });
  };
  const onSigint = () => {
    if (!reloadInProgress(env)) return;
    log(`pm2 reload: PM2's fork mode has no reload, it stops the application and starts it again, so connections that arrive in between fail; ` +
      `to replace it without dropping one, type \`pm2 trigger ${name} ${PM2_REDEPLOY_ACTION}\``, { event: 'supervisor.pm2-reload', level: 'warn' });
  };
  // No generation left (a stop): PM2 measures the supervisor again, not a pid that is gone.
  const onGone = () => {
    if (target.generationPids.length === 0) monitor(process.pid);
  };
  target.on('current', monitor);
  target.on('gone', onGone);
  channel.on('message', onMessage);
  process.on('SIGINT', onSigint);
  channel.send({ type: 'axm:action', data: { action_name: PM2_REDEPLOY_ACTION, action_type: 'custom', arity: 0 } });
  if (target.currentPid > 0) monitor(target.currentPid);
  let undone = false;
  const undo = () => {
    if (undone) return;
    undone = true;
    target.off('current', monitor);
    target.off('gone', onGone);
    target.off('exit', undo);
    channel.off('message', onMessage);
    process.off('SIGINT', onSigint);
  };
  target.on('exit', undo);
  return undo;
}
