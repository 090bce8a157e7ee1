/**
 * ControlClient: talks JSON mode to a control socket, for programs and the CLI.
 */
import fs from 'node:fs';
import net from 'node:net';
import { builtin } from '../node-builtins.js';
import { addon } from '../native.js';
import { fdOf } from '../fds.js';
import { ClosedError, GracefulError, TimeoutError, UntrustedServerError, invalidArgument, type GracefulErrorCode } from '../errors.js';

/**
 * ControlReplyError: the server answered with an error; `code` is the
 * server's code as it sent it (one of ours, or an errno name such as EACCES).
 */
export class ControlReplyError extends GracefulError {
  override name = 'ControlReplyError';
  constructor(code: string, message: string) {
    super(code as GracefulErrorCode, message);
  }
}

export type ControlEvent = { event: string } & Record<string, unknown>;

/** ControlClientOptions: who may answer besides root and this process's uid. */
export interface ControlClientOptions {
  /** uids whose servers this client talks to besides root and its own. */
  serverUids?: readonly number[];
}

/** resolveUid turns a uid or a user name (from /etc/passwd) into a uid. */
export function resolveUid(user: string): number {
  if (/^\d+$/.test(user)) return Number(user);
  let passwd = '';
  try {
    passwd = fs.readFileSync('/etc/passwd', 'utf8');
  } catch {
    // no passwd file: only numbers
  }
  for (const line of passwd.split('\n')) {
    const [name, , uid] = line.split(':');
    if (name === user && uid !== undefined && /^\d+$/.test(uid)) return Number(uid);
  }
  throw invalidArgument('serverUids', `no user ${JSON.stringify(user)} in /etc/passwd: give a uid or a user name`);
}

/**
 * looksLikeHandoff tells whether the first bytes a server sent are a hand-off
 * frame (src/wire.ts: a uint32 little-endian length, then the meta) rather
 * than a line of text: a hand-off server sends its records as soon as a
 * client connects, and a length under 16 MiB has a NUL as its fourth byte,
 * which no control socket's text has.
 */
export function looksLikeHandoff(first: Buffer): boolean {
  return first.length >= 4 && first[3] === 0 && first.readUInt32LE(0) > 0;
}

/** NOT_CONTROL_SOCKET: the code of a request to a socket that turned out to be a hand-off socket. */
export const NOT_CONTROL_SOCKET = 'ERR_GRACEFUL_NOT_CONTROL_SOCKET';

export class ControlClient {
  private lines: string[] = [];
  private waiting: ((line: string | null) => void) | null = null;
  private ended = false;
  /**
   * Answers still owed to requests that timed out: the server answers in
   * order, so every line up to that many final answers belongs to them and
   * is skipped, never taken for a later request's.
   */
  private owed = 0;
  /** The server sent hand-off frames: it is a hand-off socket (see looksLikeHandoff). */
  private handoff = false;

  private constructor(private readonly socket: net.Socket, private readonly path = 'the socket') {
    // Read before the lines: descriptors sent with the frames never reach a
    // plain socket's read(2) (the kernel closes them), and nothing more is read.
    socket.once('data', (first: Buffer) => {
      if (!looksLikeHandoff(first)) return;
      this.handoff = true;
      socket.destroy();
    });
    builtin('readline').createInterface({ input: socket }).on('line', (line) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = null;
        w(line);
      } else {
        this.lines.push(line);
      }
    }).on('close', () => this.markEnded()).on('error', () => undefined); // readline re-emits the socket's errors (ECONNRESET): the end of the lines says enough
    socket.on('error', () => undefined); // surfaced as the end of the line stream
    socket.on('close', () => this.markEnded()); // destroyed without an end (close(), a reset): no more lines either
  }

  /**
   * connect opens the control socket at path; rejects with the kernel's errno
   * (ENOENT, ECONNREFUSED, EACCES), or with UntrustedServerError when the
   * process that answers (SO_PEERCRED) runs as a uid other than root, ours or
   * one in options.serverUids: anyone can listen at a path in a shared
   * directory, and what we send (a redeploy, a command's arguments) is theirs then.
   */
  static connect(path: string, timeoutMs = 10_000, options: ControlClientOptions = {}): Promise<ControlClient> {
    const trusted = new Set([0, process.getuid?.() ?? 0, ...(options.serverUids ?? [])]);
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new TimeoutError(`could not connect to ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        let peer: { pid: number; uid: number };
        try {
          peer = addon.peercred(fdOf(socket));
        } catch (err) {
          socket.destroy();
          reject(err as Error);
          return;
        }
        if (!trusted.has(peer.uid)) {
          socket.destroy();
          reject(new UntrustedServerError(
            `${path} is answered by pid ${peer.pid} of uid ${peer.uid}, not by root or this user (uid ${process.getuid?.()}): ` +
              'refusing to talk to it; if that server is meant to run as that user, allow it (--server-uid in the CLI, serverUids in ControlClient.connect)',
          ));
          return;
        }
        socket.removeAllListeners('error');
        resolve(new ControlClient(socket, path));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** isFinal: a line that ends an answer (JSON `ok`, or plain `ok` / `error: ...`). */
  private static isFinal(line: string): boolean {
    if (line === 'ok' || line.startsWith('error: ')) return true;
    if (!line.startsWith('{')) return false;
    try {
      return typeof (JSON.parse(line) as { ok?: unknown }).ok === 'boolean';
    } catch {
      return false;
    }
  }

  /** next: the next line of the current request's answer (null at the end), past what timed-out requests are owed. */
  private async next(timeoutMs: number): Promise<string | null> {
    for (;;) {
      const line = await this.nextLine(timeoutMs);
      if (line === null || this.owed === 0) return line;
      if (ControlClient.isFinal(line)) this.owed--;
    }
  }

  private nextLine(timeoutMs: number): Promise<string | null> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = timeoutMs > 0 && Number.isFinite(timeoutMs)
        ? setTimeout(() => {
          this.waiting = null;
          this.owed++;
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
    this.send(`${JSON.stringify({ cmd, args })}\n`);
    for (;;) {
      const line = await this.next(timeoutMs);
      if (line === null) throw this.endError();
      // A plain-mode answer (from a server that could not read our line) has no code.
      if (line.startsWith('error: ')) throw new ControlReplyError('ERR_GRACEFUL_COMMAND_FAILED', line.slice(7));
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
    this.send(`${line}\n`);
    const out: string[] = [];
    for (;;) {
      const l = await this.next(timeoutMs);
      if (l === null && this.handoff) throw this.endError();
      if (l === null) return out;
      out.push(l);
      onLine?.(l);
      if (l === 'ok' || l.startsWith('error: ')) return out;
    }
  }

  /**
   * send writes text: straight to the socket while nothing waits in Node's
   * buffer, so that a peer that closed without reading it (EPIPE: a hand-off
   * server sends its records and closes) does not destroy the stream before
   * what it sent is read; the rest, or all of it once something waits, goes
   * through the stream.
   */
  private send(text: string): void {
    const bytes = Buffer.from(text);
    let sent = 0;
    if (this.socket.writableLength === 0 && !this.socket.destroyed) {
      try {
        sent = Math.max(0, addon.sendmsg(fdOf(this.socket), bytes, 0, bytes.length, null, 0));
      } catch {
        return; // the peer is gone: what it sent is still read, then the end
      }
    }
    if (sent < bytes.length) this.socket.write(bytes.subarray(sent));
  }

  /** endError: why no answer came: a hand-off socket, or a server that closed the connection. */
  private endError(): Error {
    if (!this.handoff) return new ClosedError('the server closed the connection before answering');
    return new ControlReplyError(NOT_CONTROL_SOCKET, `${this.path} is a hand-off socket, not a control socket: it sent descriptors as soon as we connected ` +
      '(they were closed here at once, and the server that sent them may have stopped serving: check it); name the server\'s control socket (its controlSocket option)');
  }

  /** isHandoff: the server turned out to be a hand-off server (it sent descriptor frames, not lines). */
  get isHandoff(): boolean {
    return this.handoff;
  }

  private readonly endListeners: (() => void)[] = [];

  /** markEnded: no more lines will come; a request waiting for one gets the end. */
  private markEnded(): void {
    if (this.ended) return;
    this.ended = true;
    this.waiting?.(null);
    this.waiting = null;
    for (const f of this.endListeners.splice(0)) f();
  }

  /** isEnded: the connection is closed (by the server, or by close()); no more lines will come. */
  get isEnded(): boolean {
    return this.ended;
  }

  /** onEnd calls listener once the server closed the connection (or close() did); at once if it has. */
  onEnd(listener: () => void): void {
    if (this.ended) listener();
    else this.endListeners.push(listener);
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}
