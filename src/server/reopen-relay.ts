/**
 * ReopenRelay: a reopen (logrotate) asked of one instance during a redeploy
 * reaches the other one over the hand-off connection. From the moment the
 * old instance reads the descriptors to hand over until the hand-off
 * connection closes, the two instances hold copies of the same open files;
 * a reopen in either is then forwarded as a reopen record, and the other one
 * answers reopened once its files (and its workers' files) point at the new
 * path. So when reopen() returns in either instance, neither writes to the
 * rotated file any more.
 */
import type { LogFields } from '../log.js';
import type { Meta } from '../meta.js';
import { REOPENED_MARK, REOPEN_MARK } from '../protocol.js';

/** How long a reopen waits for the other instance's answer; past it, it returns and logs that the other one did not answer. */
export const RELAY_TIMEOUT_MS = 10_000;

/** ReopenPeer: the other instance of one hand-off connection. */
export class ReopenPeer {
  private send: ((meta: Meta) => Promise<void>) | null = null;
  private opened!: () => void;
  private readonly open = new Promise<void>((resolve) => (this.opened = resolve));
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly relay: ReopenRelay, readonly who: string) {}

  /** connect: records can go to the other instance now (after the descriptors and the end record). */
  connect(send: (meta: Meta) => Promise<void>): void {
    if (this.closed) return;
    this.send = send;
    this.opened();
  }

  /** close: the hand-off connection closed; a reopen waiting for an answer returns. Idempotent. */
  close(): void {
    this.closed = true;
    this.relay.forget(this);
    this.opened();
    for (const w of this.waiters.splice(0)) w();
  }

  /** forward sends a reopen record and resolves true once answered, false when the connection closed or timeoutMs passed first. Never rejects. */
  async forward(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    let waiter: (() => void) | undefined;
    try {
      return await Promise.race([late, (async () => {
        await this.open;
        if (this.closed || !this.send) return false;
        // Answers come in order: each reopened answers the oldest reopen still waiting.
        const answered = new Promise<boolean>((resolve) => this.waiters.push(waiter = () => resolve(!this.closed)));
        await this.send({ graceful: REOPEN_MARK }).catch(() => undefined);
        return answered;
      })()]);
    } finally {
      clearTimeout(timer);
      // Past the timeout its late answer must not be taken for a later reopen's: it still holds its place.
      if (waiter) {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters[i] = () => undefined;
      }
    }
  }

  /**
   * handle takes a record read from the other instance: a reopen is run
   * here (not forwarded back) and answered; a reopened answers the oldest
   * forward waiting. Resolves false for any other record (the caller's).
   */
  async handle(meta: Meta | null | undefined): Promise<boolean> {
    if (meta?.graceful === REOPENED_MARK) {
      this.waiters.shift()?.();
      return true;
    }
    if (meta?.graceful !== REOPEN_MARK) return false;
    await this.relay.reopenHere().catch((err: Error) => this.relay.log(`reopen asked by ${this.who}: ${err.message}`, { event: 'reopen.failed' }));
    await this.send?.({ graceful: REOPENED_MARK }).catch(() => undefined);
    return true;
  }
}

export class ReopenRelay {
  private readonly peers = new Set<ReopenPeer>();

  /** reopenHere re-opens this process's files and its workers' (never forwards). */
  constructor(readonly reopenHere: () => Promise<unknown>, readonly log: (msg: string, fields?: LogFields) => void) {}

  /** peer: an instance that holds, or is about to hold, copies of the files; close() it when the hand-off connection closes. */
  peer(who: string): ReopenPeer {
    const p = new ReopenPeer(this, who);
    this.peers.add(p);
    return p;
  }

  /** forget: called by ReopenPeer.close(). */
  forget(p: ReopenPeer): void {
    this.peers.delete(p);
  }

  /** forward: the reopen done here reaches every peer; resolves once each answered (or closed, or timed out: logged). */
  async forward(timeoutMs = RELAY_TIMEOUT_MS): Promise<void> {
    await Promise.all([...this.peers].map(async (p) => {
      if (!(await p.forward(timeoutMs))) this.log(`reopen: ${p.who} did not confirm that it re-opened its files`, { event: 'reopen.unconfirmed' });
    }));
  }
}
