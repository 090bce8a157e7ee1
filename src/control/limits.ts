/**
 * The bounds of the control socket: its options, their defaults, and the
 * internal limits that hold against a hostile or careless client (refusals
 * in flight, queued lines, unread output, idle time, the time a line may
 * take, the slots kept for `status` probes).
 */
import { invalidArgument } from '../errors.js';
import type { ControlLimits } from '../server/control-port.js';

/** The bounds (the controlLimits option) are the engine's type: one definition for both sides. */
export type { ControlLimits };

export interface ControlServerOptions extends ControlLimits {
  /** File mode of the socket (default 0o600). */
  mode?: number;
  /** uids allowed besides ours and root. */
  allowUids?: number[];
  /** ms a connection may stay silent with no command running (default 300 s). */
  idleTimeout?: number;
  /** Where the reasons for dropped connections go (default: NODE_DEBUG=graceful). */
  log?: (message: string) => void;
}

/** Defaults of ControlServerOptions. */
export const CONTROL_DEFAULTS = {
  idleTimeout: 300_000,
  maxConnections: 64,
  probeConnections: 4,
  maxRefused: 16,
  lineTimeout: 10_000,
  writeTimeout: 10_000,
  maxQueuedLines: 32,
  maxOutputBytes: 1024 * 1024,
} as const;

/** ResolvedLimits: every numeric bound of ControlServerOptions, defaults filled in. */
export type ResolvedLimits = Required<Omit<ControlServerOptions, 'mode' | 'allowUids' | 'log'>>;

/** ms a refused client has to send its first line (to learn its mode) and then to read the answer. */
export const REFUSAL_WAIT = 500;
export const REFUSAL_LINGER = 1_000;
/** ms a probe connection may stay silent. */
export const PROBE_IDLE = 5_000;
/** The most base64 of unrun input a connection takes along at a hand-off (a meta must fit one message). */
export const MAX_PENDING_META = 2048;
/** Reading a connection stops while this much input waits, whatever the number of lines. */
export const MAX_QUEUED_BYTES = 128 * 1024;
/** Commands a probe connection may run. */
export const PROBE_COMMANDS: ReadonlySet<string> = new Set(['status', 'health', 'help', 'quit', 'exit']);

/**
 * resolveLimits: the bounds of options, each checked, defaults filled in.
 * Throws ERR_GRACEFUL_INVALID_ARGUMENT (naming ControlServer) for a bound that is
 * not a positive integer (probeConnections may be 0), and (naming
 * controlSocket) for a mode that is not a file mode.
 */
export function resolveLimits(options: ControlServerOptions): ResolvedLimits {
  const opts: Record<string, number> = { ...CONTROL_DEFAULTS };
  for (const key of Object.keys(CONTROL_DEFAULTS) as (keyof typeof CONTROL_DEFAULTS)[]) {
    const v = options[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < (key === 'probeConnections' ? 0 : 1)) {
      throw invalidArgument('ControlServer', `${key} must be a positive integer, got ${String(v)}`);
    }
    opts[key] = v;
  }
  const mode = options.mode ?? 0o600;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw invalidArgument('controlSocket', `mode must be a file mode such as 0o600, got ${String(mode)}`);
  return opts as ResolvedLimits;
}
