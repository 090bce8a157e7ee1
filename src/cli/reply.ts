/**
 * How the CLI and its shell print a command's reply: the same lines for the
 * same reply, whichever asked (a redeploy reads the same in both), and the
 * exit code a refusal means.
 */
import { ControlReplyError, NOT_CONTROL_SOCKET, type ControlClient } from '../control/client.js';
import { formatCommandResult, renderEvent } from '../control/render.js';
import { EXIT_CONNECT, EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit } from './connect.js';
import { watchRedeploy } from './waiting.js';
import { describeStates, type ConnectionStates } from '../conn-states.js';

/**
 * EXIT_STREAM_ENDED: the server ended a command still running (a stream that is not persistent)
 * as it closed its control socket: it handed over to a new instance in a redeploy, or it halts
 * (ERR_GRACEFUL_STREAM_ENDED). Run the command again to follow the instance that serves.
 */
export const EXIT_STREAM_ENDED = 4;

/** Codes of a server's refusal that mean the caller's words were wrong: exit 2, as a CLI usage error. */
const USAGE_CODES = new Set(['ERR_GRACEFUL_UNKNOWN_COMMAND', 'ERR_GRACEFUL_USAGE', 'ERR_GRACEFUL_INVALID_RUNLEVEL', 'ERR_GRACEFUL_UNKNOWN_TASK', 'ERR_GRACEFUL_CONTROL_PARSE', 'ERR_GRACEFUL_INVALID_ARGUMENT']);

/** requestOn runs one command on an open client and prints its reply; throws Exit on a refusal. */
export async function requestOn(client: ControlClient, cmd: string, args: string[], opts: { json?: boolean; timeout: number; socket?: string }, out: (l: string) => void): Promise<number> {
  // A redeploy says what it waits for while it waits, and what Ctrl-C leaves behind (opts.socket: the CLI's own run).
  const watch = (cmd === 'redeploy' || cmd === 'restart') && !opts.json ? watchRedeploy(out, opts.socket) : null;
  try {
    const result = await client.request(cmd, args, (e) => {
      watch?.event(e);
      out(opts.json ? JSON.stringify(e) : renderEvent(e));
    }, opts.timeout);
    if (opts.json) out(JSON.stringify({ ok: true, result: result ?? null }));
    else for (const line of formatCommandResult(cmd, cmd === 'status' ? humanStatus(result) : result)) out(line);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof ControlReplyError) {
      if (opts.json) out(JSON.stringify({ ok: false, error: { code: err.code, message: err.message } }));
      const code = USAGE_CODES.has(err.code) ? EXIT_USAGE
        : err.code === 'ERR_GRACEFUL_STREAM_ENDED' ? EXIT_STREAM_ENDED
          : (err.code as string) === NOT_CONTROL_SOCKET ? EXIT_CONNECT : EXIT_FAILED;
      throw new Exit(code, `error: ${err.message}`);
    }
    throw new Exit(EXIT_FAILED, `error: ${(err as Error).message}`);
  } finally {
    watch?.stop();
  }
}

const BYTE_FIELDS = new Set(['rss', 'heapUsed', 'heapTotal', 'external']);
const SECOND_FIELDS = new Set(['uptime', 'supervisorUptime']);

/** humanStatus gives a status reply's sizes and durations units, for people (--json keeps the numbers). */
export function humanStatus(result: unknown): unknown {
  if (typeof result !== 'object' || result === null || Array.isArray(result)) return result;
  const out: Record<string, unknown> = {};
  const states = (result as { connectionStates?: Record<string, ConnectionStates> }).connectionStates;
  for (const [k, v] of Object.entries(result)) {
    if (k === 'connectionStates') continue; // in words, in the listeners table
    if (k === 'listeners' && Array.isArray(v) && states) {
      out[k] = v.map((l: Record<string, unknown>) => ({ ...l, states: states[String(l.name)] ? describeStates(states[String(l.name)]!) || '-' : '-' }));
    } else if (k === 'workers' && Array.isArray(v)) out[k] = workerTable(v as Record<string, unknown>[]);
    else if (typeof v === 'number' && BYTE_FIELDS.has(k)) out[k] = bytes(v);
    else if (typeof v === 'number' && SECOND_FIELDS.has(k)) out[k] = duration(v);
    else if (typeof v === 'object' && v !== null && !Array.isArray(v)) out[k] = humanStatus(v);
    else out[k] = v;
  }
  return out;
}

const WORKER_COLUMNS = ['id', 'pid', 'state', 'uptime', 'restarts', 'connections', 'requests', 'rss'];

/** workerTable: a service's workers as the rows of a table with a header, columns aligned. */
function workerTable(workers: Record<string, unknown>[]): string[] {
  const cell = (w: Record<string, unknown>, c: string): string => {
    const v = w[c];
    if (v === null || v === undefined) return '-';
    if (typeof v === 'number' && c === 'rss') return bytes(v);
    if (typeof v === 'number' && c === 'uptime') return duration(v);
    return String(v);
  };
  const rows = [WORKER_COLUMNS, ...workers.map((w) => WORKER_COLUMNS.map((c) => cell(w, c)))];
  const widths = WORKER_COLUMNS.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((x, i) => x.padEnd(widths[i]!)).join('  ').trimEnd());
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

function duration(secs: number): string {
  if (secs < 60) return `${secs} s`;
  const d = Math.floor(secs / 86400);
  const h = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  const s = secs % 60;
  return d > 0 ? `${d} d ${h} h ${m} min` : h > 0 ? `${h} h ${m} min ${s} s` : `${m} min ${s} s`;
}
