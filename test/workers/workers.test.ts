import { expect } from 'chai';
import fs from 'node:fs';
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { ControlClient, ControlReplyError } from '../../src/control/client.js';
import { request } from '../load.js';
import { fixtures, gone, openFds, root, spawnChild, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

/** Counter: loops of requests, keep-alive (one agent) and fresh, counting answers by pid; every error counts. */
class Counter {
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly agent: http.Agent;
  readonly byPid = new Map<number, number>();
  readonly errors: string[] = [];
  requests = 0;

  constructor(port: number, keepAlive: number, fresh: number, private readonly limit = Infinity) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: Math.max(1, keepAlive) });
    for (let i = 0; i < keepAlive + fresh; i++) this.loops.push(this.loop(port, i < keepAlive ? this.agent : false));
  }

  private async loop(port: number, agent: http.Agent | false): Promise<void> {
    while (this.running && this.requests < this.limit) {
      try {
        const pid = Number(await request(port, '/', agent));
        this.requests++;
        this.byPid.set(pid, (this.byPid.get(pid) ?? 0) + 1);
      } catch (err) {
        this.errors.push(`${agent ? 'keep-alive' : 'fresh'}: ${(err as Error).message}`);
      }
    }
  }

  /** done: the loops reached the request limit. */
  done(): Promise<void> {
    return Promise.all(this.loops).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
  }
}

/** Service: the fixture's primary and the workers it announced, generation by generation. */
interface Service {
  child: Child;
  sock: string;
  port: number;
  primary: number;
}

async function startService(env: NodeJS.ProcessEnv = {}): Promise<Service> {
  const dir = tmpDir();
  const sock = path.join(dir, 'ctl.sock');
  const child = spawnFixture('workers', [], { env: { ...process.env, APP_SOCKET: sock, ...env } });
  const [, pid, port] = (await child.next(/^ready /)).split(' ');
  const s = { child, sock, port: Number(port), primary: Number(pid) };
  // Each worker prints its line once it told the primary, which may print first.
  await until(() => workersOf(s, 1).size === 3, 10_000, 'the lines of the 3 workers');
  return s;
}

/** workersOf: the pids each worker of generation g announced, by slot (the last one per slot). */
function workersOf(s: Service, g: number): Map<number, number> {
  const slots = new Map<number, number>();
  for (const line of s.child.stdout) {
    const m = /^worker (\d+) (\d+) (\d+)$/.exec(line);
    if (m && Number(m[3]) === g) slots.set(Number(m[1]), Number(m[2]));
  }
  return slots;
}

function allPids(s: Service): number[] {
  return s.child.stdout.flatMap((l) => {
    const m = /^(?:ready (\d+)|worker \d+ (\d+))/.exec(l);
    return m ? [Number(m[1] ?? m[2])] : [];
  });
}

/** nextWorker: the pid of the next process that announces itself in slot `slot` of generation g with a pid other than `not`. */
async function nextWorker(s: Service, slot: number, g: number, not: number): Promise<number> {
  for (;;) {
    const pid = Number((await s.child.next(new RegExp(`^worker ${slot} \\d+ ${g}$`))).split(' ')[2]);
    if (pid !== not) return pid;
  }
}

async function control(s: Service, cmd: string, args: string[] = []): Promise<unknown> {
  const c = await ControlClient.connect(s.sock, 5_000);
  try {
    return await c.request(cmd, args, undefined, 60_000);
  } finally {
    c.close();
  }
}

/** cli runs the CLI with args: its exit code and output. */
function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin/graceful-restart.js'), ...args], (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code) : 0, out: stdout.trim(), err: stderr.trim() });
    });
  });
}

interface WorkerStatus { id: number; pid: number; state: string; restarts: number; uptime: number; connections: number | null; requests: number | null; rss: number | null }

async function status(s: Service): Promise<{ pid: number; generation: number; workersReady: number; workersWanted: number; connections: number; workers: WorkerStatus[] }> {
  return (await control(s, 'status')) as never;
}

/** oldServes: after a failed redeploy, the first primary serves with all 3 workers, each answering, and nothing of generation 2 is left. */
async function oldServes(s: Service, first: number, load: Counter): Promise<void> {
  const st = (await until(async () => {
    const x = await status(s);
    return x.workersReady === 3 ? x : null;
  }, 20_000, 'the old primary serving with 3 workers'))!;
  expect(st.pid).to.equal(first);
  expect(st.generation).to.equal(1);
  await until(() => st.workers.every((w) => (load.byPid.get(w.pid) ?? 0) > 0), 15_000, 'answers from every worker of the old primary');
  const second = s.child.stdout.filter((l) => / 2$/.test(l)).map((l) => Number(l.split(' ')[l.startsWith('ready') ? 1 : 2]));
  for (const pid of second) await until(() => gone(pid), 10_000, `pid ${pid} of the failed generation to be gone`);
}

/** health runs the CLI's health probe: its exit code and output. */
function health(sock: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin/graceful-restart.js'), 'health', sock], (err, stdout) => {
      resolve({ code: err ? Number((err as { code?: number }).code) : 0, out: stdout.trim() });
    });
  });
}

/** zombies: children of pid that exited and were not reaped. */
function zombies(pid: number): number[] {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((d) => {
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = st.slice(st.lastIndexOf(')') + 2).split(' ');
      return fields[0] === 'Z' && Number(fields[1]) === pid ? [Number(d)] : [];
    } catch {
      return [];
    }
  });
}

/** childrenOf: the live processes whose parent is one of pids (zombies apart). */
function childrenOf(pids: number[]): number[] {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((d) => {
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = st.slice(st.lastIndexOf(')') + 2).split(' ');
      return fields[0] !== 'Z' && pids.includes(Number(fields[1])) ? [Number(d)] : [];
    } catch {
      return [];
    }
  });
}

/** isWorker: pid is a worker process (its primary set its slot in the environment). */
function isWorker(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').some((v) => v.startsWith('GRACEFUL_WORKER_ID='));
  } catch {
    return false;
  }
}

async function halt(s: Service | undefined): Promise<void> {
  if (!s) return;
  for (const pid of allPids(s)) {
    try {
      // Only a process of this service: a pid of one long gone may belong to another program now.
      if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('fixtures/workers.js')) continue;
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  await s.child.exited;
}

describe('workers', function () {
  this.timeout(180_000);
  let s: Service | undefined;

  afterEach(async () => {
    await halt(s);
    s = undefined;
  });

  it('runs 3 workers that each answer, and halting the primary stops every one', async () => {
    s = await startService();
    const st = await status(s);
    expect(st.workersWanted).to.equal(3);
    expect(st.workersReady).to.equal(3);
    expect(st.workers.map((w) => [w.id, w.state, w.restarts])).to.deep.equal([[0, 'ready', 0], [1, 'ready', 0], [2, 'ready', 0]]);
    const pids = [...workersOf(s, 1).values()];
    expect(st.workers.map((w) => w.pid).sort()).to.deep.equal([...pids].sort());
    expect(await health(s.sock)).to.deep.equal({ code: 0, out: `healthy: pid ${s.primary} ready in runlevel 3 with 3 workers` });
    process.kill(s.primary, 'SIGTERM');
    expect(await s.child.exited).to.deep.equal({ code: 0, signal: null });
    for (const pid of pids) expect(gone(pid), `worker ${pid} gone`).to.equal(true);
  });

  it('redeploys 20 times under keep-alive and new-connection load: 0 failed requests, every new worker answers, no old pid left', async () => {
    s = await startService();
    // A worker's descriptors before any load: what each worker of the last generation comes back to.
    const workerFds = Math.max(...[...workersOf(s, 1).values()].map((pid) => openFds(pid).length));
    const load = new Counter(s.port, 8, 4);
    const fdsByGeneration: number[] = [];
    const old: number[] = [];
    try {
      for (let g = 2; g <= 21; g++) {
        old.push(s.primary, ...workersOf(s, g - 1).values());
        const result = (await control(s, 'redeploy')) as { pid: number };
        s.primary = result.pid;
        await until(() => workersOf(s!, g).size === 3, 10_000, `the lines of generation ${g}`);
        const fresh = [...workersOf(s, g).values()];
        expect(fresh, `generation ${g} workers`).to.have.length(3);
        // Each new worker answers under the load, and every old process is gone.
        await until(() => fresh.every((pid) => (load.byPid.get(pid) ?? 0) > 0), 15_000, `answers from each worker of generation ${g}`);
        await until(() => old.every(gone), 15_000, `the processes of generation ${g - 1} to exit`);
        fdsByGeneration.push(openFds(s.primary).length);
      }
    } finally {
      await load.stop();
    }
    expect(load.errors).to.deep.equal([]);
    expect(load.requests).to.be.greaterThan(1000);
    // No descriptor leak: the last primary holds no more than the first that had a predecessor
    // (a control connection of this test may still be closing when one is counted).
    const least = Math.min(...fdsByGeneration);
    await until(() => openFds(s!.primary).length <= least, 5_000, `the primary's descriptors to fall back to ${least} (counts per generation: ${fdsByGeneration.join(' ')})`);
    expect(zombies(s.primary)).to.deep.equal([]);
    for (const pid of workersOf(s, 21).values()) {
      await until(() => openFds(pid).length <= workerFds, 10_000, `worker ${pid}'s descriptors to fall back to ${workerFds} (a generation-1 worker's)`);
    }
    const st = await status(s);
    expect(st.generation).to.equal(21);
    expect(st.workersReady).to.equal(3);
  });

  for (const [what, keepAlive, fresh] of [['30 keep-alive connections', 30, 0], ['new connections', 0, 6]] as const) {
    it(`spreads requests over 3 workers under ${what}: each between 1/3 and 3x its fair share`, async () => {
      s = await startService();
      const total = 3000;
      const load = new Counter(s.port, keepAlive, fresh, total);
      await load.done();
      await load.stop();
      expect(load.errors).to.deep.equal([]);
      const pids = [...workersOf(s, 1).values()];
      const fair = load.requests / 3;
      const shares = pids.map((pid) => load.byPid.get(pid) ?? 0);
      for (const n of shares) expect(n, `shares ${shares.join(' ')} of ${load.requests}`).to.be.within(fair / 3, fair * 3);
    });
  }

  it('restarts a SIGKILLed worker in its slot while the others serve; a crash loop stops it, and health says so', async () => {
    s = await startService();
    const before = workersOf(s, 1);
    const fds = openFds(s.primary).length;
    const victim = before.get(1)!;
    process.kill(victim, 'SIGKILL');
    // Slot 1 comes back with a new pid; the others answered meanwhile.
    const reborn = await nextWorker(s, 1, 1, victim);
    expect(reborn).to.not.equal(victim);
    await until(() => gone(victim), 5_000, 'the killed worker to be reaped');
    const others = [before.get(0)!, before.get(2)!];
    const load = new Counter(s.port, 0, 3, 600);
    await load.done();
    expect(load.errors).to.deep.equal([]);
    for (const pid of others) expect(load.byPid.get(pid) ?? 0, `worker ${pid} kept serving`).to.be.greaterThan(0);
    let st = await status(s);
    expect(st.workers[1]).to.include({ id: 1, pid: reborn, state: 'ready', restarts: 1 });
    // The dead worker's pipes and this test's control connection close as their events come.
    await until(() => openFds(s!.primary).length <= fds, 5_000, `the primary's descriptors to fall back to ${fds}`);
    expect(zombies(s.primary)).to.deep.equal([]);

    // A crash loop: slot 2 dies 5 times within 30 s.
    let pid = before.get(2)!;
    for (let i = 0; i < 5; i++) {
      process.kill(pid, 'SIGKILL');
      if (i === 4) break;
      pid = await nextWorker(s, 2, 1, pid);
    }
    st = (await until(async () => {
      const x = await status(s!);
      return x.workers[2]!.state === 'crash-loop' ? x : null;
    }, 10_000, 'slot 2 in a crash loop'))!;
    expect(st.workersReady).to.equal(2);
    expect(st.workers[2]).to.include({ state: 'crash-loop', restarts: 4 });
    const h = await health(s.sock);
    expect(h).to.deep.equal({ code: 1, out: `unhealthy: pid ${s.primary} ready with 2 of 3 workers (worker 2 crash-loop)` });
    const after = new Counter(s.port, 0, 2, 200);
    await after.done();
    expect(after.errors).to.deep.equal([]);
  });

  it('rolls back when a worker of the new generation throws in its ready hook: the error names it, the old generation serves', async () => {
    const dir = tmpDir();
    const failFile = path.join(dir, 'fail');
    s = await startService({ APP_FAIL_FILE: failFile });
    const first = [...workersOf(s, 1).values()];
    fs.writeFileSync(failFile, 'throw 1');
    const load = new Counter(s.port, 4, 2);
    let error: unknown;
    try {
      await control(s, 'redeploy');
    } catch (err) {
      error = err;
    }
    const served = new Map(load.byPid);
    await load.stop();
    expect(error).to.be.instanceOf(ControlReplyError);
    expect((error as ControlReplyError).code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
    expect((error as Error).message).to.match(/exited with code 1 before it was ready; its last words: .*worker 1 .*refuses to start on purpose/);
    expect(load.errors).to.deep.equal([]);
    // Nothing of generation 2 is left; generation 1 serves, all of it.
    const second = s.child.stdout.filter((l) => / 2$/.test(l)).map((l) => Number(l.split(' ')[l.startsWith('ready') ? 1 : 2]));
    for (const pid of second) await until(() => gone(pid), 5_000, `pid ${pid} of the failed generation to be gone`);
    expect([...served.keys()].every((pid) => first.includes(pid))).to.equal(true);
    const st = await status(s);
    expect(st.pid).to.equal(s.primary);
    expect(st.generation).to.equal(1);
    expect(st.workers.map((w) => w.pid).sort()).to.deep.equal([...first].sort());
    expect(zombies(s.primary)).to.deep.equal([]);
  });

  it('runs an application command on every worker, labelled by worker; status counts each worker\'s requests, connections and memory', async () => {
    s = await startService();
    const load = new Counter(s.port, 0, 3, 300);
    await load.done();
    await load.stop();
    expect(load.errors).to.deep.equal([]);
    const reply = (await control(s, 'requests')) as { workers: { id: number; pid: number; result?: number; error?: unknown }[] };
    expect(reply.workers.map((w) => w.id)).to.deep.equal([0, 1, 2]);
    for (const w of reply.workers) expect(w.result, `worker ${w.id}`).to.equal(load.byPid.get(w.pid) ?? 0);
    expect(reply.workers.reduce((n, w) => n + (w.result ?? 0), 0)).to.equal(load.requests);
    const plain = await cli(['-s', s.sock, 'requests']);
    expect(plain.code, plain.err).to.equal(0);
    expect(plain.out.split('\n')).to.deep.equal(reply.workers.map((w) => `worker ${w.id} (pid ${w.pid}): ${w.result}`));
    const st = await status(s);
    for (const w of st.workers) {
      expect(w.requests, `worker ${w.id} requests`).to.equal(load.byPid.get(w.pid) ?? 0);
      expect(w.rss).to.be.greaterThan(1 << 20);
      expect(w.connections).to.be.a('number');
    }
    expect(st.connections).to.equal(st.workers.reduce((n, w) => n + (w.connections ?? 0), 0));
    // The human status shows the workers as a table.
    const human = await cli(['status', s.sock]);
    expect(human.code, human.err).to.equal(0);
    expect(human.out).to.match(/^workers:\n\s+id\s+pid\s+state\s+uptime\s+restarts\s+connections\s+requests\s+rss/m);
    for (const w of st.workers) expect(human.out).to.match(new RegExp(`^\\s+${w.id}\\s+${w.pid}\\s+ready\\s`, 'm'));
    // telinit 1 is well formed, but not for a service with workers: refused with exit 1, not the usage code.
    const single = await cli(['-s', s.sock, 'telinit', '1']);
    expect(single.code).to.equal(1);
    expect(single.err.trim()).to.equal('error: telinit: runlevel 1 is not available with workers: use telinit 0 to halt the service, or run it without the workers option');
  });

  it('scales to 1 worker and then to 4 under load with 0 failed requests; the scale carries over a redeploy; bad numbers are refused', async () => {
    s = await startService();
    const load = new Counter(s.port, 8, 4);
    try {
      for (const bad of ['0', 'x', '300', '1.5']) {
        const e = await control(s, 'scale', [bad]).catch((err: unknown) => err);
        expect(e, `scale ${bad}`).to.be.instanceOf(ControlReplyError);
        expect((e as ControlReplyError).code).to.equal('ERR_GRACEFUL_INVALID_ARGUMENT');
      }
      for (const n of [1, 4]) {
        const before = (await status(s)).workers.map((w) => w.pid);
        expect(await control(s, 'scale', [String(n)])).to.deep.equal({ workers: n });
        const st = await status(s);
        expect(st.workersWanted).to.equal(n);
        expect(st.workersReady).to.equal(n);
        const now = st.workers.map((w) => w.pid);
        expect(now.filter((pid) => before.includes(pid)), 'every worker is new').to.deep.equal([]);
        await until(() => before.every(gone), 15_000, 'the old workers to exit');
        await until(() => now.every((pid) => (load.byPid.get(pid) ?? 0) > 0), 15_000, `answers from each of the ${n} workers`);
      }
      const result = (await control(s, 'redeploy')) as { pid: number };
      s.primary = result.pid;
      const st = await status(s);
      expect(st.generation).to.equal(2);
      expect(st.workersWanted, 'the scale carries over').to.equal(4);
      await until(() => st.workers.every((w) => (load.byPid.get(w.pid) ?? 0) > 0), 15_000, 'answers from each worker of generation 2');
    } finally {
      await load.stop();
    }
    expect(load.errors).to.deep.equal([]);
    expect(zombies(s.primary)).to.deep.equal([]);
  });

  it('takes back: the new primary SIGKILLed right after ready, the old primary brings its workers up again and serves', async () => {
    const failFile = path.join(tmpDir(), 'fail');
    s = await startService({ APP_FAIL_FILE: failFile, APP_TAKE_BACK_WINDOW: '5000' });
    const first = s.primary;
    fs.writeFileSync(failFile, 'kill-primary');
    const load = new Counter(s.port, 4, 2);
    let error: unknown;
    try {
      await control(s, 'redeploy').catch((err: unknown) => {
        error = err;
      });
      expect(error).to.be.instanceOf(ControlReplyError);
      expect((error as ControlReplyError).code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
      expect((error as Error).message).to.match(/within the take-back window/);
      await oldServes(s, first, load);
    } finally {
      await load.stop();
    }
    expect(load.errors).to.deep.equal([]);
    expect(zombies(s.primary)).to.deep.equal([]);
  });

  it('runs under graceful-restart run: the supervisor follows each new primary, and its SIGTERM ends every process with 0', async () => {
    const dir = tmpDir();
    const appSock = path.join(dir, 'ctl.sock');
    const supSock = path.join(dir, 'sup.sock');
    const sup = spawnChild(process.execPath, [path.join(root, 'bin/graceful-restart.js'), 'run', '-s', supSock, '--', process.execPath, path.join(fixtures, 'workers.js')],
      { env: { ...process.env, APP_SOCKET: appSock } });
    const [, pid, port] = (await sup.next(/^ready /)).split(' ');
    s = { child: sup, sock: appSock, port: Number(port), primary: Number(pid) };
    await until(() => workersOf(s!, 1).size === 3, 10_000, 'the lines of the 3 workers');
    const load = new Counter(s.port, 4, 2);
    try {
      for (let g = 2; g <= 3; g++) {
        const r = (await control({ ...s, sock: supSock }, 'redeploy')) as { pid: number };
        const st = (await control({ ...s, sock: supSock }, 'status')) as { pid: number; workersReady: number };
        expect(st.pid, 'the supervisor follows the new primary').to.equal(r.pid);
        expect(st.workersReady).to.equal(3);
        s.primary = r.pid;
        await until(() => workersOf(s!, g).size === 3, 10_000, `the workers of generation ${g}`);
      }
    } finally {
      await load.stop();
    }
    expect(load.errors).to.deep.equal([]);
    const everyone = allPids(s);
    process.kill(sup.pid, 'SIGTERM');
    expect(await sup.exited).to.deep.equal({ code: 0, signal: null });
    for (const p of everyone) await until(() => gone(p), 10_000, `pid ${p} to be gone`);
  });

  it('rollout rolling: 3 redeploys under load with 0 failed requests, never more than 4 workers at once', async () => {
    s = await startService({ APP_ROLLOUT: 'rolling' });
    const load = new Counter(s.port, 8, 4);
    let most = 0;
    try {
      for (let g = 2; g <= 4; g++) {
        const old = s.primary;
        // Sampling the process table while the redeploy runs: what is measured here.
        const sampler = setInterval(() => {
          // Every worker below the old primary: its own, and its successor's (grandchildren).
          const below = childrenOf([old]);
          most = Math.max(most, [...below, ...childrenOf(below)].filter(isWorker).length);
        }, 2);
        try {
          const result = (await control(s, 'redeploy')) as { pid: number };
          s.primary = result.pid;
        } finally {
          clearInterval(sampler);
        }
        await until(() => workersOf(s!, g).size === 3, 10_000, `the workers of generation ${g}`);
        const fresh = [...workersOf(s, g).values()];
        await until(() => fresh.every((pid) => (load.byPid.get(pid) ?? 0) > 0), 15_000, `answers from each worker of generation ${g}`);
        await until(() => [old, ...workersOf(s!, g - 1).values()].every(gone), 15_000, `generation ${g - 1} to exit`);
      }
    } finally {
      await load.stop();
    }
    expect(load.errors).to.deep.equal([]);
    expect(most, 'workers alive at once').to.be.within(3, 4);
    const st = await status(s);
    expect(st.workersReady).to.equal(3);
  });

  it('rollout rolling: a worker of the new generation that fails halfway rolls back; the old primary starts the slots it retired again', async () => {
    const failFile = path.join(tmpDir(), 'fail');
    s = await startService({ APP_ROLLOUT: 'rolling', APP_FAIL_FILE: failFile });
    const first = s.primary;
    fs.writeFileSync(failFile, 'throw 1');
    const load = new Counter(s.port, 4, 2);
    let error: unknown;
    try {
      await control(s, 'redeploy').catch((err: unknown) => {
        error = err;
      });
      expect(error).to.be.instanceOf(ControlReplyError);
      expect((error as Error).message).to.match(/worker 1 .*refuses to start on purpose/);
      await oldServes(s, first, load);
    } finally {
      await load.stop();
    }
    expect(load.errors).to.deep.equal([]);
    expect(zombies(s.primary)).to.deep.equal([]);
  });

  it('hands a UDP socket to every worker: the primary reads none, the workers answer every datagram, also across 3 redeploys', async () => {
    s = await startService({ APP_UDP: '1' });
    const port = Number((s.child.stdout.find((l) => l.startsWith('udp ')) ?? '').split(' ')[1]);
    const client = dgram.createSocket('udp4');
    const answers = new Map<number, number>();
    const waiting = new Map<string, () => void>();
    client.on('message', (msg) => {
      const [pid, id] = msg.toString().split(' ');
      answers.set(Number(pid), (answers.get(Number(pid)) ?? 0) + 1);
      waiting.get(id!)?.();
    });
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    let lost = 0;
    let sent = 0;
    let running = true;
    // One datagram at a time, each answered or counted lost after 2 s.
    const pinger = (async () => {
      while (running) {
        const id = String(sent++);
        const got = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), 2000);
          waiting.set(id, () => {
            clearTimeout(timer);
            resolve(true);
          });
          client.send(id, port, '127.0.0.1');
        });
        waiting.delete(id);
        if (!got) lost++;
      }
    })();
    try {
      await until(() => sent > 100, 10_000, 'datagrams answered');
      for (let g = 2; g <= 4; g++) {
        s.primary = ((await control(s, 'redeploy')) as { pid: number }).pid;
        await until(() => workersOf(s!, g).size === 3, 10_000, `the workers of generation ${g}`);
        const at = sent;
        await until(() => sent > at + 50, 10_000, `datagrams answered after redeploy ${g - 1}`);
      }
    } finally {
      running = false;
      await pinger;
      client.close();
    }
    expect(lost, `datagrams lost of ${sent}`).to.equal(0);
    const primaries = s.child.stdout.filter((l) => l.startsWith('ready ')).map((l) => Number(l.split(' ')[1]));
    expect([...answers.keys()].filter((pid) => primaries.includes(pid)), 'answers from a primary').to.deep.equal([]);
    const workers = new Set(s.child.stdout.flatMap((l) => (/^worker \d+ (\d+)/.exec(l) ? [Number(/^worker \d+ (\d+)/.exec(l)![1])] : [])));
    expect([...answers.keys()].every((pid) => workers.has(pid)), `answers from ${[...answers.keys()].join(' ')}`).to.equal(true);
  });

  it('a redeploy through the CLI names each new worker as it gets ready, before the new primary is', async () => {
    s = await startService();
    const r = await cli([s.sock]);
    expect(r.code, r.err).to.equal(0);
    const lines = r.out.split('\n');
    const workers = lines.filter((l) => /^worker \d ready: pid \d+ after \d+ ms$/.test(l));
    expect(workers.map((l) => l.split(' ')[1]).sort()).to.deep.equal(['0', '1', '2']);
    const readyAt = lines.findIndex((l) => l.startsWith('ready: pid '));
    expect(readyAt, r.out).to.be.greaterThan(Math.max(...workers.map((l) => lines.indexOf(l))));
    const pid = Number(/ready: pid (\d+)/.exec(r.out)?.[1]);
    s.primary = pid;
    await until(() => workersOf(s!, 2).size === 3, 10_000, 'the workers of generation 2');
    for (const l of workers) expect([...workersOf(s, 2).values()]).to.include(Number(l.split(' ')[4]));
  });

  it('a worker that crashes with connections open: the primary logs how many it lost', async () => {
    s = await startService();
    const victim = workersOf(s, 1).get(1)!;
    const sockets: net.Socket[] = [];
    let onVictim = 0;
    try {
      for (let i = 0; i < 30; i++) {
        const sock = net.connect(s.port, '127.0.0.1');
        sock.on('error', () => undefined); // reset when the worker dies: what this test does
        sockets.push(sock);
        const body = await new Promise<string>((resolve) => {
          let got = '';
          const onData = (c: Buffer) => {
            got += c.toString();
            const m = /\r\n\r\n(\d+)$/.exec(got);
            if (m) {
              sock.off('data', onData);
              resolve(m[1]!);
            }
          };
          sock.on('data', onData);
          sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
        });
        if (Number(body) === victim) onVictim++;
      }
      expect(onVictim, 'connections on worker 1').to.be.greaterThan(0);
      await until(async () => (await status(s!)).workers[1]!.connections === onVictim, 5_000, `worker 1 to count ${onVictim} connection(s)`);
      process.kill(victim, 'SIGKILL');
      await until(() => s!.child.stderr.some((l) => l.includes(`worker 1 (pid ${victim}) was killed by SIGKILL, losing the ${onVictim} connection(s) it had open`)),
        5_000, 'the log line of the crash');
    } finally {
      for (const sock of sockets) sock.destroy();
    }
  });

  it('SIGUSR1 re-opens the log file in the primary and in every worker; app tasks run on every worker; a worker outlives SIGUSR1/SIGUSR2', async () => {
    const dir = tmpDir();
    const logFile = path.join(dir, 'app.log');
    s = await startService({ APP_LOG: logFile });
    const before = new Counter(s.port, 0, 3, 90);
    await before.done();
    await before.stop();
    fs.renameSync(logFile, `${logFile}.1`); // what logrotate does
    process.kill(s.primary, 'SIGUSR1');
    await until(() => s!.child.stderr.some((l) => l.includes('SIGUSR1: task reopen: reopened log')), 10_000, 'the reopen');
    const after = new Counter(s.port, 0, 3, 90);
    await after.done();
    await after.stop();
    expect(before.errors.concat(after.errors)).to.deep.equal([]);
    const lines = (f: string) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map(Number);
    // A worker writes its line before it answers, but the write reaches the file a moment later.
    await until(() => lines(logFile).length >= after.requests, 5_000, 'the last lines in the file');
    expect(lines(`${logFile}.1`).length, 'lines before the rotation').to.equal(before.requests);
    const fresh = lines(logFile);
    const byPid = (pids: number[]) => JSON.stringify(pids.reduce<Record<number, number>>((m, p) => ({ ...m, [p]: (m[p] ?? 0) + 1 }), {}));
    expect(fresh.length, `lines after it, all in the new file: ${byPid(fresh)} for answers ${JSON.stringify([...after.byPid])}`).to.equal(after.requests);
    expect([...new Set(fresh)].sort()).to.deep.equal([...after.byPid.keys()].sort());
    // An application task runs on every worker.
    const counted = (await control(s, 'task', ['count'])) as { workers: { id: number; pid: number; result: number }[] };
    expect(counted.workers.map((w) => w.id)).to.deep.equal([0, 1, 2]);
    expect(counted.workers.reduce((n, w) => n + w.result, 0)).to.equal(before.requests + after.requests);
    // The user signals sent to a worker do nothing there (no inspector, no death).
    const victim = workersOf(s, 1).get(0)!;
    process.kill(victim, 'SIGUSR1');
    process.kill(victim, 'SIGUSR2');
    const st = await status(s);
    expect(st.workers[0]).to.include({ pid: victim, state: 'ready' });
    expect(st.workers[0]!.requests, 'worker 0 still answers its primary').to.be.a('number');
    expect(gone(victim)).to.equal(false);
  });

  it('stats adds up what every worker counted, keeps it when workers are replaced (scale) and carries it over a redeploy', async () => {
    s = await startService();
    type Stats = { listeners: { name: string; requests: number; connections: number }[]; redeploys: { done: number } };
    const requests = async () => ((await control(s!, 'stats')) as Stats).listeners.find((l) => l.name === 'http')!.requests;
    const load = new Counter(s.port, 0, 3, 300);
    await load.done();
    await load.stop();
    expect(load.errors).to.deep.equal([]);
    await until(async () => (await requests()) === load.requests, 5_000, `stats to count ${load.requests} requests`);
    expect(await control(s, 'scale', ['2'])).to.deep.equal({ workers: 2 });
    await until(async () => (await requests()) === load.requests, 5_000, 'the same count once the old workers ended');
    s.primary = ((await control(s, 'redeploy')) as { pid: number }).pid;
    const after = (await control(s, 'stats')) as Stats;
    expect(after.redeploys.done).to.equal(1);
    expect(after.listeners.find((l) => l.name === 'http')!.requests, 'carried over the redeploy').to.equal(load.requests);
    const more = new Counter(s.port, 0, 3, 30);
    await more.done();
    await more.stop();
    await until(async () => (await requests()) === load.requests + more.requests, 5_000, 'the new workers counted too');
  });

  it('a slot whose restarts fail counts each as a crash and ends in a crash loop', async () => {
    const failFile = path.join(tmpDir(), 'fail');
    s = await startService({ APP_FAIL_FILE: failFile });
    fs.writeFileSync(failFile, 'exit 1'); // from now on worker 1 exits at start
    process.kill(workersOf(s, 1).get(1)!, 'SIGKILL');
    const st = (await until(async () => {
      const x = await status(s!);
      return x.workers[1]!.state === 'crash-loop' ? x : null;
    }, 20_000, 'slot 1 in a crash loop after failed restarts'))!;
    expect(st.workers[1]!.restarts).to.equal(4);
    expect(s.child.stderr.filter((l) => l.includes('worker 1 could not be started again'))).to.have.length(4);
    // Slot 1's socket is closed now; slot 2, restarted, must still get its own.
    const victim = workersOf(s, 1).get(2)!;
    process.kill(victim, 'SIGKILL');
    const reborn = await nextWorker(s, 2, 1, victim);
    const after = new Counter(s.port, 0, 3);
    try {
      await until(() => (after.byPid.get(reborn) ?? 0) > 0, 10_000, 'answers from the restarted worker 2');
    } finally {
      await after.stop();
    }
    expect(after.errors).to.deep.equal([]);
  });

  it('refuses a scale while a redeploy runs, and a second copy of the service on the same port', async () => {
    s = await startService();
    const c = await ControlClient.connect(s.sock, 5_000);
    let spawned!: () => void;
    const atSpawn = new Promise<void>((r) => (spawned = r));
    const redeploy = c.request('redeploy', [], (e) => e.event === 'spawned' && spawned(), 60_000);
    await atSpawn;
    const e = await control(s, 'scale', ['2']).catch((err: unknown) => err);
    expect(e).to.be.instanceOf(ControlReplyError);
    expect((e as ControlReplyError).code).to.equal('ERR_GRACEFUL_UPGRADE_IN_PROGRESS');
    s.primary = ((await redeploy) as { pid: number }).pid;
    c.close();
    expect((await status(s)).workersWanted).to.equal(3);
    const second = spawnFixture('workers', [], { env: { ...process.env, APP_SOCKET: path.join(tmpDir(), 'ctl.sock'), APP_PORT: String(s.port) } });
    const how = await second.exited;
    expect(how.code, second.stderr.join('\n')).to.not.equal(0);
    expect(second.stderr.join('\n')).to.include('EADDRINUSE');
  });
});
