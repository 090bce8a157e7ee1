/**
 * Supervisor mode, `graceful-restart run [options] -- <command> [args...]`:
 * exit codes, signal forwarding, redeploys of orphaned generations under
 * load, reaping (as a subreaper and as PID 1 of a pid namespace), restart
 * policies, the supervisor's control socket and the relay to systemd.
 * Real processes, real sockets, real signals; traffic goes to 127.0.0.1 only.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ControlClient, ControlReplyError } from '../../src/control/client.js';
import { sendDatagram } from '../../src/datagram.js';
import { fixtures, gone, httpGet, openFds, root, spawnChild, tmpDir, until, type Child, freePort } from '../helpers.js';
import { LoadLoop } from '../load.js';

const cli = path.join(root, 'bin/graceful-restart.js');
const appJs = path.join(fixtures, 'app.js');
const plainJs = path.join(fixtures, 'sup-plain.js');
const node = process.execPath;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Processes: /proc scans, exits, the CLI.

interface ProcStat {
  pid: number;
  ppid: number;
  state: string;
  session: number;
}

/** procStat reads /proc/<pid>/stat; null when the pid does not exist (any more). */
function procStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "pid (comm) S ppid pgrp session ...": comm may hold spaces and parentheses.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pid, state: rest[0]!, ppid: Number(rest[1]), session: Number(rest[3]) };
}

function allProcs(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = procStat(Number(name));
    if (s) out.push(s);
  }
  return out;
}

function childrenOf(pid: number): ProcStat[] {
  return allProcs().filter((p) => p.ppid === pid);
}

/** descendantsOf: every process below pid, children first. */
function descendantsOf(pid: number): number[] {
  const procs = allProcs();
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const c of procs) {
      if (c.ppid === p && !out.includes(c.pid)) {
        out.push(c.pid);
        queue.push(c.pid);
      }
    }
  }
  return out;
}

/** zombieChildren: the children of pid that exited and were not reaped. */
function zombieChildren(pid: number): number[] {
  return childrenOf(pid).filter((p) => p.state === 'Z').map((p) => p.pid);
}

/** present: the pid is in /proc at all (alive, or a zombie not yet reaped). */
function present(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`);
}

/** nsPid: the pid of a process inside its innermost pid namespace (the last NSpid field). */
function nsPid(pid: number): number | null {
  try {
    const m = /^NSpid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]!.trim().split(/\s+/).pop()) : null;
  } catch {
    return null;
  }
}

function environOf(pid: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

/** fdTargets: fd -> readlink target (socket:[inode], pipe:[inode], /dev/null, anon_inode:...). */
function fdTargets(pid: number): Map<number, string> {
  const out = new Map<number, string>();
  for (const fd of openFds(pid)) {
    try {
      out.set(fd, fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** exitOf resolves when the process exited (not waiting for its stdout to close); rejects after timeoutMs. */
function exitOf(c: Child, timeoutMs = 30_000): Promise<Exit> {
  const now = (): Exit => ({ code: c.proc.exitCode, signal: c.proc.signalCode as NodeJS.Signals | null });
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return Promise.resolve(now());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pid ${c.pid} did not exit within ${timeoutMs} ms; stdout: ${c.stdout.join(' | ')}; stderr: ${c.stderr.join(' | ')}`)), timeoutMs);
    c.proc.once('exit', () => {
      clearTimeout(timer);
      resolve(now());
    });
  });
}

/** closed: the process exited and every holder of its stdout closed it (all its output is in c.stdout). */
async function closed(c: Child, timeoutMs = 20_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    c.exited,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the output of pid ${c.pid} was not closed within ${timeoutMs} ms (a process holding it is left)`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** graceful runs the CLI (bounded: SIGKILLed after 30 s) and resolves with its exit code and output. */
function graceful(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(node, [cli, ...args], { timeout: 30_000, killSignal: 'SIGKILL', env }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: unknown; signal?: string }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, stdout, stderr: e && typeof e.code !== 'number' ? `${stderr}\n${e.message}` : stderr });
    });
  });
}


// ---------------------------------------------------------------------------
// The supervisor and its control socket.

interface Ready {
  pid: number;
  port: number;
  generation: number;
}

/** parseReady reads the app fixture's "ready <pid> <port> <generation> <runlevel>" line. */
function parseReady(line: string): Ready {
  const [, pid, port, generation] = line.split(' ').map(Number);
  return { pid: pid!, port: port!, generation: generation! };
}

interface SupStatus {
  supervisor: number;
  pid: number;
  generations: number[];
  ready: boolean;
  restarts: number;
  runlevel?: number;
  generation?: number;
  connections?: number;
  appControl?: string | null;
}

/** request sends one JSON-mode command to a control socket and resolves with its result. */
async function request(sock: string, cmd: string, args: string[] = []): Promise<unknown> {
  const c = await ControlClient.connect(sock, 5_000);
  try {
    return await c.request(cmd, args, undefined, 15_000);
  } finally {
    c.close();
  }
}

async function status(sock: string): Promise<SupStatus> {
  return (await request(sock, 'status')) as SupStatus;
}

/** waitStatus polls the supervisor's status until pred holds (the socket may not exist yet). */
async function waitStatus(sock: string, pred: (s: SupStatus) => boolean, what: string, timeoutMs = 20_000): Promise<SupStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = 'no answer yet';
  for (;;) {
    try {
      const s = await status(sock);
      if (pred(s)) return s;
      last = s;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(last)}`);
    await sleep(100);
  }
}

/** isFinal: the last line of a reply, plain (ok, error: ...) or JSON ({"ok": ...}). */
function isFinal(line: string): boolean {
  if (line === 'ok' || line.startsWith('error: ')) return true;
  if (!line.startsWith('{')) return false;
  try {
    return 'ok' in (JSON.parse(line) as object);
  } catch {
    return false;
  }
}

/**
 * rawLines sends one line to a control socket on a fresh connection (as `nc -U`
 * would), plain or JSON, and resolves with the reply up to its final line.
 */
function rawLines(sock: string, line: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let buf = '';
    const s = net.createConnection(sock, () => s.write(`${line}\n`));
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no plain reply to ${JSON.stringify(line)} within 15 s; got ${JSON.stringify(lines)}`));
    }, 15_000);
    s.setEncoding('utf8');
    s.on('data', (c: string) => {
      buf += c;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(l);
        if (isFinal(l)) {
          clearTimeout(timer);
          s.destroy();
          resolve(lines);
          return;
        }
      }
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

describe('supervisor (graceful-restart run)', function () {
  this.timeout(60_000);

  /** Every process tree this test started; namespaced ones print pids that mean nothing out here. */
  const started: { child: Child; namespaced: boolean }[] = [];

  function spawnTracked(command: string, args: string[], env: NodeJS.ProcessEnv = {}, opts: { namespaced?: boolean; detached?: boolean } = {}): Child {
    const child = spawnChild(command, args, { env: { ...process.env, ...env }, detached: opts.detached ?? false });
    started.push({ child, namespaced: opts.namespaced ?? false });
    return child;
  }

  /** supervise starts `graceful-restart run <runArgs> -- <command>`. */
  function supervise(runArgs: string[], command: string[], env: NodeJS.ProcessEnv = {}, opts: { detached?: boolean } = {}): Child {
    return spawnTracked(node, [cli, 'run', ...runArgs, '--', ...command], env, opts);
  }

  afterEach(async () => {
    // End what this test started, by pid: the processes below each one, the
    // pids its output announced (they may have left the tree), then itself.
    for (const { child, namespaced } of started.splice(0)) {
      const pids = new Set(descendantsOf(child.pid));
      if (!namespaced) {
        for (const line of child.stdout) {
          const m = /^(?:ready|started|orphan) (\d+)/.exec(line);
          const pid = m ? Number(m[1]) : 0;
          if (pid > 0 && present(pid) && /sup-plain|app\.js|sleep/.test(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '))) pids.add(pid);
        }
      }
      for (const pid of [...pids, child.pid]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await closed(child, 10_000).catch((err: Error) => console.error(`cleanup: ${err.message}`));
    }
  });

  /** startApp runs the app fixture under the supervisor and waits until the supervisor calls it ready. */
  async function startApp(extraRunArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ sup: Child; sock: string; appSock: string; first: Ready }> {
    const dir = tmpDir();
    const sock = path.join(dir, 'sup.sock');
    const appSock = path.join(dir, 'app.sock');
    const port = await freePort();
    const sup = supervise(['-s', sock, ...extraRunArgs], [node, appJs], { APP_PORT: String(port), APP_SOCKET: appSock, ...env });
    const first = parseReady(await sup.next(/^ready /));
    await waitStatus(sock, (s) => s.ready && s.pid === first.pid, `the supervisor to call pid ${first.pid} ready`);
    return { sup, sock, appSock, first };
  }

  /** redeploy runs `graceful-restart <sup.sock>` (must exit 0) and waits for the next generation's ready line and status. */
  async function redeploy(sup: Child, sock: string, generation: number): Promise<Ready> {
    const r = await graceful([sock]);
    expect(r.code, `redeploy to generation ${generation}: ${r.stderr}`).to.equal(0);
    const ready = parseReady(await sup.next(new RegExp(`^ready \\d+ \\d+ ${generation} `)));
    // The app's progress events came through the supervisor.
    expect(r.stdout).to.match(new RegExp(`^spawned pid ${ready.pid}$`, 'm'));
    expect(r.stdout).to.include(`done: pid ${ready.pid} is serving`);
    await waitStatus(sock, (s) => s.pid === ready.pid, `status to name pid ${ready.pid} after the redeploy`, 10_000);
    return ready;
  }

  // -------------------------------------------------------------------------

  it('mirrors the exit code of a plain command: 7, 137 for SIGKILL, 127 not found, 126 not executable, 2 for usage', async () => {
    const dir = tmpDir();
    const cases: [string, string[], number][] = [
      ['exit 7', ['sh', '-c', 'exit 7'], 7],
      ['killed by SIGKILL', ['sh', '-c', 'kill -KILL $$'], 137],
      ['missing program', ['gr-no-such-program-4242'], 127],
    ];
    const notExec = path.join(dir, 'not-executable');
    fs.writeFileSync(notExec, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    cases.push(['not executable', [notExec], 126]);
    for (const [what, command, code] of cases) {
      const sup = supervise([], command);
      expect(await exitOf(sup), what).to.deep.equal({ code, signal: null });
      if (code >= 126) {
        await closed(sup);
        expect(sup.stderr.join('\n'), `${what}: a message on stderr`).to.include(path.basename(command[0]!));
      }
    }

    // No command: usage.
    for (const args of [['run'], ['run', '--']]) {
      const r = await graceful(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(2);
      expect(r.stderr.trim(), `${args.join(' ')}: a message`).to.not.equal('');
    }

    // Bad option values: usage, and the command never runs.
    const marker = path.join(dir, 'ran');
    for (const bad of [['--restart', 'sometimes'], ['--restart-delay', '-5'], ['--max-restarts', 'lots'], ['--kill-timeout', 'soon']]) {
      const r = await graceful(['run', ...bad, '--', 'sh', '-c', `touch ${marker}`]);
      expect(r.code, `${bad.join(' ')}: ${r.stderr}`).to.equal(2);
      expect(r.stderr.trim(), `${bad.join(' ')}: a message`).to.not.equal('');
      expect(fs.existsSync(marker), `${bad.join(' ')}: the command did not run`).to.equal(false);
    }
  });

  it('forwards SIGHUP, SIGUSR1, SIGUSR2 and a Ctrl-C once each to a plain app in its own session, which holds none of its descriptors; SIGTERM ends all with 0', async () => {
    // The same script alone, for the descriptors node itself opens.
    const alone = spawnTracked(node, [plainJs]);
    const alonePid = Number((await alone.next(/^started /)).split(' ')[1]);
    const aloneFds = openFds(alonePid);
    alone.kill('SIGTERM');
    expect(await exitOf(alone)).to.deep.equal({ code: 0, signal: null });

    const dir = tmpDir();
    const sock = path.join(dir, 'sup.sock');
    // detached: the supervisor leads its own process group, as a shell's foreground job does.
    const sup = supervise(['-s', sock], [node, plainJs], {}, { detached: true });
    const appPid = Number((await sup.next(/^started /)).split(' ')[1]);
    expect(procStat(appPid)?.ppid, 'the app is the supervisor\'s child').to.equal(sup.pid);
    expect(procStat(appPid)?.session, 'the app leads its own session').to.equal(appPid);
    const env = environOf(appPid);
    expect(env.GRACEFUL_SUPERVISOR).to.equal(String(sup.pid));
    expect(env.NOTIFY_SOCKET, 'NOTIFY_SOCKET').to.be.a('string').and.not.equal('');
    await waitStatus(sock, (s) => s.pid === appPid, 'the control socket');

    // Descriptors: what node opens anyway, and none of the supervisor's sockets.
    const appFds = fdTargets(appPid);
    const supSockets = new Set([...fdTargets(sup.pid)].filter(([fd, t]) => fd > 2 && t.startsWith('socket:')).map(([, t]) => t));
    expect(supSockets.size, 'the supervisor holds sockets of its own (notify, control)').to.be.greaterThan(0);
    const leaked = [...appFds].filter(([fd, t]) => fd > 2 && supSockets.has(t)).map(([fd, t]) => `${fd} -> ${t}`);
    expect(leaked, 'supervisor sockets open in the app').to.deep.equal([]);
    expect([...appFds.keys()], `descriptors of the app: ${JSON.stringify([...appFds])}`).to.deep.equal(aloneFds);

    for (const sig of ['SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const) {
      process.kill(sup.pid, sig);
      await sup.next(new RegExp(`^got ${sig} ${appPid}$`), 10_000);
    }
    // Ctrl-C on a terminal: SIGINT to the foreground process group, which holds the supervisor only.
    process.kill(-sup.pid, 'SIGINT');
    await sup.next(new RegExp(`^got SIGINT ${appPid}$`), 10_000);
    expect(present(sup.pid), 'the supervisor outlives the forwarded signals').to.equal(true);

    process.kill(sup.pid, 'SIGTERM');
    expect(await exitOf(sup)).to.deep.equal({ code: 0, signal: null });
    await closed(sup);
    for (const sig of ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGINT', 'SIGTERM']) {
      const word = sig === 'SIGTERM' ? 'term' : `got ${sig}`;
      expect(sup.stdout.filter((l) => l === `${word} ${appPid}`), `${sig} seen once`).to.have.length(1);
    }
    expect(gone(appPid)).to.equal(true);
  });

  it('10 redeploys through the supervisor socket under load: zero failed requests, status follows each new pid, no zombie left', async () => {
    const { sup, sock, first } = await startApp();
    const load = new LoadLoop(first.port, 2, 2);
    try {
      await until(() => load.result.requests > 20, 10_000, 'some load');
      const gens = [first];
      for (let g = 2; g <= 11; g++) {
        const ready = await redeploy(sup, sock, g);
        expect(ready.port).to.equal(first.port);
        gens.push(ready);
        const s = await status(sock);
        expect(s.supervisor, 'the supervisor pid').to.equal(sup.pid);
        expect(s.generations).to.include(ready.pid);
        expect(present(sup.pid) && sup.proc.exitCode === null, 'the supervisor runs').to.equal(true);
        // Generation 3 on was spawned by an instance that has exited: it is an orphan the supervisor adopted.
        if (g >= 3) expect(procStat(ready.pid)?.ppid, `generation ${g}`).to.be.oneOf([sup.pid, gens[g - 2]!.pid]);
      }
      const before = load.result.requests;
      await until(() => load.result.requests > before + 50, 10_000, 'load on the last generation');
      const result = await load.stop();
      expect(result.errors, result.errors.slice(0, 5).join('\n')).to.deep.equal([]);

      const last = gens.at(-1)!;
      expect(new Set(gens.map((g) => g.pid)).size).to.equal(11);
      // Every old generation exits and is reaped: not even a zombie is left in /proc.
      await until(() => gens.slice(0, -1).every((g) => !present(g.pid)), 30_000, 'old generations to exit and be reaped')
        .catch((err: Error) => {
          throw new Error(`${err.message}: ${gens.slice(0, -1).filter((g) => present(g.pid)).map((g) => `${g.pid} ${JSON.stringify(procStat(g.pid))}`).join(', ')}`);
        });
      await until(() => zombieChildren(sup.pid).length === 0, 5_000, 'no zombie child of the supervisor');
      expect(procStat(last.pid)?.ppid, 'the last generation, an orphan, belongs to the supervisor').to.equal(sup.pid);
      const s = await waitStatus(sock, (x) => x.generations.length === 1, 'one generation left');
      expect(s).to.deep.include({ supervisor: sup.pid, pid: last.pid, ready: true, generations: [last.pid] });
    } finally {
      await load.stop();
    }
  });

  it('health probes (status) all the way through 5 redeploys: every one answers ready, every redeploy succeeds', async () => {
    const { sup, sock } = await startApp();
    // A container HEALTHCHECK asking without pause; each probe is its own connection, as the CLI's is.
    const bad: string[] = [];
    let probes = 0;
    let probing = true;
    const prober = (async () => {
      while (probing) {
        try {
          const final = JSON.parse((await rawLines(sock, '{"cmd":"status"}')).at(-1)!) as { ok: boolean; result?: SupStatus; error?: unknown };
          probes++;
          // What `graceful-restart health` asks: ready, and runlevel 3 when the app reports one.
          if (!final.ok || !final.result?.ready || (final.result.runlevel !== undefined && final.result.runlevel !== 3)) bad.push(JSON.stringify(final));
        } catch (err) {
          bad.push((err as Error).message);
        }
      }
    })();
    try {
      await until(() => probes > 10, 10_000, 'some probes');
      for (let g = 2; g <= 6; g++) await redeploy(sup, sock, g);
    } finally {
      probing = false;
      await prober;
    }
    expect(bad, `${bad.length} of ${probes} probes unhealthy`).to.deep.equal([]);
  });

  it('a SIGTERM after redeploys (docker stop) halts the app gracefully: in-flight request answered, exit 0, no process left', async () => {
    const { sup, sock, appSock, first } = await startApp();
    const gens = [first, await redeploy(sup, sock, 2), await redeploy(sup, sock, 3)];
    const current = gens.at(-1)!;
    await until(() => gens.slice(0, -1).every((g) => gone(g.pid)), 30_000, 'old generations to exit');

    // A slow request in flight when the stop comes.
    const slow = httpGet({ port: first.port, path: '/slow?ms=1500' });
    await until(async () => ((await request(appSock, 'status')) as { connections: number }).connections >= 1, 10_000, 'the slow request to be accepted');
    process.kill(sup.pid, 'SIGTERM');
    expect(await slow, 'the in-flight request').to.deep.equal({ status: 200, body: String(current.pid) });
    expect(await exitOf(sup)).to.deep.equal({ code: 0, signal: null });
    const pids = sup.stdout.filter((l) => l.startsWith('ready ')).map((l) => parseReady(l).pid);
    expect(pids).to.have.length(3);
    expect(pids.filter((p) => !gone(p)), 'app processes left').to.deep.equal([]);
    await closed(sup);
  });

  it('a SIGTERM while an old generation still drains: the supervisor waits for it, then exits 0 with no process left', async () => {
    const { sup, sock, appSock, first } = await startApp([], { APP_SHUTDOWN_TIMEOUT: '10000' });
    // A slow request keeps generation 1 draining after the redeploy.
    const slow = httpGet({ port: first.port, path: '/slow?ms=3000' });
    await until(async () => ((await request(appSock, 'status')) as { connections: number }).connections >= 1, 10_000, 'the slow request to be accepted');
    const second = await redeploy(sup, sock, 2);
    expect(gone(first.pid), 'generation 1 still drains').to.equal(false);
    process.kill(sup.pid, 'SIGTERM');
    expect(await slow, 'the request generation 1 drained').to.deep.equal({ status: 200, body: String(first.pid) });
    const exit = await exitOf(sup, 30_000);
    expect(exit).to.deep.equal({ code: 0, signal: null });
    expect([first.pid, second.pid].filter((p) => !gone(p)), 'app processes left').to.deep.equal([]);
    await closed(sup);
  });

  it('a redeploy whose new instance dies right after ready fails through the supervisor too (what systemctl reload runs): exit 1, the reason, the old pid current', async () => {
    const failFile = path.join(tmpDir(), 'fail');
    const { sup, sock, first } = await startApp([], { APP_FAIL_FILE: failFile });
    fs.writeFileSync(failFile, 'kill-after-ready');
    const r = await graceful([sock]);
    expect(r.code, r.stdout + r.stderr).to.equal(1);
    expect(r.stdout).not.to.include('is serving');
    expect(r.stderr).to.match(/error: the new instance \(pid \d+\) was killed by SIGKILL \d+ ms into the redeploy, after it was ready but within the take-back window/);
    await sup.next(new RegExp(`^takeback ${first.pid} from \\d+$`));
    await waitStatus(sock, (s) => s.ready && s.pid === first.pid, `status to name pid ${first.pid} again`, 10_000);
  });

  it('a crash outside any redeploy: SIGKILL of an adopted generation exits 137; an app exiting 3 on its own exits 3', async () => {
    const { sup, sock, first } = await startApp();
    const second = await redeploy(sup, sock, 2);
    // Let generation 1 finish (while it drains, it would take the service back if generation 2 died).
    await until(() => !present(first.pid), 30_000, 'generation 1 to exit and be reaped');
    expect(procStat(second.pid)?.ppid, 'generation 2 was adopted by the supervisor').to.equal(sup.pid);
    process.kill(second.pid, 'SIGKILL');
    expect(await exitOf(sup)).to.deep.equal({ code: 137, signal: null });

    const plain = supervise(['--no-notify'], [node, plainJs], { SUP_EXIT_AFTER_MS: '300', SUP_EXIT_CODE: '3' });
    const pid = Number((await plain.next(/^started /)).split(' ')[1]);
    expect(await exitOf(plain)).to.deep.equal({ code: 3, signal: null });
    await closed(plain);
    expect(plain.stdout).to.include(`exiting ${pid} 3`);
  });

  it('reaps an orphaned grandchild that exits after its parent (subreaper)', async () => {
    const sup = supervise(['--no-notify'], [node, plainJs], { SUP_ORPHAN_MS: '2000' });
    const orphan = Number((await sup.next(/^orphan /)).split(' ')[1]);
    expect(orphan).to.be.greaterThan(0);
    // Its shell has exited: the sleep now belongs to the supervisor, not to init.
    expect(procStat(orphan)?.ppid, 'the orphan\'s parent').to.equal(sup.pid);
    await until(() => !present(orphan), 15_000, `the orphan ${orphan} to exit and be reaped`)
      .catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(procStat(orphan))}`);
      });
    expect(zombieChildren(sup.pid)).to.deep.equal([]);
    expect(sup.proc.exitCode, 'the supervisor still runs the app').to.equal(null);
    process.kill(sup.pid, 'SIGTERM');
    expect(await exitOf(sup)).to.deep.equal({ code: 0, signal: null });
  });

  it('--restart on-failure starts the command again after a failure, and SIGTERM then ends all with 0', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'sup.sock');
    const marker = path.join(dir, 'failed-once');
    const sup = supervise(['-s', sock, '--no-notify', '--restart', 'on-failure', '--restart-delay', '100'], [node, plainJs], { SUP_FAIL_ONCE: marker });
    const firstPid = Number((await sup.next(/^failing /)).split(' ')[1]);
    const secondPid = Number((await sup.next(/^started /)).split(' ')[1]);
    expect(secondPid).to.not.equal(firstPid);
    const s = await waitStatus(sock, (x) => x.pid === secondPid, `status to name pid ${secondPid}`);
    expect(s).to.deep.include({ supervisor: sup.pid, restarts: 1, generations: [secondPid] });
    expect(gone(firstPid)).to.equal(true);

    process.kill(sup.pid, 'SIGTERM');
    expect(await exitOf(sup)).to.deep.equal({ code: 0, signal: null });
    await closed(sup);
    expect(sup.stdout.filter((l) => l.startsWith('started ')), 'no start after the stop').to.have.length(2);
    expect(sup.stdout).to.include(`term ${secondPid}`);
  });

  it('--restart on-failure does not restart when the supervisor was asked to stop, even if the app then exits 1', async () => {
    const sup = supervise(['--no-notify', '--restart', 'on-failure', '--restart-delay', '100'], [node, plainJs], { SUP_TERM_CODE: '1' });
    const pid = Number((await sup.next(/^started /)).split(' ')[1]);
    process.kill(sup.pid, 'SIGTERM');
    expect(await exitOf(sup)).to.deep.equal({ code: 1, signal: null });
    await closed(sup);
    expect(sup.stdout.filter((l) => l.startsWith('started '))).to.deep.equal([`started ${pid}`]);
  });

  it('--restart always with --max-restarts 2 runs the command 3 times, then exits with its code', async () => {
    const sup = supervise(['--no-notify', '--restart', 'always', '--restart-delay', '50', '--max-restarts', '2'], ['sh', '-c', 'echo run $$; exit 5']);
    expect(await exitOf(sup)).to.deep.equal({ code: 5, signal: null });
    await closed(sup);
    expect(sup.stdout.filter((l) => l.startsWith('run ')), sup.stdout.join(' | ')).to.have.length(3);
  });

  it('its control socket forwards app commands, merges the app status, sends signals, and answers health', async () => {
    const { sup, sock, first } = await startApp();
    const env = environOf(first.pid);
    expect(env.GRACEFUL_SUPERVISOR).to.equal(String(sup.pid));
    expect(env.NOTIFY_SOCKET, 'NOTIFY_SOCKET').to.be.a('string').and.not.equal('');

    const hello = await graceful(['-s', sock, 'hello', 'world']);
    expect(hello, hello.stderr).to.deep.include({ code: 0, stdout: `hello world from ${first.pid}\n` });
    expect(await rawLines(sock, 'hello plain'), 'plain mode').to.deep.equal([`hello plain from ${first.pid}`, 'ok']);

    const s = await status(sock);
    expect(s).to.deep.include({ supervisor: sup.pid, pid: first.pid, generations: [first.pid], ready: true, restarts: 0, runlevel: 3, generation: 1 });
    expect(await graceful(['health', sock])).to.deep.include({ code: 0 });

    const help = await graceful(['-s', sock, 'help']);
    expect(help.code, help.stderr).to.equal(0);
    for (const cmd of ['status', 'redeploy', 'signal', 'help']) expect(help.stdout, cmd).to.match(new RegExp(`^${cmd}\\b`, 'm'));

    // signal: the fixture app switches runlevel on SIGUSR1 / SIGUSR2.
    expect((await graceful(['-s', sock, 'signal', 'SIGUSR1'])).code).to.equal(0);
    await sup.next(new RegExp(`^runlevel 1 ${first.pid}$`), 10_000);
    expect((await graceful(['-s', sock, 'signal', 'SIGUSR2'])).code).to.equal(0);
    await sup.next(new RegExp(`^runlevel 3 ${first.pid}$`), 10_000);
    expect((await graceful(['-s', sock, 'signal', 'SIGNOPE'])).code, 'an unknown signal').to.not.equal(0);

    // An unknown command goes to the app, whose refusal comes back: usage, exit 2.
    const unknown = await graceful(['-s', sock, 'frobnicate']);
    expect(unknown.code, unknown.stderr).to.equal(2);
    expect(unknown.stderr).to.include('frobnicate');
    expect(present(first.pid) && present(sup.pid)).to.equal(true);
  });

  it('ignores bad notify datagrams: garbage, MAINPID= of no descendant or not a pid, oversized; keeps its current generation', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'sup.sock');
    const sup = supervise(['-s', sock, '--no-notify'], [node, plainJs]);
    const pid = Number((await sup.next(/^started /)).split(' ')[1]);
    const notifySocket = environOf(pid).NOTIFY_SOCKET!;
    expect(notifySocket, 'the app was given a notify socket').to.be.a('string');
    const before = new Set(fs.readdirSync('/proc/self/fd'));
    const bad = [
      Buffer.from([0, 255, 10, 61, 0, 1]),
      Buffer.from('MAINPID=abc\nREADY=1'),
      Buffer.from('MAINPID=1'),
      Buffer.from(`MAINPID=${process.pid}`), // alive, but not its descendant
      Buffer.from(`MAINPID=${sup.pid}`),
      Buffer.from(`X_GRACEFUL_CONTROL=relative/path.sock\nX_GRACEFUL_EXIT=${pid} 99`),
      Buffer.alloc(10_000, 'A'),
    ];
    // Datagrams are read in order: once the last, valid one shows, every bad one before it was read.
    const marker = path.join(dir, 'marker.sock');
    for (const b of [...bad, Buffer.from(`X_GRACEFUL_CONTROL=${marker}`)]) sendDatagram(notifySocket, b);
    const s = await waitStatus(sock, (x) => x.appControl === marker, 'the last datagram to be read');
    expect(s).to.deep.include({ pid, generations: [pid], ready: true });
    expect(sup.proc.exitCode, 'still running').to.equal(null);
    expect(present(pid)).to.equal(true);
    expect(new Set(fs.readdirSync('/proc/self/fd')), 'the sender leaked nothing').to.deep.equal(before);
    process.kill(sup.pid, 'SIGTERM');
    expect((await exitOf(sup)).code, 'the app\'s own exit code, not the 99 reported for it').to.equal(0);
  });

  it('with a plain app: signal and health work, redeploy is refused (no app control socket)', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'sup.sock');
    const sup = supervise(['-s', sock, '--no-notify'], [node, plainJs]);
    const pid = Number((await sup.next(/^started /)).split(' ')[1]);
    // --no-notify: ready once started.
    const s = await waitStatus(sock, (x) => x.pid === pid && x.ready, 'the plain app to count as ready');
    expect(s).to.deep.include({ supervisor: sup.pid, generations: [pid], restarts: 0 });
    expect(await graceful(['health', sock])).to.deep.include({ code: 0 });

    const sig = await graceful(['-s', sock, 'signal', 'SIGUSR1']);
    expect(sig.code, sig.stderr).to.equal(0);
    await sup.next(new RegExp(`^got SIGUSR1 ${pid}$`), 10_000);

    for (const args of [['-s', sock, 'redeploy'], [sock]]) {
      const r = await graceful(args);
      expect(r.code, `${args.join(' ')}: ${r.stdout}`).to.equal(1);
      expect(r.stderr, args.join(' ')).to.match(/control socket/i);
    }
    const refused = await request(sock, 'redeploy').then(() => null, (err: unknown) => err);
    expect(refused).to.be.instanceOf(ControlReplyError);
    expect((refused as ControlReplyError).code).to.equal('ERR_GRACEFUL_NOT_CONFIGURED');
    expect(sup.proc.exitCode, 'still running').to.equal(null);
    expect((await status(sock)).pid).to.equal(pid);
  });

  it('runs as PID 1 of a pid namespace (unshare): redeploys under load, orphans reaped, SIGTERM exits 0', async function () {
    const why = process.getuid?.() !== 0 ? 'not root'
      : await new Promise<string | null>((resolve) => execFile('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { timeout: 10_000 }, (err) => resolve(err ? `unshare --pid --fork --mount-proc fails: ${err.message}` : null)));
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    const dir = tmpDir();
    const sock = path.join(dir, 'sup.sock');
    const port = await freePort();
    const u = spawnTracked('unshare', ['--pid', '--fork', '--mount-proc', node, cli, 'run', '-s', sock, '--', node, appJs],
      { APP_PORT: String(port), APP_SOCKET: path.join(dir, 'app.sock') }, { namespaced: true });
    const supHost = (await until(() => childrenOf(u.pid)[0], 10_000, 'the supervisor under unshare')).pid;
    expect(nsPid(supHost), 'the supervisor is PID 1 inside').to.equal(1);

    const first = parseReady(await u.next(/^ready /));
    let s = await waitStatus(sock, (x) => x.ready && x.pid === first.pid, 'the first generation to be ready');
    expect(s.supervisor, 'the supervisor\'s own pid, as it sees it').to.equal(1);

    const load = new LoadLoop(port, 2, 2);
    const gens = [first];
    try {
      await until(() => load.result.requests > 20, 10_000, 'some load');
      for (let g = 2; g <= 4; g++) gens.push(await redeploy(u, sock, g));
      const before = load.result.requests;
      await until(() => load.result.requests > before + 50, 10_000, 'load on the last generation');
      const result = await load.stop();
      expect(result.errors, result.errors.slice(0, 5).join('\n')).to.deep.equal([]);
    } finally {
      await load.stop();
    }

    // The old generations (orphans of PID 1 from generation 2 on) exit and are reaped.
    const nsPids = () => descendantsOf(supHost).map((p) => ({ host: p, ns: nsPid(p), state: procStat(p)?.state }));
    const old = gens.slice(0, -1).map((g) => g.pid);
    await until(() => !nsPids().some((p) => p.ns !== null && old.includes(p.ns)), 30_000, 'old generations to exit and be reaped')
      .catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(nsPids())}`);
      });
    await until(() => zombieChildren(supHost).length === 0, 5_000, 'no zombie child of PID 1');
    s = await status(sock);
    expect(s).to.deep.include({ supervisor: 1, pid: gens.at(-1)!.pid, generations: [gens.at(-1)!.pid] });

    process.kill(supHost, 'SIGTERM');
    expect(await exitOf(u), 'unshare passes on the supervisor\'s exit status').to.deep.equal({ code: 0, signal: null });
    expect(gone(supHost)).to.equal(true);
    await closed(u);
  });

  it('relays to systemd\'s NOTIFY_SOCKET: READY=1, RELOADING=1 then READY=1 around a redeploy, STOPPING=1; never MAINPID=', async () => {
    const dir = tmpDir();
    const notifySock = path.join(dir, 'notify.sock');
    // A test-owned notify socket; SO_PASSCRED tells who sent each datagram.
    const listener = spawnTracked('python3', ['-u', '-c', [
      'import json, socket, struct',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      's.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)',
      `s.bind(${JSON.stringify(notifySock)})`,
      'print("bound", flush=True)',
      'while True:',
      '    msg, anc, flags, addr = s.recvmsg(4096, 1024)',
      '    pid = None',
      '    for level, kind, data in anc:',
      '        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:',
      '            pid = struct.unpack("iii", data[:12])[0]',
      '    print(json.dumps({"pid": pid, "lines": msg.decode().split("\\n")}), flush=True)',
    ].join('\n')]);
    await listener.next(/^bound$/);
    const got = (): { pid: number; lines: string[] }[] => listener.stdout.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { pid: number; lines: string[] });
    const indexOf = (line: string, from: number): number => got().findIndex((d, i) => i >= from && d.lines.includes(line));

    const { sup, sock } = await startApp([], { NOTIFY_SOCKET: notifySock });
    await until(() => indexOf('READY=1', 0) >= 0, 10_000, 'READY=1');
    const ready = indexOf('READY=1', 0);

    await redeploy(sup, sock, 2);
    await until(() => indexOf('RELOADING=1', ready + 1) >= 0, 10_000, 'RELOADING=1 after READY=1');
    const reloading = indexOf('RELOADING=1', ready + 1);
    await until(() => indexOf('READY=1', reloading + 1) >= 0, 10_000, 'READY=1 after RELOADING=1');

    process.kill(sup.pid, 'SIGTERM');
    expect(await exitOf(sup)).to.deep.equal({ code: 0, signal: null });
    await until(() => indexOf('STOPPING=1', reloading + 1) >= 0, 10_000, 'STOPPING=1');

    const all = got();
    const lines = all.flatMap((d) => d.lines);
    expect(lines.filter((l) => l.startsWith('MAINPID=')), 'MAINPID= relayed').to.deep.equal([]);
    expect(lines.filter((l) => l.startsWith('X_GRACEFUL_')), 'X_GRACEFUL_* relayed').to.deep.equal([]);
    expect([...new Set(all.map((d) => d.pid))], 'senders: the supervisor only').to.deep.equal([sup.pid]);
  });
});
