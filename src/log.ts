/**
 * The library's own log lines: `graceful[pid]: message`, or one JSON object
 * per line ({"time","pid","msg",...fields}) when GRACEFUL_JSON_LOG is set to 1
 * or true, for log collectors.
 *
 * Each line has a level: a warning reports something that went wrong or was
 * refused (it failed, could not, was refused, ignored, lost, killed, crashed,
 * is unresponsive, was closed at a deadline, exited with a code other than 0);
 * every other line is information. A call marks it with `level` in its fields
 * where the words do not say it. By default every line goes to stderr. With
 * GRACEFUL_LOG_STDOUT=1 (the default under PM2, which files stderr as its
 * error log) information goes to stdout and only warnings to stderr;
 * GRACEFUL_LOG_STDOUT=0 keeps everything on stderr.
 */
export type LogLevel = 'info' | 'warn';
export type LogFields = Record<string, string | number | boolean | null | undefined> & { level?: LogLevel };
/**
 * LogSink: where a line goes. A sink declared with two parameters gets the
 * level too; any other (console.log, which takes any number) gets the line alone.
 */
export type LogSink = (line: string, level: LogLevel) => void;

/** jsonLogEnabled tells whether GRACEFUL_JSON_LOG asks for JSON lines. */
export function jsonLogEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes)$/i.test(env.GRACEFUL_JSON_LOG ?? '');
}

/** underPm2: this process was started by PM2 (or by a process PM2 started, with its environment). */
export function underPm2(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.pm_id !== undefined && env.pm_exec_path !== undefined;
}

/**
 * infoToStdout tells whether information goes to stdout: GRACEFUL_LOG_STDOUT
 * 1/true/yes or 0/false/no; unset or anything else, only under PM2.
 */
export function infoToStdout(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.GRACEFUL_LOG_STDOUT ?? '';
  if (/^(1|true|yes)$/i.test(v)) return true;
  if (/^(0|false|no)$/i.test(v)) return false;
  return underPm2(env);
}

/** The words of a line that reports something gone wrong (see the top of this file). */
const WARNING = /\b(fail(s|ed|ure)?|cannot|could not|refused|ignored|lost|killing|killed|crash(ed|es)?|unresponsive|not restarted|still open at their deadline|threw|is gone|exited with code [1-9]\d*|no generation running|unsafe|EADDRINUSE|error)\b/i;

/** levelOf: the level fields give, else warn when the message reports something gone wrong, else info. */
export function levelOf(msg: string, fields: LogFields = {}): LogLevel {
  if (fields.level === 'warn' || fields.level === 'info') return fields.level;
  return WARNING.test(msg) ? 'warn' : 'info';
}

/** formatLog renders one line, plain or JSON. */
export function formatLog(msg: string, fields: LogFields = {}, json = jsonLogEnabled()): string {
  if (json) return JSON.stringify({ time: new Date().toISOString(), pid: process.pid, msg, ...fields });
  return `graceful[${process.pid}]: ${msg}`;
}

/** defaultSink: stderr, or information to stdout when infoToStdout() says so (read at each line). */
const defaultSink: LogSink = (line, level) => {
  (level === 'info' && infoToStdout() ? process.stdout : process.stderr).write(`${line}\n`);
};

/** makeLogger returns the function the library logs through: each line, formatted, to sink (with its level, for a sink of two parameters). */
export function makeLogger(sink: LogSink = defaultSink): (msg: string, fields?: LogFields) => void {
  const withLevel = sink.length >= 2;
  return (msg, fields) => {
    const line = formatLog(msg, fields);
    if (withLevel) sink(line, levelOf(msg, fields));
    else (sink as (line: string) => void)(line);
  };
}
