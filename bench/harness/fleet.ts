/**
 * ExampleFleet: the example server (dist/example/server.js) run as real child
 * processes, every generation followed through its stdout ("pid N (generation
 * G) serving on ...") and the JSON lines the old instance writes on stderr
 * (GRACEFUL_JSON_LOG=1); redeployed with SIGHUP and ended with SIGTERM, only
 * ever signalling pids it saw start. Shared by the demo and the benchmarks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
export { freePort } from '../../test/helpers.js';

/** The compiled example server: dist/example/server.js, from dist/bench/harness/. */
export const EXAMPLE_SERVER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../example/server.js');
export const HOST = '127.0.0.1';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** alive tells whether pid is a running process (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
}

/** waitGone resolves with true once pid is gone, false at the timeout. */
export async function waitGone(pid: number, timeoutMs: number, pollMs = 2): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (alive(pid)) {
    if (performance.now() > deadline) return false;
    await sleep(pollMs);
  }
  return true;
}
/** One JSON log line of the old instance about a redeploy step. */
export interface StepEvent {
  event: 'redeploy.spawned' | 'redeploy.ready' | 'redeploy.draining' | 'redeploy.done' | 'redeploy.failed';
  /** ms since the old instance got the trigger (its clock). */
  ms: number;
  /** The old instance. */
  pid: number;
  newPid?: number;
  connections?: number;
  forced?: number;
  code?: string;
  msg?: string;
}

/** What one redeploy did, from the old instance's log and from outside. */
export interface RedeployRecord {
  oldPid: number;
  newPid?: number;
  /** Step times from the old instance's log, ms since it got SIGHUP. */
  spawnedMs?: number;
  readyMs?: number;
  drainingMs?: number;
  doneMs?: number;
  /** Connections open on the old instance when it started draining, and how many it had to destroy. */
  connections?: number;
  forced?: number;
  /** Seen from here: ms from sending SIGHUP to the old pid being gone. */
  oldExitedMs?: number;
  failed?: string;
}

export interface FleetOptions {
  port: number;
  /**
   * A private directory: the example runs in it, and its log file (app.log)
   * and control socket (app.sock) are made there.
   */
  dir: string;
  pidFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Copy the example's plain stderr lines (not the JSON step lines) to ours. */
  echoStderr?: boolean;
}

/**
 * ExampleFleet: the example server and every generation that replaces it.
 * Generation 1 is our child; later ones are children of their predecessor
 * and write to the same stdout and stderr pipes (inherited, then handed over).
 */
export class ExampleFleet extends EventEmitter {
  /** Every pid of the example that ever said it serves. */
  readonly pids = new Set<number>();
  /** The pid that serves now (the newest ready one). */
  current = 0;
  readonly events: StepEvent[] = [];
  /** stderr lines that are not step events: warnings and errors of the example. */
  readonly otherStderr: string[] = [];
  readonly child: ChildProcess;
  /** ms from spawning generation 1 to its "serving on" line. */
  startupMs = NaN;

  private constructor(readonly options: FleetOptions) {
    super();
    const spawnedAt = performance.now();
    this.child = spawn(process.execPath, [EXAMPLE_SERVER], {
      cwd: options.dir,
      env: {
        ...process.env,
        // HTTP/2 on any free port unless the caller names one: the example's default, the port
        // after PORT, may be the local port of a load generator's connection (EADDRINUSE).
        H2_PORT: '0',
        ...options.env,
        PORT: String(options.port),
        HOST,
        LOG_FILE: path.join(options.dir, 'app.log'),
        GRACEFUL_SOCKET: path.join(options.dir, 'app.sock'),
        PID_FILE: options.pidFile ?? '',
        GRACEFUL_JSON_LOG: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    lines(this.child.stdout!, (line) => {
      const m = /^pid (\d+) \(generation (\d+)\) serving on/.exec(line);
      if (!m) return;
      const pid = Number(m[1]);
      if (this.pids.size === 0) this.startupMs = performance.now() - spawnedAt;
      this.pids.add(pid);
      this.emit('serving', pid, Number(m[2]));
    });
    lines(this.child.stderr!, (line) => {
      if (line.startsWith('{')) {
        try {
          const ev = JSON.parse(line) as StepEvent;
          if (typeof ev.event === 'string' && ev.event.startsWith('redeploy.')) {
            this.events.push(ev);
            this.emit('step', ev);
            return;
          }
        } catch {
          // not JSON after all: kept below
        }
      }
      this.otherStderr.push(line);
      if (options.echoStderr) process.stderr.write(`  example: ${line}\n`);
    });
  }

  /** start spawns generation 1 and resolves once it serves. */
  static async start(options: FleetOptions, timeoutMs = 10_000): Promise<ExampleFleet> {
    const fleet = new ExampleFleet(options);
    const pid = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the example did not serve within ${timeoutMs} ms; stderr: ${fleet.otherStderr.slice(-5).join(' | ')}`)), timeoutMs);
      fleet.child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the example exited (${signal ?? code}) before serving; stderr: ${fleet.otherStderr.slice(-5).join(' | ')}`));
      });
      fleet.once('serving', (p: number) => {
        clearTimeout(timer);
        resolve(p);
      });
    });
    fleet.current = pid;
    return fleet;
  }

  /**
   * redeploy sends SIGHUP to the serving pid and follows the old instance's
   * log until it is done and its process is gone (or failed, or timed out).
   * The serving pid becomes the ready event's newPid.
   */
  async redeploy(timeoutMs = 10_000): Promise<RedeployRecord> {
    const oldPid = this.current;
    const rec: RedeployRecord = { oldPid };
    const sentAt = performance.now();
    const finished = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        rec.failed ??= `no redeploy.done within ${timeoutMs} ms`;
        this.off('step', onStep);
        resolve();
      }, timeoutMs);
      const onStep = (ev: StepEvent) => {
        if (ev.pid !== oldPid) return;
        switch (ev.event) {
          case 'redeploy.spawned': rec.spawnedMs = ev.ms; rec.newPid = ev.newPid; break;
          case 'redeploy.ready': rec.readyMs = ev.ms; rec.newPid = ev.newPid; this.current = ev.newPid!; break;
          case 'redeploy.draining': rec.drainingMs = ev.ms; rec.connections = ev.connections; break;
          case 'redeploy.done': rec.doneMs = ev.ms; rec.forced = ev.forced; break;
          case 'redeploy.failed': rec.failed = `${ev.code ?? 'failed'}: ${ev.msg ?? ''}`; break;
        }
        if (ev.event === 'redeploy.done' || ev.event === 'redeploy.failed') {
          clearTimeout(timer);
          this.off('step', onStep);
          resolve();
        }
      };
      this.on('step', onStep);
    });
    process.kill(oldPid, 'SIGHUP');
    await finished;
    if (rec.doneMs !== undefined) {
      if (await waitGone(oldPid, 5_000)) rec.oldExitedMs = performance.now() - sentAt;
      else rec.failed ??= `pid ${oldPid} still running 5 s after redeploy.done`;
    }
    return rec;
  }

  /**
   * stop sends SIGTERM to the serving pid, waits for it to exit, then makes
   * sure no generation is left (SIGTERM, then SIGKILL, to pids we saw serve).
   * Resolves with the pids that had to be ended this way (should be none).
   */
  async stop(timeoutMs = 15_000): Promise<number[]> {
    const leftover: number[] = [];
    if (this.current && alive(this.current)) {
      process.kill(this.current, 'SIGTERM');
      await waitGone(this.current, timeoutMs, 10);
    }
    for (const pid of this.pids) {
      if (!alive(pid)) continue;
      leftover.push(pid);
      try {
        process.kill(pid, 'SIGTERM');
        if (!(await waitGone(pid, 3_000, 10))) process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined && alive(this.child.pid)) this.child.kill('SIGKILL');
    return leftover;
  }
}

function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) onLine(l);
  });
  stream.on('end', () => {
    if (partial) onLine(partial);
  });
}
