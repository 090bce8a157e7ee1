/**
 * The link between the primary and one worker: a private UNIX stream socket
 * pair made by the primary, one end kept, the other handed to the worker with
 * its listeners (LINK_NAME). JSON lines, one message each:
 *
 *   primary -> worker  {"id":1,"op":"stats"}
 *                      {"id":4,"op":"ping"}                    the liveness check (liveness.ts): answered with a null result
 *                      {"id":2,"op":"run","name":"requests","args":[],"json":false,"peer":{...}}
 *                      {"id":2,"op":"cancel"}                  the client left
 *                      {"id":3,"op":"task","name":"reopen","args":[]}
 *                      {"id":5,"op":"handover","pid":912,"adopt":"/tmp/...","adoptListeners":"http","adoptSockets":""}
 *                                            a redeploy: hand the connections to that new worker as the
 *                                            drain goes (handover.ts); answered true once connected
 *   worker -> primary  {"id":2,"line":"..."}                  output of a command, any number
 *                      {"id":2,"result":...} | {"id":2,"error":{"code":"...","message":"..."}}
 *                      {"id":0,"connections":12,"listeners":{"http":{"requests":9,"connections":4}}}
 *                                            unasked: its open connections and what each listener
 *                                            counted, when they changed (at most every 50 ms, and
 *                                            once more as it halts)
 *
 * A line over MAX_LINE bytes or one that is not such a message ends the link
 * (logged): a worker that cannot speak it is a bug, not a client to answer.
 * Neither end keeps its process alive.
 */
import type { MoveCounts } from '../server/drain/options.js';
import net from 'node:net';
import { WorkerFailedError } from '../errors.js';

/** LINK_NAME: the descriptor a worker gets besides its listeners: its end of the link. */
export const LINK_NAME = 'graceful:link';
/** The largest message either end accepts. */
const MAX_LINE = 1024 * 1024;
/** How much a worker's command may leave unsent on the link before it is stopped. */
const MAX_BUFFERED = 4 * MAX_LINE;

type Message = Record<string, unknown> & { id?: number };

/** lines wraps fd in a socket and calls onMessage per JSON line; onEnd once at EOF, an error or a bad line. */
function open(fd: number, onMessage: (m: Message) => void, onEnd: (why: string | null) => void): net.Socket {
  const socket = new net.Socket({ fd, readable: true, writable: true });
  socket.unref();
  let buf = '';
  let ended = false;
  const end = (why: string | null) => {
    if (ended) return;
    ended = true;
    socket.destroy();
    onEnd(why);
  };
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while (!ended && (nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let m: unknown;
      try {
        m = JSON.parse(line);
      } catch {
        end(`a line that is not JSON: ${line.slice(0, 80)}`);
        return;
      }
      if (typeof m !== 'object' || m === null || Array.isArray(m) || typeof (m as Message).id !== 'number') {
        end(`a message without an id: ${line.slice(0, 80)}`);
        return;
      }
      onMessage(m as Message);
    }
    if (!ended && buf.length > MAX_LINE) end(`a line over ${MAX_LINE} bytes`);
  });
  socket.on('error', (err: NodeJS.ErrnoException) => end(err.code ?? err.message));
  socket.on('close', () => end(null));
  return socket;
}

function send(socket: net.Socket, m: Message): boolean {
  if (socket.destroyed) return false;
  return socket.write(`${JSON.stringify(m)}\n`);
}

/**
 * sendBounded: what a worker sends, kept under MAX_LINE so that its primary
 * never drops the link: an output line is cut (and says so), a result too
 * large becomes an error.
 */
function sendBounded(socket: net.Socket, m: Message): boolean {
  const text = JSON.stringify(m);
  if (text.length < MAX_LINE) return send(socket, m);
  if (typeof m.line === 'string') return send(socket, { id: m.id, line: `${m.line.slice(0, MAX_LINE / 4)}... (cut: a line over ${MAX_LINE / 4} characters)` });
  return send(socket, { id: m.id, error: { code: 'ERR_GRACEFUL_COMMAND_FAILED', message: `the result is ${text.length} bytes as JSON, over the ${MAX_LINE} a worker may send its primary: return less, or stream it with ctx.write` } });
}

/** A worker's answer to one request, as the primary receives it. */
export interface Pending {
  onLine?: (line: string) => void;
  resolve(result: unknown): void;
  reject(err: Error): void;
}

/**
 * PrimaryLink: the primary's end of one worker's link. request() sends an
 * operation and resolves with the worker's result (output lines go to
 * onLine as they come); it rejects with the worker's coded error, or with
 * WorkerFailedError when the worker is gone before it answered.
 */
export class PrimaryLink {
  private readonly socket: net.Socket;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private gone: string | null = null;
  /** The worker's open connections, as it last reported them. */
  connections = 0;
  /** What each of its listeners counted (requests, connections), as it last reported it. */
  listeners: Record<string, { requests: number; connections: number }> = {};
  /** What the worker's drains did with its connections (handed over, drained, forced), as it last reported it. */
  moved: MoveCounts = { handedOver: 0, drained: 0, forced: 0 };
  /** When the worker last sent anything (ms since the epoch): its event loop ran then. */
  lastHeard = Date.now();
  /** A ping is under way (one at a time). */
  private pinging = false;

  /** closed is called once the link ended (the worker exited): after its last report was read. */
  constructor(fd: number, private readonly who: string, log: (msg: string) => void, closed?: (link: PrimaryLink) => void) {
    this.socket = open(fd, (m) => this.received(m), (why) => {
      this.gone = why ?? 'it exited';
      closed?.(this);
      if (why) log(`${who}: link closed: ${why}`);
      for (const p of this.pending.values()) p.reject(new WorkerFailedError(`${who} ended before it answered (${this.gone})`));
      this.pending.clear();
    });
  }

  private received(m: Message): void {
    this.lastHeard = Date.now();
    if (m.id === 0) {
      if (typeof m.connections === 'number') this.connections = m.connections;
      if (typeof m.listeners === 'object' && m.listeners !== null && !Array.isArray(m.listeners)) this.listeners = m.listeners as PrimaryLink['listeners'];
      const moved = m.moved as Partial<MoveCounts> | undefined;
      if (moved && [moved.handedOver, moved.drained, moved.forced].every((n) => Number.isSafeInteger(n) && n! >= 0)) this.moved = moved as MoveCounts;
      return;
    }
    const p = this.pending.get(m.id!);
    if (!p) return; // cancelled meanwhile
    if (typeof m.line === 'string') {
      p.onLine?.(m.line);
      return;
    }
    this.pending.delete(m.id!);
    if (m.error && typeof m.error === 'object') {
      const e = m.error as { code?: unknown; message?: unknown };
      const err = new Error(`${this.who}: ${typeof e.message === 'string' ? e.message : 'failed'}`) as Error & { code?: string };
      err.code = typeof e.code === 'string' ? e.code : 'ERR_GRACEFUL_COMMAND_FAILED';
      p.reject(err);
    } else {
      p.resolve(m.result ?? null);
    }
  }

  /** request sends op and waits for its answer; signal cancels it (the worker is told, the promise rejects with signal's reason). */
  request(op: string, fields: Record<string, unknown> = {}, onLine?: (line: string) => void, signal?: AbortSignal): Promise<unknown> {
    if (this.gone !== null) return Promise.reject(new WorkerFailedError(`${this.who} is gone (${this.gone})`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        if (!this.pending.delete(id)) return;
        send(this.socket, { id, op: 'cancel' });
        reject(signal!.reason instanceof Error ? signal!.reason : new Error('cancelled'));
      };
      this.pending.set(id, {
        onLine,
        resolve: (r) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(r);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      send(this.socket, { id, op, ...fields });
    });
  }

  /** ping asks the worker to answer (lastHeard moves when it does); nothing while the last ping is unanswered. */
  ping(): void {
    if (this.pinging || this.gone !== null) return;
    this.pinging = true;
    this.request('ping').catch(() => undefined).finally(() => {
      this.pinging = false;
    });
  }

  /** pause and resume reading: the primary's client is behind on what the worker writes. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  close(): void {
    this.socket.destroy();
  }
}

/** What a worker answers on its link. */
export interface WorkerHandlers {
  stats(): Record<string, unknown>;
  /** task runs one of the worker's tasks (reopen, or the application's). */
  task(name: string, args: string[]): Promise<unknown>;
  /** handOver: from now on the drain hands connections to the new worker named (see handover.ts); true once connected to it. */
  handOver?(target: Record<string, unknown>): Promise<boolean>;
  /** run runs an application command; write sends an output line (false: the primary is behind). */
  run(name: string, args: string[], json: boolean, peer: unknown, write: (line: string) => boolean, drain: () => Promise<void>, signal: AbortSignal): Promise<unknown>;
}

/** How often at most a worker reports its open connections. */
const REPORT_MS = 50;

/** WorkerLink: the worker's end: report() that its counts changed (what to send is read when it goes), close() sends the last report. */
export interface WorkerLink {
  close(): void;
  report(what: () => Record<string, unknown>): void;
}

/** serveLink answers the primary on the worker's end of the link. */
export function serveLink(fd: number, handlers: WorkerHandlers, log: (msg: string) => void): WorkerLink {
  let reportTimer: NodeJS.Timeout | null = null;
  const running = new Map<number, AbortController>();
  const socket: net.Socket = open(fd, (m) => {
    const id = m.id!;
    if (m.op === 'cancel') {
      running.get(id)?.abort(new Error('the client left'));
      running.delete(id);
      return;
    }
    void (async () => {
      const abort = new AbortController();
      let overflow = false;
      running.set(id, abort);
      try {
        let result: unknown;
        if (m.op === 'ping') result = null;
        else if (m.op === 'stats') result = handlers.stats();
        else if (m.op === 'handover' && handlers.handOver) result = await handlers.handOver(m);
        else if (m.op === 'task' && typeof m.name === 'string') result = await handlers.task(m.name, Array.isArray(m.args) ? m.args.map(String) : []);
        else if (m.op === 'run' && typeof m.name === 'string') {
          const args = Array.isArray(m.args) ? m.args.map(String) : [];
          const write = (line: string): boolean => {
            if (abort.signal.aborted) return false;
            // A command that writes on although its primary is behind is stopped: the buffer stays bounded.
            if (socket.writableLength > MAX_BUFFERED) {
              overflow = true;
              abort.abort(new Error(`the primary is more than ${MAX_BUFFERED} bytes behind on this command's output`));
              return false;
            }
            return sendBounded(socket, { id, line });
          };
          // Whichever comes first removes the other listener: a command waits on drain any number of times.
          const drain = () => (socket.writableNeedDrain && !socket.destroyed
            ? new Promise<void>((r) => {
              const done = () => {
                socket.off('drain', done);
                socket.off('close', done);
                r();
              };
              socket.once('drain', done);
              socket.once('close', done);
            })
            : Promise.resolve());
          result = await handlers.run(m.name, args, m.json === true, m.peer, write, drain, abort.signal);
        } else throw Object.assign(new Error(`unknown link operation ${JSON.stringify(m.op)}`), { code: 'ERR_GRACEFUL_INVALID_ARGUMENT' });
        if (!abort.signal.aborted) sendBounded(socket, { id, result: result === undefined ? null : result });
      } catch (err) {
        const e = err as { code?: unknown; message?: unknown };
        if (!abort.signal.aborted) send(socket, { id, error: { code: typeof e?.code === 'string' ? e.code : 'ERR_GRACEFUL_COMMAND_FAILED', message: String(e?.message ?? err) } });
      } finally {
        running.delete(id);
        if (overflow) send(socket, { id, error: { code: 'ERR_GRACEFUL_SLOW_CLIENT', message: `stopped: its output was not read (over ${MAX_BUFFERED} bytes behind)` } });
      }
    })();
  }, (why) => {
    for (const a of running.values()) a.abort(new Error('the primary is gone'));
    running.clear();
    if (why) log(`link to the primary closed: ${why}`);
  });
  let pending: (() => Record<string, unknown>) | null = null;
  const sendReport = () => {
    if (reportTimer) clearTimeout(reportTimer);
    reportTimer = null;
    if (pending) send(socket, { ...pending(), id: 0 });
    pending = null;
  };
  return {
    close: () => {
      sendReport();
      socket.end(); // what was written goes first
    },
    report: (what) => {
      pending = what;
      if (reportTimer) return; // one report per REPORT_MS, with the counts of its moment
      reportTimer = setTimeout(sendReport, REPORT_MS);
      reportTimer.unref();
    },
  };
}
