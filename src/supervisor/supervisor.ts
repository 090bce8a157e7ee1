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
 *
 * Its parts: the options and the restart policy (options.ts), starting the
 * command (child.ts), following each generation to its exit
 * (generations.ts), reaping and exit statuses (reaper.ts, exit-status.ts),
 * the signals (signals.ts), the sd_notify socket (notify.ts), what goes
 * upstream (upstream.ts) and what PM2 is told (pm2.ts).
 */
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { addon } from '../native.js';
import { SupervisorRunningError } from '../errors.js';
import { makeLogger, type LogFields } from '../log.js';
import type { ActivatedFd } from '../systemd.js';
import { ControlServer } from '../control/server.js';
import { NotifySocket, type NotifyMessage } from './notify.js';
import { isDescendant } from './procfs.js';
import { addSupervisorCommands } from './commands.js';
import { CONTROL_FIELD, EXIT_FIELD } from './protocol.js';
import { checkSupervisorOptions, restartDue, type SupervisorOptions } from './options.js';
import { describeStatus, exitCodeOf, parseExitReport, type ExitStatus } from './exit-status.js';
import { Reaper } from './reaper.js';
import { Generations } from './generations.js';
import { listenToSignals } from './signals.js';
import { relay } from './upstream.js';
import { linkPm2, processChannel } from './pm2.js';

// The public names of the supervisor, where the package and the CLI import them.
export { FORWARDED_SIGNALS } from './signals.js';
export { exitCodeOf, type ExitStatus } from './exit-status.js';
export type { RestartPolicy, SupervisorOptions } from './options.js';

/** The Supervisor started in this process, if any: one at a time. */
let running: Supervisor | null = null;

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
  private readonly reaper = new Reaper();
  private readonly generations: Generations;
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
  private unlistenSignals: (() => void) | null = null;
  /** Starting the command (child.ts, with node:child_process): loaded by start(), which alone needs it. */
  private childModule: typeof import('./child.js') | null = null;
  /** Sockets passed to us by socket activation, passed on to every generation. */
  private activated: ActivatedFd[] = [];
  private readonly startedAt = Date.now();
  private resolveExit!: (code: number) => void;
  /** exited resolves with the code the supervisor should exit with. */
  readonly exited: Promise<number>;

  constructor(options: SupervisorOptions) {
    super();
    checkSupervisorOptions(options);
    this.options = options;
    const log = makeLogger(options.log);
    this.log = (msg, fields) => log(`supervisor: ${msg}`, fields);
    this.generations = new Generations({ gone: (pid) => this.onGone(pid), poll: () => this.reaper.sweep(), log: this.log });
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
    const pids = this.generations.pids().filter((p) => p !== this.current);
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
    // First, so that what follows up to the control socket's listen runs in one go, as before.
    const childModule = (this.childModule ??= await import('./child.js'));
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
    this.activated = childModule.takeActivated(this.options.env ?? process.env, this.log);
    this.unlistenSignals = listenToSignals((sig) => this.forward(sig), () => this.reaper.sweep());
    const pm2 = processChannel();
    if (pm2) linkPm2(this, pm2, this.log);
    this.spawn();
  }

  private spawn(): void {
    this.restartTimer = null;
    const { commandLine, spawnCommand, startFailure } = this.childModule!;
    const command = commandLine(this.options);
    const child = spawnCommand(this.options, this.notifySocket!.path, this.activated);
    if (child.pid === undefined) {
      child.once('error', (err: NodeJS.ErrnoException) => {
        const failure = startFailure(err, command);
        this.log(failure.message, { event: 'supervisor.spawn-failed', code: err.code });
        this.lastExit = { code: failure.code, signal: null };
        void this.conclude(true);
      });
      return;
    }
    const pid = child.pid;
    this.reaper.spawnedChild(child as typeof child & { pid: number }, () => {
      if (this.generations.polled(pid)) this.generations.gone(pid); // followed without a pidfd: this is the news
    });
    this.current = pid;
    this.isReady = this.options.notify === false;
    this.control = null;
    this.generations.watch(pid);
    this.log(`started pid ${pid}: ${command}`, { event: 'supervisor.started', appPid: pid });
    this.emit('current', pid);
    if (this.isReady) relay(this.upstream, new Map([['READY', '1']]));
  }

  /** onGone: the generation pid ended (Generations released it). */
  private onGone(pid: number): void {
    // A MAINPID= sent before this exit must count first.
    this.notifySocket?.drain();
    this.reaper.sweep();
    this.emit('gone', pid);
    if (this.generations.has(this.current)) return;
    if (this.generations.size === 0) void this.conclude(false);
    else if (pid === this.current) {
      // An older generation still drains; it may serve again (take-back) and say MAINPID= for itself.
      this.log(`the current generation (pid ${pid}) ended; waiting for pid ${this.generationPids.join(', ')}`, { event: 'supervisor.current-gone', appPid: pid });
    }
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
          if (!this.generations.has(pid)) this.generations.watch(pid);
          this.log(`pid ${pid} is the current generation`, { event: 'supervisor.current', appPid: pid });
          this.emit('current', pid);
        }
      }
    }
    const control = fields.get(CONTROL_FIELD);
    if (control !== undefined && path.isAbsolute(control) && Buffer.byteLength(control) < 108) this.control = control;
    const exit = parseExitReport(fields.get(EXIT_FIELD) ?? '');
    // Only a generation reports, and only of a process we could not reap ourselves.
    if (exit && this.generations.has(sender.pid) && exit.pid !== sender.pid) this.reaper.reported(exit.pid, exit.status);
    if (fields.get('READY') === '1') {
      const first = !this.isReady;
      this.isReady = true;
      if (first) this.emit('ready', this.current);
    }
    relay(this.upstream, fields);
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
        const status = await this.reaper.statusOf(pid, () => this.notifySocket?.drain());
        if (this.generations.has(this.current)) return; // someone took over meanwhile
        if (status) this.log(`the current generation (pid ${pid}) ${describeStatus(status)}; no generation is left`, { event: 'supervisor.exit', appPid: pid, code: exitCodeOf(status) });
        else this.log(`the current generation (pid ${pid}) ended, and how is unknown (its parent reaped it): exiting with 1`);
        this.lastExit = status ?? { code: 1, signal: null };
      }
      const failed = exitCodeOf(this.lastExit ?? { code: 1, signal: null }) !== 0;
      if (!this.stopping && !startFailed && restartDue(this.options, failed, this.restarts)) {
        this.restarts++;
        const delay = this.options.restartDelay ?? 1000;
        const limit = this.options.maxRestarts ?? Infinity;
        this.log(`restarting in ${delay} ms (restart ${this.restarts}${Number.isFinite(limit) ? ` of ${limit}` : ''})`, { event: 'supervisor.restart' });
        this.isReady = false;
        this.restartTimer = setTimeout(() => this.spawn(), delay);
        return;
      }
      await this.reaper.endLeftovers(this.options.killTimeout ?? 10_000, this.log);
      this.finish(exitCodeOf(this.lastExit ?? { code: 1, signal: null }));
    } finally {
      this.concluding = false;
    }
  }

  private finish(code: number): void {
    if (this.finished) return;
    this.finished = true;
    this.unlistenSignals?.();
    this.unlistenSignals = null;
    this.generations.closeAll();
    if (running === this) running = null;
    this.controlServer?.close(true);
    this.notifySocket?.close();
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.emit('exit', code);
    this.resolveExit(code);
  }
}
