/**
 * The old instance's side of a redeploy: spawn the same program with a
 * private hand-off socket, hand it every descriptor once it proves it is the
 * process we spawned, and wait for its readiness acknowledgement.
 */
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { builtin } from '../node-builtins.js';
import { PeerRefusedError, RedeployFailedError, HandoffFailedError, type RedeployFailure } from '../errors.js';
import type { Meta } from '../meta.js';
import { listenAndServe } from '../handoff/server.js';
import { receiveFrom } from '../handoff/client.js';
import type { HandoffConnection, OutgoingFd } from '../handoff/connection.js';
import type { HandoffServer } from '../handoff/server.js';
import { serviceStderr } from './service-stderr.js';
import { removeSocketDir } from '../socketpath.js';
import { HANDOFF_ENV, COMMIT_FIELD, REOPENS_FIELD, END_MARK, FAILED_MARK, PROGRESS_MARK, READY_MARK, RETIRE_MARK, RETIRED_MARK } from '../protocol.js';
import type { ReopenPeer, ReopenRelay } from './reopen-relay.js';

export { HANDOFF_ENV };
const STDERR_LINES = 20;
/** The hand-off socket's name in its private directory. */
const HANDOFF_SOCKET = 'handoff.sock';

/** SpawnFunction: the process seam; tests inject one to make a new instance crash or hang. */
export type SpawnFunction = (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

export interface SuccessorOptions {
  /** What to hand over, read at the moment the new instance connects. */
  descriptors: () => OutgoingFd[];
  /** State for the new instance (runlevel, generation), sent in the last record. */
  state: Meta;
  timeoutMs: number;
  spawn?: SpawnFunction;
  /** Called once the process exists. */
  onSpawned?: (pid: number) => void;
  /** Variables added to the new process's environment (a worker's slot). */
  env?: NodeJS.ProcessEnv;
  /** Aborting kills the new instance and fails the redeploy (reason 'aborted'). */
  signal?: AbortSignal;
  /**
   * retire: a rolling redeploy of workers asks that this instance's worker of
   * slot drain; resolves once it exited (none there: at once). Each request
   * starts the upgrade timeout again, since it shows progress.
   */
  retire?: (slot: number) => Promise<void>;
  /** A new primary said that one of its workers is ready. */
  onWorkerReady?: (worker: number, pid: number) => void;
  /** Keep the hand-off connection open after the ready answer (Successor.link): the caller must release it. */
  keep?: boolean;
  /**
   * relay: from the moment the descriptors are read for the new instance
   * until the hand-off connection closes, a reopen here is forwarded to it,
   * and one it asks for is run here (see ReopenRelay).
   */
  relay?: ReopenRelay;
}

/**
 * SuccessorLink: the hand-off connection kept open after the ready answer
 * (see COMMIT_MARK). release() closes it (the hand-off server is gone by
 * then); idempotent.
 */
export interface SuccessorLink {
  readonly connection: HandoffConnection;
  /** The new instance as a peer of the reopen relay: records read on the kept connection go to its handle(). */
  readonly reopen?: ReopenPeer;
  release(): void;
}

export interface Successor {
  pid: number;
  child: ChildProcess;
  /** The meta of its ready answer (where it takes connections over, if it does). */
  answer?: Meta;
  /** With SuccessorOptions.keep: the hand-off connection, still open. */
  link?: SuccessorLink;
}

/** StderrTail keeps the last lines a process wrote, while passing them on to our stderr. */
class StderrTail {
  private lines: string[] = [];
  private partial = '';

  push(chunk: Buffer): void {
    process.stderr.write(chunk);
    const text = this.partial + chunk.toString('utf8');
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    this.lines.push(...parts);
    if (this.lines.length > STDERR_LINES) this.lines.splice(0, this.lines.length - STDERR_LINES);
  }

  get(): string[] {
    return this.partial ? [...this.lines, this.partial].slice(-STDERR_LINES) : [...this.lines];
  }
}

/** What Node prints around an uncaught error that tells nothing: blank lines, stack frames, its version, the caret, the error's properties. */
const NOISE = [/^\s*$/, /^\s+at /, /^Node\.js v\d/, /^\s*\^+\s*$/, /^\s+[\w$]+: /, /^\s*[{}\]],?\s*$/];

/**
 * lastWords: the telling lines of a stderr tail, without blank lines, stack
 * frames, the properties Node prints after an error, and its version banner.
 */
function lastWords(lines: string[]): string {
  const telling = lines.filter((l) => !NOISE.some((re) => re.test(l)));
  return (telling.length ? telling : lines).slice(-3).map((l) => l.trim()).join(' | ');
}

/** The longest reason a new instance reports of its failed start (a failed record), in characters. */
export const REASON_MAX = 200;

/** oneLine: the first non-blank line of text, trimmed, cut to max characters (an ellipsis marks a cut). */
export function oneLine(text: string, max: number): string {
  const line = text.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? '';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/**
 * firstError: the first error a process wrote to stderr, one line of at most
 * 120 characters: the first line shaped as an error (`Error: ...`, `TypeError
 * [CODE]: ...`, as Node prints an uncaught one), else the first telling line
 * that is not the library's own (`graceful[pid]: `) nor a source location;
 * '' when it wrote nothing telling. A worker's own error, where lastWords
 * would give the lines its halt logged after it.
 */
export function firstError(lines: string[]): string {
  const telling = lines.filter((l) => !NOISE.some((re) => re.test(l)));
  const error = telling.find((l) => /^\s*(?:Uncaught )?(?:[A-Z][\w$]*)?(?:Error|Exception)\b[^:]*: \S/.test(l));
  const own = telling.find((l) => !/^graceful\[\d+\]: /.test(l) && !/^(?:file:\/\/|\/).*:\d+$/.test(l.trim()));
  return oneLine(error ?? own ?? telling[0] ?? '', 120);
}

/**
 * startSuccessor runs steps 2 to 5 of a redeploy and resolves once the new
 * instance said it is ready. On any failure it kills the new instance, closes
 * everything it opened, and rejects with RedeployFailedError; the caller's
 * descriptors are never closed here.
 */
export async function startSuccessor(options: SuccessorOptions): Promise<Successor> {
  let dir: string;
  try {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graceful-')); // mode 0700
  } catch (err) {
    throw new RedeployFailedError(`could not make a private directory for the hand-off socket in ${os.tmpdir()} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ` +
      'make it writable, or point TMPDIR elsewhere; no new instance was started and this instance goes on serving', { reason: 'handoff', stderr: [] }, { cause: err });
  }
  try {
    return await runSuccessor(options, dir);
  } finally {
    removeSocketDir(dir, [HANDOFF_SOCKET]);
  }
}

async function runSuccessor(options: SuccessorOptions, dir: string): Promise<Successor> {
  const sockPath = path.join(dir, HANDOFF_SOCKET);
  const tail = new StderrTail();
  let child: ChildProcess | undefined;
  let settled = false;
  let handoffError: Error | undefined;
  let answer: Meta | undefined;
  let link: SuccessorLink | undefined;
  let relayPeer: ReopenPeer | undefined;
  /** The reason the new instance reported of its failed start, if it did. */
  let reported: string | undefined;

  let ready!: () => void;
  let failed!: (failure: RedeployFailure, message: string, cause?: unknown) => void;
  const outcome = new Promise<void>((resolve, reject) => {
    ready = () => {
      settled = true;
      resolve();
    };
    failed = (failure, message, cause) => {
      if (settled) return;
      settled = true;
      reject(new RedeployFailedError(message, failure, { cause }));
    };
  });

  let server: HandoffServer;
  try {
    server = listenAndServe(sockPath, async (res) => {
    const peer = res.peer();
    if (!child || peer.pid !== child.pid || peer.uid !== process.getuid?.()) {
      throw new PeerRefusedError(
        `hand-off: refused pid ${peer.pid} (uid ${peer.uid}); only the new instance (pid ${child?.pid}) may connect`,
      );
    }
    // From here the new instance holds copies of the files: a reopen here must reach it.
    relayPeer = options.relay?.peer(`the new instance (pid ${child.pid})`);
    const reopens = relayPeer;
    for (const item of options.descriptors()) res.send(item.fd, item.meta);
    // The service's stderr, for the new process to put at its fd 2 in ready(): ours, unless
    // this process starts itself and its fd 2 is still the pipe to its own predecessor.
    res.send(serviceStderr(), { graceful: END_MARK, ...options.state, ...(options.keep ? { [COMMIT_FIELD]: true } : {}), ...(reopens ? { [REOPENS_FIELD]: true } : {}) });
    await res.flush();
    // One record at a time: a retired answer and a reopen record do not interleave.
    let sending: Promise<void> = Promise.resolve();
    reopens?.connect((meta) => (sending = sending.then(() => {
      res.send(2, meta);
      return res.flush();
    })));
    let ack = await receiveFrom(res.connection);
    while (ack !== null && (ack.meta?.graceful === RETIRE_MARK || ack.meta?.graceful === PROGRESS_MARK || (reopens && await reopens.handle(ack.meta)))) {
      fs.closeSync(ack.fd);
      if (ack.meta?.graceful !== RETIRE_MARK && ack.meta?.graceful !== PROGRESS_MARK) {
        ack = await receiveFrom(res.connection);
        continue;
      }
      arm(); // progress: the upgrade timeout starts again
      if (ack.meta.graceful === PROGRESS_MARK) {
        options.onWorkerReady?.(Number(ack.meta.worker), Number(ack.meta.pid));
      } else {
        const slot = Number(ack.meta.slot);
        await options.retire?.(slot);
        await (sending = sending.then(() => {
          res.send(2, { graceful: RETIRED_MARK, slot });
          return res.flush();
        }));
      }
      ack = await receiveFrom(res.connection);
    }
    if (ack) fs.closeSync(ack.fd);
    if (ack?.meta?.graceful === FAILED_MARK) {
      // The new instance said why it cannot start (Predecessor.abandon): that line is the reason.
      reported = oneLine(String(ack.meta.reason), REASON_MAX);
      throw new HandoffFailedError(`the new instance cannot start: ${reported}`);
    }
    if (ack?.meta?.graceful !== READY_MARK) {
      throw new HandoffFailedError(ack ? 'the new instance answered something other than ready' : 'the new instance closed the hand-off before it was ready');
    }
    answer = ack.meta;
    if (!options.keep) return ready();
    // The connection stays open (it closes when this returns) until the caller releases it.
    const released = new Promise<void>((resolve) => (link = { connection: res.connection, reopen: reopens, release: () => {
      reopens?.close();
      resolve();
    } }));
    ready();
    await released;
    }, { mode: 0o600 });
  } catch (err) {
    throw new RedeployFailedError(`could not open the hand-off socket ${sockPath} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ` +
      'point TMPDIR at a shorter path that this user may write; no new instance was started and this instance goes on serving', { reason: 'handoff', stderr: [] }, { cause: err });
  }
  let handoffTimer: NodeJS.Timeout | undefined;
  server.on('clientError', (err: Error & { code?: string }) => {
    if (err.code === 'ERR_GRACEFUL_PEER_REFUSED') {
      process.emitWarning(err.message, { code: err.code });
      return;
    }
    if (settled) return; // the kept connection, after ready: the caller's concern
    // A broken hand-off is most often the new instance dying: let its exit
    // name the failure if it comes; otherwise the hand-off is the reason.
    handoffError = err;
    handoffTimer = setTimeout(() => failed({ reason: 'handoff', pid: child?.pid, stderr: tail.get(), said: reported ?? firstError(tail.get()) },
      reported !== undefined ? `the new instance (pid ${child?.pid}) gave up before it was ready; its last words: ${reported}; it was killed and this instance goes on serving`
        : `the hand-off to the new instance (pid ${child?.pid}) failed: ${err.message}; it was killed and this instance goes on serving`, err), 1000);
  });

  const onAbort = () => failed({ reason: 'aborted', pid: child?.pid, signal: 'SIGKILL', stderr: tail.get() },
    `the redeploy was abandoned because this instance is stopping; the new instance (pid ${child?.pid}) was killed`);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      failed({ reason: 'timeout', pid: child?.pid, signal: 'SIGKILL', stderr: tail.get() },
        `the new instance (pid ${child?.pid}) was not ready within ${options.timeoutMs} ms; it was killed (SIGKILL) and this instance goes on serving`);
    }, options.timeoutMs);
  };
  arm();

  try {
    const spawn = options.spawn ?? builtin('child_process').spawn;
    child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      cwd: process.cwd(),
      env: { ...process.env, ...options.env, [HANDOFF_ENV]: sockPath },
      stdio: ['inherit', 'inherit', 'pipe'],
      // A session of its own: a terminal's Ctrl-C (sent to the foreground
      // process group) must not reach the new instance as well as this one.
      // Who signals it by pid (a supervisor, systemd's MAINPID) still can.
      detached: true,
    });
    child.stderr?.on('data', (chunk: Buffer) => tail.push(chunk));
    child.once('error', (err) => failed({ reason: 'spawn', pid: child?.pid, stderr: tail.get() },
      `could not start the new instance: ${err.message}`, err));
    child.once('exit', (code, signal) => {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const last = tail.get();
      // Its reported reason, when it sent one, rather than its stderr: that
      // carries the lines of every process it started (its workers) and of
      // the application, each wrapping the one before.
      const words = reported ?? (last.length ? lastWords(last) : '');
      failed({ reason: 'exit', pid: child?.pid, exitCode: code, signal, stderr: last, said: reported ?? firstError(last) },
        `the new instance (pid ${child?.pid}) ${how} before it was ready` +
          (words ? `; its last words: ${words}` : '') + '; this instance goes on serving',
        handoffError);
    });
    if (child.pid !== undefined) options.onSpawned?.(child.pid);
    await outcome;
    child.unref();
    (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
    return { pid: child.pid!, child, answer, link };
  } catch (err) {
    if (child && child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill('SIGKILL');
      await new Promise((r) => child!.once('exit', r));
    }
    // Its stderr pipe: read to the end (its last words), then closed.
    child?.stderr?.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
    clearTimeout(handoffTimer);
    options.signal?.removeEventListener('abort', onAbort);
    if (!link) relayPeer?.close();
    // Stops accepting at once; a kept connection outlives the server until released.
    const closing = server.close();
    if (!link) await closing;
  }
}
