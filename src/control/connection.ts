/**
 * ControlConnection: one client of the control socket, from its first byte
 * to its close. It frames the input into lines and runs them one at a time,
 * in order, replying in plain or JSON mode; it stops reading while
 * maxQueuedLines (or MAX_QUEUED_BYTES) wait or the client leaves output
 * unread, and drops a client past maxOutputBytes unread or writeTimeout; a
 * line is bounded in size and in time, a silent connection by idleTimeout.
 * For a hand-off it pauses with exactly the bytes it has not run (pending),
 * and it is released (closed here without a FIN) once a new instance has it.
 */
import type net from 'node:net';
import type { PeerCredentials } from '../native.js';
import { IdleTimeoutError, LineTooLongError, SlowClientError, StreamEndedError, TooManyConnectionsError, UsageError } from '../errors.js';
import { startReading, stopReading } from '../read-seam.js';
import { formatResult, type CommandContext, type CommandRegistry } from './commands.js';
import { MAX_QUEUED_BYTES, PROBE_COMMANDS, PROBE_IDLE, type ResolvedLimits } from './limits.js';
import { parseRequest, MAX_LINE_BYTES, type ControlRequest } from './parse.js';
import { renderEvent } from './render.js';
import { refusalLine, replyLine } from './replies.js';
import { ConnectionOutput } from './output.js';

const NEWLINE = Buffer.from('\n');

type Reply = Record<string, unknown>;

/** ConnectionOwner: what a connection needs from the server that accepted or adopted it (ControlServer). */
export interface ConnectionOwner {
  readonly opts: ResolvedLimits;
  readonly commands: CommandRegistry;
  /** A new instance took over the connections: one that ran `redeploy` is released after its reply. */
  readonly handedOver: boolean;
  /** progressed: a command finished or a connection closed. */
  progressed(): void;
  /** forget: the connection closed. */
  forget(conn: ControlConnection): void;
  /** logDrop logs why the connection is closed. */
  logDrop(conn: ControlConnection, reason: string): void;
}

/** ControlConnection: one client connection (see the top of this file). */
export class ControlConnection {
  /** Bytes of a line not yet ended. */
  private partial: Buffer = Buffer.alloc(0);
  /** Whole lines not run yet, as read (without their newline). */
  private queue: Buffer[] = [];
  private busy = false;
  closed = false;
  private readonly abort = new AbortController();
  /** Set while this connection runs `redeploy`: it is handed over, then finishes here. */
  handingOver = false;
  /** The line of the persistent command running, if one is (see Command.persistent). */
  persistentLine: string | null = null;
  /** Output of the running command is dropped: its connection is being handed over with it. */
  private muted = false;
  /** Adopted with a persistent command: the marker line goes before it runs again (with what the predecessor dropped). */
  private announce: { dropped: number; from: number } | null = null;
  /** Paused for a hand-off: input stays in the kernel (and in `queue`) for the next instance. */
  private paused = false;
  /** Set once this process ran anything for the client: only then may it end the connection. */
  served = false;
  /** The mode of the last line, for unsolicited answers (a timeout). */
  private json = false;
  private lineTimer: NodeJS.Timeout | null = null;
  /** Set by release(): this process lets the connection go and must never shut it down. */
  private released = false;
  /** The output side: bounded writes, what is unwritten, waits for the client to read. */
  private readonly output: ConnectionOutput;
  /** The request running, and whether it is the `telinit 0` that asks for a halt; set by closeByServer() to end after it. */
  private current: { req: ControlRequest; halts: boolean; endAfter?: boolean } | null = null;

  constructor(readonly socket: net.Socket, readonly peer: PeerCredentials, private readonly server: ConnectionOwner, readonly probe: boolean, paused = false) {
    this.paused = paused;
    this.output = new ConnectionOutput(socket, () => server.opts, (err) => this.drop(err));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.onClose());
    socket.on('drain', () => this.onDrain());
    socket.on('timeout', () => this.onIdle());
    if (!paused) this.armIdle();
  }

  /** armIdle starts the idle timer (never while paused: an adopted connection is not ours to close yet). */
  private armIdle(): void {
    this.socket.setTimeout(this.probe ? Math.min(PROBE_IDLE, this.server.opts.idleTimeout) : this.server.opts.idleTimeout);
  }

  get isBusy(): boolean {
    return this.busy;
  }

  /** hasQueued: lines read from the client wait to run here (not paused for a hand-off, not closed). */
  get hasQueued(): boolean {
    return !this.closed && !this.paused && !this.released && this.queue.length > 0;
  }

  /** pending: the bytes read from the client and not run yet, exactly. */
  get pending(): Buffer {
    return Buffer.concat([...this.queue.flatMap((l) => [l, NEWLINE]), this.partial]);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    let data = this.partial.length > 0 ? Buffer.concat([this.partial, chunk]) : chunk;
    for (;;) {
      const nl = data.indexOf(0x0a);
      if (nl < 0) break;
      if (nl > MAX_LINE_BYTES) return this.refuse(new LineTooLongError(`line too long: the limit is ${MAX_LINE_BYTES} bytes`));
      const line = Buffer.from(data.subarray(0, nl));
      data = data.subarray(nl + 1);
      this.json = line.toString('latin1').trimStart().startsWith('{');
      this.queue.push(line);
    }
    if (data.length > MAX_LINE_BYTES) return this.refuse(new LineTooLongError(`line too long: the limit is ${MAX_LINE_BYTES} bytes`));
    this.partial = Buffer.from(data);
    this.armLineTimer();
    if (this.queueFull()) this.stopInput();
    void this.pump();
  }

  /** armLineTimer bounds how long a started line may take (slowloris). */
  private armLineTimer(): void {
    if (this.partial.length === 0) {
      if (this.lineTimer) clearTimeout(this.lineTimer);
      this.lineTimer = null;
    } else if (!this.lineTimer && !this.paused) {
      const ms = this.server.opts.lineTimeout;
      this.lineTimer = setTimeout(() => {
        this.lineTimer = null;
        // Answered (best effort, coded in JSON mode), then closed within writeTimeout whatever the client does.
        this.refuse(new SlowClientError(`a line took longer than ${ms} ms to arrive: closing; send whole lines`));
      }, ms);
      this.lineTimer.unref();
    }
  }

  /**
   * feed replays input a predecessor had read but not run; persist is the
   * line of a persistent command it was running, dropped how many of its
   * lines it dropped (from: its pid), which the marker line tells.
   */
  feed(pending: Buffer, persist?: string, dropped = 0, from = 0): void {
    if (persist !== undefined) {
      this.queue.push(Buffer.from(persist, 'utf8'));
      this.announce = { dropped, from };
    }
    if (pending.length > 0) this.onData(pending);
  }

  /** mute drops the running command's output while the connection is handed over; unmute after a failed hand-off. */
  mute(on: boolean): void {
    this.muted = on;
  }

  /**
   * pause stops reading for a hand-off: libuv stops reading the descriptor,
   * and what Node had read already but not delivered joins `pending`, so the
   * next instance gets exactly the bytes this one did not run.
   */
  pause(): void {
    this.paused = true;
    this.socket.setTimeout(0);
    while (this.socket.read() !== null) { /* delivered to onData through 'data' */ }
    this.stopInput();
  }

  resume(): void {
    if (this.closed) return;
    this.paused = false;
    if (!this.busy) this.armIdle();
    this.maybeRead();
    void this.pump();
  }

  /** maybeRead reads again once the queue and the output have room. */
  private maybeRead(): void {
    if (this.closed || this.paused) return;
    if (!this.queueFull() && !this.socket.writableNeedDrain) {
      startReading(this.socket);
      this.armLineTimer();
    }
  }

  /** queueFull: maxQueuedLines wait, or MAX_QUEUED_BYTES of them (long lines). */
  private queueFull(): boolean {
    if (this.queue.length >= this.server.opts.maxQueuedLines) return true;
    let bytes = this.partial.length;
    for (const l of this.queue) bytes += l.length;
    return bytes >= MAX_QUEUED_BYTES;
  }

  /** stopInput stops reading; the line timer stops too, as a line cut by our own pause is not the client's delay. */
  private stopInput(): void {
    stopReading(this.socket);
    if (this.lineTimer) clearTimeout(this.lineTimer);
    this.lineTimer = null;
  }

  private async pump(): Promise<void> {
    if (this.busy || this.paused || this.closed) return;
    if (this.socket.writableNeedDrain) {
      this.stopInput(); // 'drain' pumps again
      return;
    }
    const raw = this.queue.shift();
    if (raw === undefined) return;
    const line = raw.toString('utf8');
    this.maybeRead();
    this.busy = true;
    this.served = true;
    this.socket.setTimeout(0);
    let oneshot = false;
    try {
      let req: ControlRequest | null;
      try {
        req = parseRequest(line);
      } catch (err) {
        this.reply((err as { json?: boolean }).json === true, undefined, err as Error);
        return;
      }
      if (!req) return;
      if (req.cmd === 'oneshot' && !req.json) {
        oneshot = true;
        if (req.args.length === 0) {
          this.reply(false, undefined, new UsageError('usage: oneshot <command> [args...]'));
          return;
        }
        req = { cmd: req.args[0]!, args: req.args.slice(1), json: false };
      }
      if (this.probe && !PROBE_COMMANDS.has(req.cmd)) {
        this.refuse(new TooManyConnectionsError(
          `too many connections (${this.server.opts.maxConnections}): this one, kept for probes, runs only status and help; try again later`,
        ), req.json);
        return;
      }
      if (req.cmd === 'quit' || req.cmd === 'exit') {
        this.reply(req.json, req.id, null, null);
        this.end();
        return;
      }
      await this.run(req, line);
    } finally {
      this.busy = false;
      if (oneshot && !this.closed) this.end();
      if (this.handingOver) {
        // This connection ran `redeploy`: its reply is written; the new
        // instance serves it from now on, or, if the redeploy failed, we go on.
        this.handingOver = false;
        if (this.server.handedOver) this.release();
        else this.resume();
      }
      if (!this.closed) {
        if (!this.paused) this.armIdle();
        void this.pump();
      }
      this.server.progressed();
    }
  }

  /** send writes text (see ConnectionOutput.write); false once closed or when the client does not keep up. */
  private send(text: string): boolean {
    if (this.closed || this.socket.destroyed || !this.socket.writable) return false;
    return this.output.write(text);
  }

  private onDrain(): void {
    this.output.onDrain();
    this.maybeRead();
    void this.pump();
  }

  private async run(req: ControlRequest, line: string): Promise<void> {
    const write = (obj: Reply, text: string | null): boolean => {
      if (this.muted) return !this.closed; // handed over with the command: the new instance writes from here on
      if (req.json) return this.send(`${JSON.stringify(req.id === undefined ? obj : { id: req.id, ...obj })}\n`);
      if (text !== null) return this.send(`${text}\n`);
      return !this.closed;
    };
    const ctx: CommandContext = {
      name: req.cmd,
      args: req.args,
      json: req.json,
      peer: this.peer,
      signal: this.abort.signal,
      write: (line) => write({ event: 'output', line }, line),
      event: (event, text) => write(event, text),
      drain: () => this.output.drained(this.closed),
      handover: () => {
        this.handingOver = true;
      },
    };
    if (this.announce) {
      const { dropped, from } = this.announce;
      this.announce = null;
      const served = { event: 'served', pid: process.pid, ...(dropped > 0 ? { dropped, from } : {}) };
      write(served, renderEvent(served));
    }
    try {
      const { name, command } = this.server.commands.get(req.cmd);
      const { minArgs = 0, maxArgs = Infinity } = command;
      if (req.args.length < minArgs || req.args.length > maxArgs) throw new UsageError(`usage: ${command.usage}`);
      this.persistentLine = command.persistent === true ? line : null;
      this.current = { req, halts: name === 'telinit' && Number(req.args[0]) === 0 };
      let result: unknown;
      try {
        result = await command.run(ctx);
      } finally {
        this.persistentLine = null;
      }
      if (!req.json) for (const line of formatResult(result)) write({}, line);
      this.reply(req.json, req.id, null, result);
    } catch (err) {
      this.reply(req.json, req.id, err as Error);
    } finally {
      const cur = this.current; // answered: no longer running
      this.current = null;
      if (cur?.endAfter) this.end();
    }
  }

  private reply(json: boolean, id: string | number | undefined, err: Error | null, result?: unknown): void {
    // A persistent command that ends while handed over is answered by the new instance, which runs it again.
    if (!this.muted) this.send(replyLine(json, id, err, result));
  }

  /** refuse answers err (coded in JSON mode) and ends the connection; it is destroyed if the client does not read. */
  private refuse(err: Error & { code: string }, json = this.json): void {
    if (this.closed) return;
    this.server.logDrop(this, err.message);
    this.send(refusalLine(json, err.code, err.message));
    this.end();
  }

  /** drop destroys a connection whose client does not keep up, with a logged reason. */
  private drop(err: Error): void {
    if (this.closed) return;
    this.server.logDrop(this, err.message);
    this.closed = true;
    this.abort.abort();
    this.socket.destroy();
  }

  /** end sends what is queued and a FIN; a client that reads none of it is destroyed after writeTimeout. */
  end(): void {
    if (this.socket.destroyed || this.released) return;
    this.closed = true;
    this.abort.abort();
    this.socket.end();
    startReading(this.socket); // read on to the client's EOF, which closes the descriptor
    setTimeout(() => this.socket.destroy(), this.server.opts.writeTimeout).unref();
  }

  /**
   * closeByServer ends the connection as its instance closes the control socket (a halt; handedOver:
   * the drain after a redeploy). The `telinit 0` that asked for the halt hears it (ctx.signal) and
   * is answered before the FIN (within writeTimeout); a stream still running ends with
   * ERR_GRACEFUL_STREAM_ENDED, not with its own reply.
   */
  closeByServer(handedOver: boolean): void {
    const cur = this.busy && !this.closed && !this.released ? this.current : null;
    if (cur?.halts) {
      cur.endAfter = true;
      this.abort.abort();
      setTimeout(() => this.end(), this.server.opts.writeTimeout).unref();
      return;
    }
    if (cur) this.reply(cur.req.json, cur.req.id, new StreamEndedError(`the stream ended: pid ${process.pid} ${handedOver
      ? 'handed over to a new instance in a redeploy and stopped; run the command again to follow the new one' : 'halts'}`));
    this.muted = true; // what the command writes as it stops is not the client's answer
    this.end();
  }

  private onIdle(): void {
    if (this.busy || this.closed || this.paused) return;
    this.refuse(new IdleTimeoutError(`idle for ${this.socket.timeout} ms: closing`));
  }

  private onClose(): void {
    this.closed = true;
    if (this.lineTimer) clearTimeout(this.lineTimer);
    this.output.close();
    this.abort.abort();
    this.server.forget(this);
    this.server.progressed();
  }

  /**
   * discard, for a hand-off of a persistent command: the output this process
   * still holds (written by the command, not yet taken by the kernel, as the
   * client reads slowly) must never reach the client after the new
   * instance's marker, so it is dropped: this process's copy of the socket
   * is destroyed (no FIN: the duplicate handed over keeps the connection).
   * Returns how many lines were dropped; the last of them may have reached
   * the client in part. Call it only while a duplicate exists.
   */
  discard(): number {
    const dropped = this.output.lines;
    this.released = true;
    this.closed = true;
    this.abort.abort();
    this.stopInput();
    this.socket.destroy();
    return dropped;
  }

  /** unwritten: output is still queued in this process (the client has not read enough of it). */
  get unwritten(): boolean {
    return this.socket.writableLength > 0;
  }

  /**
   * release drops this process's copy without a FIN (never shutdown()): the
   * next instance keeps the connection. What was written here is flushed
   * first (bounded by writeTimeout), so a reply is never cut.
   */
  release(): void {
    if (this.socket.destroyed || this.released) return;
    this.released = true;
    this.closed = true;
    this.abort.abort();
    this.stopInput();
    const timer = setTimeout(() => this.socket.destroy(), this.server.opts.writeTimeout);
    timer.unref();
    void this.output.flushed.then(() => {
      clearTimeout(timer);
      this.socket.destroy();
    });
  }
}
