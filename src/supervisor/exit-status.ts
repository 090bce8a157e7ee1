/**
 * ExitStatus: how a process ended, and the words and codes for it: the code
 * a shell would report (exitCodeOf), the name of a signal number.
 */
import os from 'node:os';

/** ExitStatus: how a process ended. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** exitCodeOf: the code a shell would report, 128 + n for a signal. */
export function exitCodeOf(status: ExitStatus): number {
  if (status.code !== null) return status.code;
  const n = status.signal ? os.constants.signals[status.signal] : undefined;
  return n === undefined ? 1 : 128 + n;
}

/** signalName: the name of signal number n (null for a number that is no signal). */
export function signalName(n: number): NodeJS.Signals | null {
  const found = Object.entries(os.constants.signals).find(([, v]) => v === n);
  return (found?.[0] as NodeJS.Signals | undefined) ?? null;
}

/** describeStatus: "exited with code 3", "was killed by SIGKILL". */
export function describeStatus(s: ExitStatus): string {
  return s.signal ? `was killed by ${s.signal}` : `exited with code ${s.code}`;
}

/** parseExitReport reads `<pid> <code or signal name>` (an EXIT_FIELD report); null when it is not one. */
export function parseExitReport(text: string): { pid: number; status: ExitStatus } | null {
  const exit = /^(\d+) (\d+|SIG[A-Z0-9]+)$/.exec(text);
  if (!exit) return null;
  const status: ExitStatus = /^\d+$/.test(exit[2]!) ? { code: Number(exit[2]), signal: null } : { code: null, signal: exit[2] as NodeJS.Signals };
  return { pid: Number(exit[1]), status };
}
