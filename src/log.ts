/**
 * The library's own log lines: `graceful[pid]: message` on stderr, or one JSON
 * object per line ({"time","pid","msg",...fields}) when GRACEFUL_JSON_LOG is
 * set to 1 or true, for log collectors.
 */
export type LogFields = Record<string, string | number | boolean | null | undefined>;
export type LogSink = (line: string) => void;

const stderrSink: LogSink = (line) => {
  process.stderr.write(`${line}\n`);
};

/** jsonLogEnabled tells whether GRACEFUL_JSON_LOG asks for JSON lines. */
export function jsonLogEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes)$/i.test(env.GRACEFUL_JSON_LOG ?? '');
}

/** formatLog renders one line, plain or JSON. */
export function formatLog(msg: string, fields: LogFields = {}, json = jsonLogEnabled()): string {
  if (json) return JSON.stringify({ time: new Date().toISOString(), pid: process.pid, msg, ...fields });
  return `graceful[${process.pid}]: ${msg}`;
}

/** makeLogger returns the function the library logs through. */
export function makeLogger(sink: LogSink = stderrSink): (msg: string, fields?: LogFields) => void {
  return (msg, fields) => sink(formatLog(msg, fields));
}
