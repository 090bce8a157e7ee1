/**
 * ControlClient: talks JSON mode to a control socket, for programs and the CLI.
 */
import net from 'node:net';
import readline from 'node:readline';
import { ClosedError, TimeoutError, type GracefulErrorCode } from '../errors.js';

/** ControlReplyError: the server answered with an error; `code` is the server's. */
export class ControlReplyError extends Error {
  override name = 'ControlReplyError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export type ControlEvent = { event: string } & Record<string, unknown>;

const REFUSALS: [RegExp, GracefulErrorCode][] = [
  [/^permission denied/, 'ERR_GRACEFUL_PERMISSION_DENIED'],
  [/^too many connections/, 'ERR_GRACEFUL_TOO_MANY_CONNECTIONS'],
  [/^line too long/, 'ERR_GRACEFUL_LINE_TOO_LONG'],
  [/^idle for/, 'ERR_GRACEFUL_IDLE_TIMEOUT'],
];

export class ControlClient {
  private lines: string[] = [];
  private waiting: ((line: string | null) => void) | null = null;
  private ended = false;

  private constructor(private readonly socket: net.Socket) {
    readline.createInterface({ input: socket }).on('line', (line) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = null;
        w(line);
      } else {
        this.lines.push(line);
      }
    }).on('close', () => {
      this.ended = true;
      this.waiting?.(null);
      this.waiting = null;
    }).on('error', () => undefined); // readline re-emits the socket's errors (ECONNRESET): the end of the lines says enough
    socket.on('error', () => undefined); // surfaced as the end of the line stream
  }

  /** connect opens the control socket at path; rejects with the kernel's errno (ENOENT, ECONNREFUSED, EACCES). */
  static connect(path: string, timeoutMs = 10_000): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new TimeoutError(`could not connect to ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new ControlClient(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  private next(timeoutMs: number): Promise<string | null> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = timeoutMs > 0 && Number.isFinite(timeoutMs)
        ? setTimeout(() => {
          this.waiting = null;
          reject(new TimeoutError(`no answer within ${timeoutMs} ms`));
        }, timeoutMs)
        : null;
      this.waiting = (l) => {
        if (timer) clearTimeout(timer);
        resolve(l);
      };
    });
  }

  /**
   * request runs a command in JSON mode, calls onEvent for each progress or
   * output line, and resolves with the result; rejects with
   * ControlReplyError carrying the server's code.
   */
  async request(cmd: string, args: readonly string[] = [], onEvent?: (event: ControlEvent) => void, timeoutMs = Infinity): Promise<unknown> {
    this.socket.write(`${JSON.stringify({ cmd, args })}\n`);
    for (;;) {
      const line = await this.next(timeoutMs);
      if (line === null) throw new ClosedError('the server closed the connection before answering');
      if (line.startsWith('error: ')) {
        const message = line.slice(7);
        const code = REFUSALS.find(([re]) => re.test(message))?.[1] ?? 'ERR_GRACEFUL_COMMAND_FAILED';
        throw new ControlReplyError(code, message);
      }
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (obj.ok === true) return obj.result;
      if (obj.ok === false) {
        const e = obj.error as { code?: string; message?: string } | undefined;
        throw new ControlReplyError(e?.code ?? 'ERR_GRACEFUL_COMMAND_FAILED', e?.message ?? 'the command failed');
      }
      if (typeof obj.event === 'string') onEvent?.(obj as ControlEvent);
    }
  }

  /** raw sends a plain-mode line and resolves with the lines up to and including `ok` or `error: ...`. */
  async raw(line: string, onLine?: (line: string) => void, timeoutMs = Infinity): Promise<string[]> {
    this.socket.write(`${line}\n`);
    const out: string[] = [];
    for (;;) {
      const l = await this.next(timeoutMs);
      if (l === null) return out;
      out.push(l);
      onLine?.(l);
      if (l === 'ok' || l.startsWith('error: ')) return out;
    }
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}
