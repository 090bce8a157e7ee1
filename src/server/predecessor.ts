/**
 * The new instance's side of a redeploy: connect to the hand-off socket named
 * in the environment, check the peer is our parent, take every descriptor,
 * and later say ready. From the moment it holds the descriptors, it watches
 * its predecessor: one that dies before ready() leaves this instance alone,
 * with its stderr put back (service-stderr.ts) so that it finishes starting.
 */
import { HandoffFailedError, PeerRefusedError } from '../errors.js';
import type { Meta } from '../meta.js';
import { HandoffConnection, closeAll } from '../handoff/connection.js';
import { receiveFrom, sendTo } from '../handoff/client.js';
import { HANDOFF_ENV, COMMIT_FIELD, REOPENS_FIELD, COMMIT_MARK, COMMITTED_MARK, END_MARK, FAILED_MARK, PROGRESS_MARK, READY_MARK, RETIRE_MARK, RETIRED_MARK } from '../protocol.js';
import { pidGone } from './pid-gone.js';
import { PipedStderr } from './service-stderr.js';
import type { ReopenPeer } from './reopen-relay.js';
import { oneLine, REASON_MAX } from './successor.js';
import type { ReceivedFd } from '../handoff/connection.js';

/** InheritedFd: a descriptor from the predecessor, with its meta (name, kind, address). */
export interface InheritedFd {
  fd: number;
  meta: Meta;
}

/** CommitAnswer: how a predecessor asked to commit can no longer take back (see Predecessor.commit). */
export type CommitAnswer = 'committed' | 'closed';

export class Predecessor {
  /** pid of the instance we replace. */
  readonly pid: number;
  private told = false;
  private gone = false;
  private exit: Promise<void> | null = null;
  /** The service's stderr, held while our fd 2 is the pipe to the predecessor. */
  private readonly stderr: PipedStderr;
  /** Records sent before ready go one after another. */
  private sending: Promise<unknown> = Promise.resolve();
  /** After ready(extra, true): resolves once the predecessor's end of the hand-off said committed, or closed. */
  private link: Promise<CommitAnswer> | null = null;
  /** With relay(): the one reader of the hand-off; answers (retired, committed, the end) wait here for nextAnswer(). */
  private reopens: ReopenPeer | null = null;
  private answers: (ReceivedFd | null)[] = [];
  private answerWaiters: ((got: ReceivedFd | null) => void)[] = [];

  private constructor(
    private readonly conn: HandoffConnection,
    readonly fds: InheritedFd[],
    readonly state: Meta,
    private readonly stderrFd: number,
  ) {
    this.pid = conn.peer().pid;
    this.stderr = new PipedStderr(stderrFd);
    // Watched from now on (the pidfd opened while it is surely our parent):
    // once it is gone, no write of ours may meet its dead pipe.
    void this.exited().then(() => {
      this.gone = !this.told;
      this.stderr.restore();
    });
  }

  /**
   * orphaned: the predecessor exited before this instance told it anything
   * (ready or failed): this instance is the only one, its stderr is the
   * service's again (fd 2), and once ready() it serves alone.
   */
  get orphaned(): boolean {
    return this.gone;
  }

  /** whenOrphaned calls listener once, when the predecessor exits before this instance told it anything (see orphaned). */
  whenOrphaned(listener: () => void): void {
    void this.exited().then(() => {
      if (this.gone) listener();
    });
  }

  /**
   * running: the predecessor has not exited. It is our parent: when it exits
   * the kernel gives us another one, so this asks the kernel, not a pid that
   * could be reused.
   */
  get running(): boolean {
    return process.ppid === this.pid;
  }

  /**
   * exited resolves once the predecessor has exited: a pidfd of it becomes
   * readable (opened while it is surely our parent, so its pid cannot have
   * been reused). Where pidfds are missing (ENOSYS before Linux 5.3) the
   * parent pid is checked every 100 ms instead. Nothing here keeps the
   * process alive.
   */
  exited(): Promise<void> {
    this.exit ??= pidGone(this.pid, () => this.running);
    return this.exit;
  }

  /**
   * connect takes the descriptors from the predecessor named by
   * GRACEFUL_HANDOFF (and removes it from the environment), or resolves null
   * when there is none. On failure it closes everything received and throws.
   */
  static async connect(env: NodeJS.ProcessEnv = process.env): Promise<Predecessor | null> {
    const sockPath = env[HANDOFF_ENV];
    if (!sockPath) return null;
    delete env[HANDOFF_ENV];
    const conn = await HandoffConnection.connect(sockPath);
    const fds: InheritedFd[] = [];
    try {
      const peer = conn.peer();
      if (peer.pid !== process.ppid) {
        throw new PeerRefusedError(`hand-off: ${sockPath} is served by pid ${peer.pid}, not by our parent (pid ${process.ppid})`);
      }
      for (;;) {
        const got = await receiveFrom(conn);
        if (!got) throw new HandoffFailedError('hand-off: the predecessor closed the connection before sending everything');
        if (got.meta?.graceful === END_MARK) return new Predecessor(conn, fds, got.meta, got.fd);
        fds.push({ fd: got.fd, meta: got.meta ?? {} });
      }
    } catch (err) {
      closeAll(fds.map((f) => f.fd));
      conn.close();
      throw err;
    }
  }

  /**
   * ready puts the service's stderr back at fd 2 (ours was a pipe to the
   * predecessor, so it could report our last words if we failed; it may be
   * back already, see orphaned), then answers ready.
   * The answer carries that descriptor back, as every record carries one.
   * It never rejects: it resolves with null once told, or with the error when
   * the predecessor could not be told (it is gone: this instance is the only
   * one and serves). Call it once; after abandon() it does nothing. extra
   * goes in the answer (where connections may be handed over, see adopt.ts).
   * With keep, and a predecessor that said it answers commit (COMMIT_FIELD),
   * the hand-off stays open once told (for commit()) until the predecessor
   * closes its end; it never keeps the event loop alive.
   */
  async ready(extra: Meta = {}, keep = false): Promise<Error | null> {
    if (this.told) return null;
    this.told = true;
    let kept = false;
    try {
      this.stderr.restore();
      await this.sending;
      await sendTo(this.conn, this.stderrFd, { ...extra, graceful: READY_MARK, pid: process.pid });
      if (keep && this.state[COMMIT_FIELD] === true) kept = this.keepLink();
      return null;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    } finally {
      this.stderr.close();
      if (!kept) this.conn.close();
    }
  }

  /**
   * keepLink reads the predecessor's next word on the hand-off kept open:
   * committed, or the end of the connection (its window passed, or it is
   * gone); either way it can no longer take back, and the connection closes.
   */
  private keepLink(): true {
    this.conn.unref();
    this.link = this.nextAnswer().then((got) => {
      if (got) closeAll([got.fd]);
      return got?.meta?.graceful === COMMITTED_MARK ? 'committed' as const : 'closed' as const;
    }, () => 'closed' as const).then((how) => {
      this.conn.close();
      return how;
    });
    return true;
  }

  /**
   * commit asks the predecessor, when ready(extra, true) kept the hand-off
   * open, to end its take-back window now: it drains and can no longer take
   * back. Resolves 'committed' once it answered so, 'closed' when it closed
   * its end instead (its window had passed, or it is gone); null when it did
   * not within timeoutMs, or the hand-off was not kept (then only its exit
   * tells). Never rejects; keeps the event loop alive while it waits.
   */
  async commit(timeoutMs: number): Promise<CommitAnswer | null> {
    if (!this.link) return null;
    if (!this.conn.isClosed) {
      this.conn.ref(); // while it waits for the answer
      void sendTo(this.conn, 2, { graceful: COMMIT_MARK }).catch(() => undefined);
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)));
    try {
      return await Promise.race([this.link, late]);
    } finally {
      clearTimeout(timer);
      if (!this.conn.isClosed) this.conn.unref();
    }
  }

  /**
   * retire asks the predecessor (the old primary of a rolling redeploy of
   * workers) to drain its worker of slot, and resolves once that worker has
   * exited, or at once when the predecessor is gone (its workers halt by
   * themselves: they watch it). Throws HandoffFailedError when the
   * predecessor runs but does not answer so.
   */
  async retire(slot: number): Promise<void> {
    if (this.told) throw new HandoffFailedError('retire: the predecessor was told already');
    if (this.gone) return;
    let answer: ReceivedFd | null = null;
    try {
      await this.send({ graceful: RETIRE_MARK, slot });
      answer = await this.nextAnswer();
    } catch (err) {
      if (await this.exitsSoon()) return;
      throw err;
    }
    if (answer) closeAll([answer.fd]);
    else if (await this.exitsSoon()) return;
    if (answer?.meta?.graceful !== RETIRED_MARK || answer.meta.slot !== slot) {
      throw new HandoffFailedError(`retire: the predecessor (pid ${this.pid}) ${answer ? 'answered something else' : 'closed the hand-off'} when asked to drain its worker ${slot}`);
    }
  }

  /**
   * exitsSoon: the hand-off broke; true when that is the predecessor's exit
   * (its pidfd says so within a second: the kernel closes a dying process's
   * descriptors just before it reports the exit).
   */
  private exitsSoon(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 1000)));
    return Promise.race([this.exited().then(() => true), late]).finally(() => clearTimeout(timer));
  }

  /**
   * progress tells the predecessor (best effort, never rejects) that a worker
   * of this new primary is ready, so that its redeploy events can say so.
   */
  progress(worker: number, pid: number): void {
    if (this.told) return;
    void this.send({ graceful: PROGRESS_MARK, worker, pid }).catch(() => undefined);
  }

  /** relays: the predecessor said (in its end record) that it relays reopens; an older one would fail on a reopen record. */
  get relays(): boolean {
    return this.state[REOPENS_FIELD] === true;
  }

  /**
   * relay makes peer the predecessor's side of the reopen relay: from here
   * one reader takes every record of the hand-off; reopen records go to the
   * relay (a reopen asked of the predecessor is run here and answered), the
   * rest to whoever waits for an answer. Records to it go after those queued
   * before the ready answer, and on the kept connection after it. Call it
   * once, right after connect(); it never keeps the event loop alive.
   */
  relay(peer: ReopenPeer): void {
    this.reopens = peer;
    peer.connect((meta) => (this.told ? sendTo(this.conn, 2, meta) : this.send(meta)));
    this.conn.unref();
    void (async () => {
      for (;;) {
        const got = await receiveFrom(this.conn).catch(() => null);
        if (got && (await peer.handle(got.meta))) {
          closeAll([got.fd]);
          continue;
        }
        const waiter = this.answerWaiters.shift();
        if (waiter) waiter(got);
        else this.answers.push(got);
        if (!got) break;
      }
      peer.close();
    })();
  }

  /** nextAnswer: the next record that is not the relay's (null at the end), read here or by relay()'s reader. */
  private nextAnswer(): Promise<ReceivedFd | null> {
    if (!this.reopens) return receiveFrom(this.conn);
    if (this.answers.length > 0) {
      const got = this.answers.shift()!;
      if (got === null) this.answers.unshift(null); // the end stays the end
      return Promise.resolve(got);
    }
    return new Promise((resolve) => this.answerWaiters.push(resolve));
  }

  private send(meta: Meta): Promise<void> {
    const next = this.sending.then(() => sendTo(this.conn, this.stderrFd, meta));
    this.sending = next.catch(() => undefined);
    return next.then(() => undefined);
  }

  /**
   * abandon closes the connection without a ready answer: the predecessor
   * sees a failed redeploy. With a reason (why this instance cannot start),
   * a failed record carrying it (one line, at most REASON_MAX characters)
   * goes first, so that the predecessor's redeploy fails with that line
   * rather than with what it reads back from our stderr (which nests the
   * messages of every process between). Idempotent; never throws.
   */
  abandon(reason?: string): void {
    if (this.told) return;
    this.told = true;
    const close = () => {
      this.stderr.close();
      this.conn.close();
    };
    if (reason === undefined) return close();
    // sendmsg is tried at once (the process may exit right after: an uncaught error).
    sendTo(this.conn, this.stderrFd, { graceful: FAILED_MARK, reason: oneLine(reason, REASON_MAX) }).catch(() => undefined).finally(close);
  }
}
