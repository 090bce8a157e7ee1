/**
 * Supervisor: a process that stays in the foreground for the whole life of an
 * application, whatever redeploys happen below it (PID 1 of a container, the
 * main pid of a systemd unit, the process PM2 watches).
 *
 * A redeploy spawns the new instance as a child of the old one; the old one
 * then exits and the new one is orphaned. The supervisor is the subreaper of
 * its descendants, so every orphan is reparented to it, and it reaps them all.
 * It learns which process is the current generation from the sd_notify
 * protocol: it gives the application NOTIFY_SOCKET, and a new instance of a
 * GracefulServer says `MAINPID=<pid>` and `READY=1` there. It forwards
 * SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 to the current generation, and
 * once no generation is left, exits with the current one's exit code (or
 * 128 + signal). An application that does not use this library runs under it
 * as under any init.
 */
import { spawn as nodeSpawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { addon, POLL_READABLE, type Poller } from '../native.js';
import { errorCode, invalidArgument, SupervisorRunningError } from '../errors.js';
import { makeLogger, type LogFields, type LogSink } from '../log.js';
import { notify, takeListenFds, type ActivatedFd } from '../systemd.js';
import { activatedSpawn, canPassListenFds, ACTIVATION_SHELL } from './activation.js';
import { ControlServer } from '../control/server.js';
import { NotifySocket, type NotifyMessage } from './notify.js';
import { childrenOf, isDescendant, stat } from './procfs.js';
import { addSupervisorCommands } from './commands.js';
import { SUPERVISOR_ENV, CONTROL_FIELD, EXIT_FIELD } from './protocol.js';

/** The signals forwarded to the current generation. */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];
/** Lines never relayed to the supervisor's own service manager. */
const NOT_RELAYED = /^(MAINPID|X_|FDSTORE|FDNAME|FDPOLL|BARRIER|NOTIFYACCESS)/;

export type RestartPolicy = 'no' | 'on-failure' | 'always';

export interface SupervisorOptions {
  command: string;
  args?: readonly string[];
  /** The supervisor's own control socket (none by default). */
  socket?: string;
  /** File mode of that socket (default 0o600). */
  socketMode?: number;
  /** Start the command again when no generation is left: 'no' (default), 'on-failure', 'always'. */
  restart?: RestartPolicy;
  /** ms between an exit and the restart (default 1000). */
  restartDelay?: number;
  /** Most restarts (default: no limit). */
  maxRestarts?: number;
  /** The application speaks sd_notify (default true); false: it counts as ready once started. */
  notify?: boolean;
  /** ms processes left behind at the end have between SIGTERM and SIGKILL (default 10 s). */
  killTimeout?: number;
  /** The application's environment (default: ours). */
  env?: NodeJS.ProcessEnv;
  /** Where the supervisor's log lines go (default stderr). */
  log?: LogSink;
}

/** ExitStatus: how a process ended. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** exitCodeOf: the code a shell would report, 128 + n for a signal. */
export function exitCodeOf(status: ExitStatus): number {
  if (status.code !== null) return status.code;
  const n = status.signal ? os.constants.signals[status.signal] : undefined;
  return n === undefined ? 1 : 128 + n;
}

function signalName(n: number): NodeJS.Signals | null {
  const found = Object.entries(os.constants.signals).find(([, v]) => v === n);
  return (found?.[0] as NodeJS.Signals | undefined) ?? null;
}

function describeStatus(s: ExitStatus): string {
  return s.signal ? `was killed by ${s.signal}` : `exited with code ${s.code}`;
}

interface Generation {
  pid: number;
  pidfd: number;
  poller: Poller | null;
  /** Without a pidfd (pidfd_open failed: ENOSYS, EMFILE): the timer that polls the pid. */
  timer: NodeJS.Timeout | null;
}

/** How often a generation is polled when no pidfd can follow it. */
const POLL_GONE_MS = 100;

/** processGone: pid no longer runs (no such process, or a zombie). Needs no descriptor but to read /proc. */
function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (errorCode(err) === 'ESRCH') return true;
  }
  return stat(pid)?.state === 'Z';
}

/** The Supervisor started in this process, if any: one at a time. */
let running: Supervisor | null = null;

const STATUS_MEMORY = 256;

/**
 * Supervisor: see the top of this file. It reaps: as the subreaper it reaps
 * every exited child of this process that it did not spawn itself, so the
 * process that runs it must not start children of its own (child_process)
 * meanwhile: their exit status would be taken. Hence one Supervisor per
 * process: start() refuses a second one while the first runs, with
 * ERR_GRACEFUL_SUPERVISOR_RUNNING.
 */
export class Supervisor extends EventEmitter {
  readonly options: Readonly<SupervisorOptions>;
  /** Starts of the command after the first. */
  restarts = 0;
  private readonly log: (msg: string, fields?: LogFields) => void;
  private readonly generations = new Map<number, Generation>();
  /** libuv's own children (the ones we spawned), which libuv reaps. */
  private readonly spawned = new Map<number, ChildProcess>();
  private readonly statuses = new Map<number, ExitStatus>();
  private current = 0;
  private isReady = false;
  private spoke = false;
  private control: string | null = null;
  private stopping = false;
  private concluding = false;
  private finished = false;
  private lastExit: ExitStatus | null = null;
  private readonly upstream: string | undefined;
  private notifySocket: NotifySocket | null = null;
  private controlServer: ControlServer | null = null;
  private keepAlive: NodeJS.Timeout | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private readonly handlers = new Map<NodeJS.Signals, () => void>();
  /** Sockets passed to us by socket activation, passed on to every generation. */
  private activated: ActivatedFd[] = [];
  private readonly startedAt = Date.now();
  private resolveExit!: (code: number) => void;
  /** exited resolves with the code the supervisor should exit with. */
  readonly exited: Promise<number>;

  constructor(options: SupervisorOptions) {
    super();
    if (typeof options.command !== 'string' || options.command === '') throw invalidArgument('Supervisor', 'a command to run is required');
    for (const key of ['restartDelay', 'killTimeout', 'maxRestarts'] as const) {
      const v = options[key];
      if (v !== undefined && !(Number.isInteger(v) && v >= 0)) throw invalidArgument('Supervisor', `${key} must be a whole number >= 0, got ${String(v)}`);
    }
    if (options.restart !== undefined && !['no', 'on-failure', 'always'].includes(options.restart)) {
      throw invalidArgument('Supervisor', `restart must be no, on-failure or always, got ${JSON.stringify(options.restart)}`);
    }
    this.options = options;
    const log = makeLogger(options.log);
    this.log = (msg, fields) => log(`supervisor: ${msg}`, fields);
    this.upstream = (options.env ?? process.env).NOTIFY_SOCKET;
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
  }

  /** pid of the current generation (0 before the first start). */
  get currentPid(): number {
    return this.current;
  }

  /** ready: the current generation said READY=1 (or started, with notify: false). */
  get ready(): boolean {
    return this.isReady && this.generations.has(this.current);
  }

  /** notified: the application spoke sd_notify at least once (a GracefulServer does; a plain program does not). */
  get notified(): boolean {
    return this.spoke;
  }

  /** appControl: the control socket the current application announced, if any. */
  get appControl(): string | null {
    return this.control;
  }

  /** generationPids: the generations alive, the current one last. */
  get generationPids(): number[] {
    const pids = [...this.generations.keys()].filter((p) => p !== this.current);
    if (this.generations.has(this.current)) pids.push(this.current);
    return pids;
  }

  get uptime(): number {
    return Math.round((Date.now() - this.startedAt) / 1000);
  }

  /**
   * start makes this process the subreaper, opens the notify socket (and the
   * control socket), installs the signal handlers and starts the command.
   */
  async start(): Promise<void> {
    if (running) {
      throw new SupervisorRunningError(`Supervisor.start(): a Supervisor already runs in this process (pid ${process.pid}, command ${JSON.stringify(running.options.command)}); `
        + 'it reaps every child of the process, so a second one cannot run beside it: wait for the first one\'s `exited`');
    }
    if (this.notifySocket || this.finished) throw new SupervisorRunningError('Supervisor.start(): this Supervisor was started already: make a new one');
    addon.setChildSubreaper();
    running = this;
    try {
      this.notifySocket = new NotifySocket((m) => this.onNotify(m));
    } catch (err) {
      running = null;
      throw err;
    }
    try {
      if (this.options.socket) {
        const server = new ControlServer(this.options.socket, { mode: this.options.socketMode, log: (m) => this.log(m) });
        addSupervisorCommands(server.commands, this);
        await server.listen();
        this.controlServer = server;
      }
    } catch (err) {
      this.notifySocket.close();
      running = null;
      throw err;
    }
    this.keepAlive = setInterval(() => undefined, 2 ** 31 - 1);
    this.takeActivated();
    for (const sig of [...FORWARDED_SIGNALS, 'SIGCHLD'] as NodeJS.Signals[]) {
      const handler = sig === 'SIGCHLD' ? () => this.sweep() : () => this.forward(sig);
      this.handlers.set(sig, handler);
      process.on(sig, handler);
    }
    this.spawn();
  }

  private spawn(): void {
    this.restartTimer = null;
    const env = { ...(this.options.env ?? process.env), NOTIFY_SOCKET: this.notifySocket!.path, [SUPERVISOR_ENV]: String(process.pid) };
    const command = [this.options.command, ...(this.options.args ?? [])].join(' ');
    const how = this.activated.length > 0
      ? activatedSpawn(this.options.command, this.options.args ?? [], env, this.activated)
      : { command: this.options.command, args: [...(this.options.args ?? [])], stdio: 'inherit' as const };
    // A session of its own: a terminal's Ctrl-C reaches only us, and we forward it once.
    const child = nodeSpawn(how.command, how.args, { stdio: how.stdio, detached: true, env });
    if (child.pid === undefined) {
      child.once('error', (err: NodeJS.ErrnoException) => {
        const code = err.code === 'ENOENT' ? 127 : 126;
        this.log(`cannot start ${command}: ${err.message}${code === 127 ? ': is it installed, and on PATH?' : ': is it executable?'}`, { event: 'supervisor.spawn-failed', code: err.code });
        this.lastExit = { code, signal: null };
        void this.conclude(true);
      });
      return;
    }
    const pid = child.pid;
    this.spawned.set(pid, child);
    child.once('exit', (code, signal) => {
      this.spawned.delete(pid);
      this.remember(pid, { code, signal });
      this.sweep(); // libuv reaped it: the exits behind it can be reaped now
      if (this.generations.get(pid)?.timer) this.onGone(pid); // followed without a pidfd: this is the news
    });
    this.current = pid;
    this.isReady = this.options.notify === false;
    this.control = null;
    this.watch(pid);
    this.log(`started pid ${pid}: ${command}`, { event: 'supervisor.started', appPid: pid });
    if (this.isReady) this.relay(new Map([['READY', '1']]));
  }

  /**
   * takeActivated takes the sockets systemd passed to the supervisor (LISTEN_PID
   * ours), to pass them on to each generation (see activation.ts).
   */
  private takeActivated(): void {
    const fds = takeListenFds(this.options.env ?? process.env);
    if (fds.length === 0) return;
    const names = fds.map((f) => `${f.name} (fd ${f.fd})`).join(', ');
    if (!canPassListenFds()) {
      this.log(`socket activation: cannot pass ${names} on, as ${ACTIVATION_SHELL} is missing: the application will not get them`,
        { event: 'supervisor.activation-unavailable' });
      return;
    }
    this.activated = fds;
    this.log(`socket activation: passing ${names} on to the application`, { event: 'supervisor.activation', fds: fds.length });
  }

  /**
   * watch follows a generation's exit through a pidfd, whoever its parent
   * is. ESRCH means it is gone already. Any other failure of pidfd_open
   * (ENOSYS before Linux 5.3, EMFILE) is logged, and the pid is polled
   * instead (kill(pid, 0) and its /proc state, every 100 ms; the exit of a
   * child spawned here is seen at once).
   */
  private watch(pid: number): void {
    let pidfd: number;
    try {
      pidfd = addon.pidfdOpen(pid);
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ESRCH') {
        this.generations.set(pid, { pid, pidfd: -1, poller: null, timer: null });
        setImmediate(() => this.onGone(pid)); // already gone
        return;
      }
      this.log(`cannot follow pid ${pid} through a pidfd (${(err as Error).message}): polling it every ${POLL_GONE_MS} ms instead`,
        { event: 'supervisor.pidfd-unavailable', appPid: pid, code });
      const timer = setInterval(() => {
        this.sweep();
        if (processGone(pid)) this.onGone(pid);
      }, POLL_GONE_MS);
      timer.unref();
      this.generations.set(pid, { pid, pidfd: -1, poller: null, timer });
      return;
    }
    const poller = new addon.Poller(pidfd, () => this.onGone(pid));
    poller.start(POLL_READABLE);
    poller.unref();
    this.generations.set(pid, { pid, pidfd, poller, timer: null });
  }

  private onGone(pid: number): void {
    const g = this.generations.get(pid);
    if (!g) return;
    this.generations.delete(pid);
    g.poller?.close();
    if (g.timer) clearInterval(g.timer);
    if (g.pidfd >= 0) addon.close(g.pidfd);
    // A MAINPID= sent before this exit must count first.
    this.notifySocket?.drain();
    this.sweep();
    this.emit('gone', pid);
    if (this.generations.has(this.current)) return;
    if (this.generations.size === 0) void this.conclude(false);
    else if (pid === this.current) {
      // An older generation still drains; it may serve again (take-back) and say MAINPID= for itself.
      this.log(`the current generation (pid ${pid}) ended; waiting for pid ${this.generationPids.join(', ')}`, { event: 'supervisor.current-gone', appPid: pid });
    }
  }

  /** sweep reaps every exited child libuv does not own: orphans reparented to us. */
  private sweep(): void {
    for (const r of addon.reap([...this.spawned.keys()])) {
      this.remember(r.pid, { code: r.code, signal: r.signal === null ? null : signalName(r.signal) });
    }
  }

  private remember(pid: number, status: ExitStatus): void {
    this.statuses.set(pid, status);
    if (this.statuses.size > STATUS_MEMORY) this.statuses.delete(this.statuses.keys().next().value!);
  }

  private onNotify({ fields, sender }: NotifyMessage): void {
    this.spoke = true;
    const main = fields.get('MAINPID');
    if (main !== undefined) {
      const pid = Number(main);
      if (!Number.isInteger(pid) || pid <= 1) {
        this.log(`pid ${sender.pid} sent MAINPID=${main.slice(0, 32)}: not a pid, ignored`);
      } else if (pid !== this.current) {
        if (!this.generations.has(pid) && !isDescendant(pid, process.pid)) {
          this.log(`pid ${sender.pid} sent MAINPID=${pid}, which is not a live descendant of the supervisor: ignored`, { event: 'supervisor.mainpid-refused' });
        } else {
          // A new instance says MAINPID= once it accepts, just before READY=1:
          // readiness carries over, so a health probe in between does not flap.
          this.current = pid;
          if (!this.generations.has(pid)) this.watch(pid);
          this.log(`pid ${pid} is the current generation`, { event: 'supervisor.current', appPid: pid });
          this.emit('current', pid);
        }
      }
    }
    const control = fields.get(CONTROL_FIELD);
    if (control !== undefined && path.isAbsolute(control) && Buffer.byteLength(control) < 108) this.control = control;
    const exit = /^(\d+) (\d+|SIG[A-Z0-9]+)$/.exec(fields.get(EXIT_FIELD) ?? '');
    if (exit) {
      const pid = Number(exit[1]);
      // Only a generation reports, and only of a process we could not reap ourselves.
      if (this.generations.has(sender.pid) && pid !== sender.pid && !this.spawned.has(pid) && !this.statuses.has(pid)) {
        this.remember(pid, /^\d+$/.test(exit[2]!) ? { code: Number(exit[2]), signal: null } : { code: null, signal: exit[2] as NodeJS.Signals });
      }
    }
    if (fields.get('READY') === '1') {
      const first = !this.isReady;
      this.isReady = true;
      if (first) this.emit('ready', this.current);
    }
    this.relay(fields);
  }

  /** relay passes what the application tells us to our own service manager, if we have one. */
  private relay(fields: Map<string, string>): void {
    if (!this.upstream) return;
    const lines = [...fields].filter(([k]) => !NOT_RELAYED.test(k)).map(([k, v]) => `${k}=${v}`);
    if (lines.length) notify(lines.join('\n'), { NOTIFY_SOCKET: this.upstream });
  }

  /** forward sends a signal to the current generation; SIGTERM and SIGINT also mean the supervisor stops. */
  forward(sig: NodeJS.Signals): boolean {
    if (sig === 'SIGTERM' || sig === 'SIGINT') {
      this.stopping = true;
      if (this.restartTimer) {
        clearTimeout(this.restartTimer);
        this.restartTimer = null;
        this.log(`${sig}: not restarting`);
        void this.conclude(true);
        return false;
      }
    }
    if (!this.generations.has(this.current)) {
      this.log(`${sig}: no generation running to forward it to`);
      return false;
    }
    this.log(`${sig}: forwarding to pid ${this.current}`, { event: 'supervisor.signal', signal: sig, appPid: this.current });
    try {
      process.kill(this.current, sig);
      return true;
    } catch {
      return false;
    }
  }

  /** statusOf waits a little for how pid ended: libuv, a reap or a report may tell it. */
  private async statusOf(pid: number): Promise<ExitStatus | null> {
    for (let i = 0; i < 100; i++) {
      this.notifySocket?.drain();
      this.sweep();
      const s = this.spawned.has(pid) ? undefined : this.statuses.get(pid); // libuv's child: its exit event tells
      if (s) return s;
      await new Promise((r) => setTimeout(r, 10));
    }
    return null;
  }

  /**
   * conclude: no generation is left. Restart when the policy says so, else
   * end what was left behind and resolve `exited` with the current
   * generation's exit code.
   */
  private async conclude(startFailed: boolean): Promise<void> {
    if (this.concluding || this.finished) return;
    this.concluding = true;
    try {
      if (!startFailed) {
        const pid = this.current;
        const status = await this.statusOf(pid);
        if (this.generations.has(this.current)) return; // someone took over meanwhile
        if (status) this.log(`the current generation (pid ${pid}) ${describeStatus(status)}; no generation is left`, { event: 'supervisor.exit', appPid: pid, code: exitCodeOf(status) });
        else this.log(`the current generation (pid ${pid}) ended, and how is unknown (its parent reaped it): exiting with 1`);
        this.lastExit = status ?? { code: 1, signal: null };
      }
      const failed = exitCodeOf(this.lastExit ?? { code: 1, signal: null }) !== 0;
      const policy = this.options.restart ?? 'no';
      const limit = this.options.maxRestarts ?? Infinity;
      if (!this.stopping && !startFailed && (policy === 'always' || (policy === 'on-failure' && failed)) && this.restarts < limit) {
        this.restarts++;
        const delay = this.options.restartDelay ?? 1000;
        this.log(`restarting in ${delay} ms (restart ${this.restarts}${Number.isFinite(limit) ? ` of ${limit}` : ''})`, { event: 'supervisor.restart' });
        this.isReady = false;
        this.restartTimer = setTimeout(() => this.spawn(), delay);
        return;
      }
      await this.endLeftovers();
      this.finish(exitCodeOf(this.lastExit ?? { code: 1, signal: null }));
    } finally {
      this.concluding = false;
    }
  }

  /** endLeftovers: children still alive at the end (not generations) get SIGTERM, then SIGKILL. */
  private async endLeftovers(): Promise<void> {
    const alive = () => {
      this.sweep();
      return childrenOf(process.pid).filter((c) => c.state !== 'Z');
    };
    let left = alive();
    if (left.length === 0) return;
    this.log(`ending ${left.length} process(es) left behind: ${left.map((c) => c.pid).join(', ')}`, { event: 'supervisor.leftovers' });
    for (const c of left) this.kill(c.pid, 'SIGTERM');
    const deadline = Date.now() + (this.options.killTimeout ?? 10_000);
    while ((left = alive()).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const c of left) this.kill(c.pid, 'SIGKILL');
    while (alive().some((c) => left.some((l) => l.pid === c.pid))) await new Promise((r) => setTimeout(r, 10));
  }

  private kill(pid: number, sig: NodeJS.Signals): void {
    try {
      process.kill(pid, sig);
    } catch {
      // gone already
    }
  }

  private finish(code: number): void {
    if (this.finished) return;
    this.finished = true;
    for (const [sig, handler] of this.handlers) process.off(sig, handler);
    this.handlers.clear();
    for (const g of this.generations.values()) {
      g.poller?.close();
      if (g.timer) clearInterval(g.timer);
      if (g.pidfd >= 0) addon.close(g.pidfd);
    }
    this.generations.clear();
    if (running === this) running = null;
    this.controlServer?.close(true);
    this.notifySocket?.close();
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.emit('exit', code);
    this.resolveExit(code);
  }
}
