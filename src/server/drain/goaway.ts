/**
 * Http2Sessions: the HTTP/2 sessions of one server, and their graceful
 * shutdown (RFC 9113 section 6.8): a GOAWAY with the largest stream id, which
 * refuses nothing, PING round trips, then the final GOAWAY with the last
 * stream id processed; open streams finish.
 */
import type http2 from 'node:http2';
import { builtin } from '../../node-builtins.js';

/** The largest HTTP/2 stream id: a GOAWAY with it announces a shutdown and refuses nothing. */
const MAX_STREAM_ID = 2 ** 31 - 1;
/** How long a session must have no stream open, after the PINGs, before the final GOAWAY. */
const QUIET_MS = 20;

export class Http2Sessions {
  private readonly sessions = new Set<http2.Http2Session>();
  /** Sessions whose graceful GOAWAY has begun (it is never undone). */
  private readonly goingAway = new WeakSet<http2.Http2Session>();
  /** Per session: streams open, and when one last opened or closed. */
  private readonly activity = new WeakMap<http2.Http2Session, { open: number; last: number }>();

  /** add tracks a session until it closes. */
  add(session: http2.Http2Session): void {
    this.sessions.add(session);
    const activity = { open: 0, last: Date.now() };
    this.activity.set(session, activity);
    session.on('stream', (stream: http2.Http2Stream) => {
      activity.open++;
      activity.last = Date.now();
      stream.once('close', () => {
        activity.open--;
        activity.last = Date.now();
      });
    });
    session.once('close', () => this.sessions.delete(session));
  }

  /** openStreams: streams open on every session, for status. */
  openStreams(): number {
    let n = 0;
    for (const session of this.sessions) n += this.activity.get(session)?.open ?? 0;
    return n;
  }

  /** goawayAll starts the graceful shutdown of every session open. */
  goawayAll(graceMs: number): void {
    for (const session of this.sessions) this.goaway(session, graceMs);
  }

  /**
   * goaway starts the graceful shutdown of an HTTP/2 session (RFC 9113
   * section 6.8). The client is told when its next stream arrives (or after
   * the grace window): it has just flushed what it had queued. Node's client
   * (nghttp2) refuses by itself every stream it has not sent yet when a GOAWAY
   * arrives, whatever its last stream id: a GOAWAY sent while it reacts to
   * responses (between batches of streams) would make it refuse the next batch.
   * It still refuses a stream it opened in reaction to a response read in the
   * same chunk just before the GOAWAY (RFC 9113 section 6.8: no new stream
   * once a GOAWAY is received); the server cannot tell which of its bytes the
   * client has not read yet, so under continuous load a few remain.
   */
  goaway(session: http2.Http2Session, graceMs: number): void {
    if (session.closed || session.destroyed || this.goingAway.has(session)) return;
    this.goingAway.add(session);
    let started = false;
    const go = () => {
      if (started) return;
      started = true;
      session.off('stream', go);
      clearTimeout(timer);
      this.shutdown(session, graceMs);
    };
    const timer = setTimeout(go, Math.max(graceMs, 100));
    timer.unref();
    session.on('stream', go);
  }

  /**
   * shutdown sends a GOAWAY that refuses nothing, waits two PING round trips,
   * then sends the final GOAWAY with the last stream id processed (session.close()).
   */
  private shutdown(session: http2.Http2Session, graceMs: number): void {
    // A client answers the first GOAWAY with its own, and Node then closes the
    // session at once (the final GOAWAY), refusing the streams the client sent
    // just before: hold that back until the round trips are done.
    const close = session.close;
    session.close = ((callback?: () => void) => {
      if (callback) session.once('close', callback);
    }) as typeof session.close;
    let closed = false;
    const finish = () => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      // Then the final GOAWAY, once the session has had no stream open for
      // QUIET_MS (or at the grace window): a client may still send streams it
      // queued before it read the first GOAWAY, and Node's client, told to go
      // away, closes the connection itself once its streams are done.
      const activity = this.activity.get(session) ?? { open: 0, last: 0 };
      const until = Date.now() + Math.max(graceMs, 100);
      const last = () => {
        if (session.closed || session.destroyed) return;
        const now = Date.now();
        if ((activity.open > 0 || now - activity.last < QUIET_MS) && now < until) {
          setTimeout(last, QUIET_MS / 2).unref();
          return;
        }
        session.close = close;
        session.close();
      };
      setImmediate(last);
    };
    // A peer that never answers the PING gets the final GOAWAY after the grace window.
    const timer = setTimeout(finish, Math.max(graceMs, 100));
    timer.unref();
    try {
      session.goaway(builtin('http2').constants.NGHTTP2_NO_ERROR, MAX_STREAM_ID);
      // Once the PING comes back, the client has read the first GOAWAY. Its
      // acknowledgement jumps the client's queue, ahead of streams it opened
      // just before: a second round trip lets those arrive.
      const second = () => {
        if (session.destroyed || !session.ping(() => finish())) finish();
      };
      if (!session.ping(second)) finish();
    } catch {
      finish();
    }
  }
}
