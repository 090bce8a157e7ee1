/**
 * The supervisor's own service manager (upstream): what the application
 * tells the supervisor over sd_notify is passed on to it, except the lines
 * that only make sense between the application and the supervisor.
 */
import { notify } from '../systemd.js';

/** Lines never relayed to the supervisor's own service manager. */
const NOT_RELAYED = /^(MAINPID|X_|FDSTORE|FDNAME|FDPOLL|BARRIER|NOTIFYACCESS)/;

/** relayedLines: the lines of fields that go upstream, as `KEY=VALUE`. */
export function relayedLines(fields: ReadonlyMap<string, string>): string[] {
  return [...fields].filter(([k]) => !NOT_RELAYED.test(k)).map(([k, v]) => `${k}=${v}`);
}

/** relay sends those lines to the notify socket upstream, if there is one and a line to send. */
export function relay(upstream: string | undefined, fields: ReadonlyMap<string, string>): void {
  if (!upstream) return;
  const lines = relayedLines(fields);
  if (lines.length) notify(lines.join('\n'), { NOTIFY_SOCKET: upstream });
}
