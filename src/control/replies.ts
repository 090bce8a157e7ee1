/**
 * The final line of each answer on the control socket, in the client's mode:
 * plain (`ok`, `error: why`) or JSON (`{"ok":true,"result":...}`,
 * `{"ok":false,"error":{"code","message"}}`, with the request's id).
 */
import { errorCode } from '../errors.js';

/**
 * replyLine: the line that ends the answer to a command (with its newline).
 * An error without a code is ERR_GRACEFUL_COMMAND_FAILED in JSON mode; in
 * plain mode its message is kept on one line.
 */
export function replyLine(json: boolean, id: string | number | undefined, err: Error | null, result?: unknown): string {
  if (!json) return `${err ? `error: ${err.message.replace(/\n/g, ' ')}` : 'ok'}\n`;
  const body: Record<string, unknown> = err
    ? { ok: false, error: { code: errorCode(err) ?? 'ERR_GRACEFUL_COMMAND_FAILED', message: err.message } }
    : { ok: true, result: result ?? null };
  return `${JSON.stringify(id === undefined ? body : { id, ...body })}\n`;
}

/** refusalLine is the answer to a refused client, in the mode its first line used (with its newline). */
export function refusalLine(json: boolean, code: string, message: string): string {
  return json ? `${JSON.stringify({ ok: false, error: { code, message } })}\n` : `error: ${message}\n`;
}
