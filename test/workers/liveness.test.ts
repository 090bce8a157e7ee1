/**
 * The liveness check of the workers (src/workers/liveness.ts), with real
 * processes and real signals: a worker stopped by SIGSTOP is named by status
 * and health within the liveness timeout, killed past the kill timeout and
 * restarted in its slot (a crash), after which every request succeeds; a
 * new worker that hangs at start fails the redeploy with a reason naming it.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { ControlClient, ControlReplyError } from '../../src/control/client.js';
import { Liveness, pingInterval } from '../../src/workers/liveness.js';
import { Slot } from '../../src/workers/slots.js';
import { socketPair } from '../../src/workers/socket-pair.js';
import { PrimaryLink } from '../../src/workers/worker-link.js';
import { request } from '../load.js';
import { endGenerations, gone, root, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

interface WorkerStatus { id: number; pid: number; state: string; restarts: number; responding: boolean | null; unresponsiveSince: string | null; connections: number | null }
interface Status { pid: number; generation: number; workersReady: number; workersWanted: number; workers: WorkerStatus[] }

async function control(sock: string, cmd: string, args: string[] = []): Promise<unknown> {
  const c = await ControlClient.connect(sock, 5_000);
  try {
    return await c.request(cmd, args, undefined, 60_000);
  } finally {
    c.close();
  }
}

function health(sock: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin/graceful-restart.js'), 'health', sock], { timeout: 30_000 }, (err, stdout) => {
      resolve({ code: err ? Number((err as { code?: number }).code) : 0, out: stdout.trim() });
    });
  });
}

/** workerPids: the pid of each slot of generation g, as the workers announced themselves (the last per slot). */
function workerPids(child: Child, g: number): Map<number, number> {
  const slots = new Map<number, number>();
  for (const line of child.stdout) {
    const m = /^worker (\d+) (\d+) (\d+)$/.exec(line);
    if (m && Number(m[3]) === g) slots.set(Number(m[1]), Number(m[2]));
  }
  return slots;
}

describe('the liveness check of the workers', function () {
  this.timeout(120_000);
  let child: Child | undefined;
  let stopped: number | undefined;

  afterEach(async () => {
    if (stopped !== undefined) {
      try {
        process.kill(stopped, 'SIGKILL');
      } catch {
        // gone
      }
    }
    stopped = undefined;
    await endGenerations(child, /^(?:ready|worker \d+) (\d+)/);
    child = undefined;
  });

  it('names a worker stopped by SIGSTOP in status and health, then kills it (SIGKILL) and restarts it in its slot as a crash', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'ctl.sock');
    child = spawnFixture('workers', [], {
      env: { ...process.env, APP_SOCKET: sock, APP_WORKERS: '2', GRACEFUL_WORKER_LIVENESS_TIMEOUT: '0.6', GRACEFUL_WORKER_KILL_TIMEOUT: '2.5' },
    });
    const [, primary, port] = (await child.next(/^ready /)).split(' ');
    await until(() => workerPids(child!, 1).size === 2, 10_000, 'both workers');
    const victim = workerPids(child, 1).get(1)!;
    const t0 = Date.now();
    process.kill(victim, 'SIGSTOP');
    stopped = victim;

    // Within the liveness timeout (and a ping interval), status and health name it.
    const st = (await until(async () => {
      const x = await control(sock, 'status') as Status;
      return x.workers[1]!.state === 'unresponsive' ? x : null;
    }, 5_000, 'worker 1 unresponsive in status'))!;
    expect(Date.now() - t0).to.be.below(2_500);
    expect(st.workersReady).to.equal(1);
    expect(st.workers[1]).to.include({ id: 1, pid: victim, state: 'unresponsive', responding: false, connections: null });
    expect(Date.parse(st.workers[1]!.unresponsiveSince!)).to.be.within(t0 - 1_000, Date.now());
    expect(st.workers[0]).to.include({ state: 'ready', responding: true, unresponsiveSince: null });
    const h = await health(sock);
    expect(h).to.deep.equal({ code: 1, out: `unhealthy: pid ${primary} ready with 1 of 2 workers (worker 1 unresponsive)` });

    // Past the kill timeout: killed, counted as a crash, restarted in its slot.
    const reborn = (await until(() => {
      const p = workerPids(child!, 1).get(1);
      return p !== victim ? p : undefined;
    }, 10_000, 'worker 1 restarted'))!;
    await until(() => gone(victim), 5_000, 'the hung worker to be gone');
    stopped = undefined;
    const after = (await until(async () => {
      const x = await control(sock, 'status') as Status;
      return x.workersReady === 2 ? x : null;
    }, 10_000, 'two workers ready again'))!;
    expect(after.workers[1]).to.include({ pid: reborn, state: 'ready', restarts: 1, responding: true });
    expect(child.stderr.join('\n')).to.match(new RegExp(`worker 1 \\(pid ${victim}\\) did not answer for \\d+ ms and was killed \\(SIGKILL\\); restarting it`));
    expect((await health(sock)).code).to.equal(0);

    // Every request succeeds afterwards, on fresh connections, and both workers answer.
    const byPid = new Map<number, number>();
    for (let i = 0; i < 200; i++) {
      const pid = Number(await request(Number(port), '/', false));
      byPid.set(pid, (byPid.get(pid) ?? 0) + 1);
    }
    expect(byPid.get(reborn) ?? 0).to.be.above(0);
  });

  it('a worker that answers again before the kill timeout is ready again, not killed', async () => {
    const sock = path.join(tmpDir(), 'ctl.sock');
    child = spawnFixture('workers', [], {
      env: { ...process.env, APP_SOCKET: sock, APP_WORKERS: '2', GRACEFUL_WORKER_LIVENESS_TIMEOUT: '0.6', GRACEFUL_WORKER_KILL_TIMEOUT: '30' },
    });
    await child.next(/^ready /);
    await until(() => workerPids(child!, 1).size === 2, 10_000, 'both workers');
    const victim = workerPids(child, 1).get(0)!;
    process.kill(victim, 'SIGSTOP');
    stopped = victim;
    await until(async () => ((await control(sock, 'status')) as Status).workers[0]!.state === 'unresponsive', 5_000, 'worker 0 unresponsive');
    process.kill(victim, 'SIGCONT');
    stopped = undefined;
    const st = (await until(async () => {
      const x = await control(sock, 'status') as Status;
      return x.workers[0]!.state === 'ready' ? x : null;
    }, 5_000, 'worker 0 ready again'))!;
    expect(st.workers[0]).to.include({ pid: victim, restarts: 0, responding: true, unresponsiveSince: null });
    expect(child.stderr.join('\n')).to.match(new RegExp(`worker 0 \\(pid ${victim}\\) answers again`));
  });

  for (const [workers, hung] of [[1, 0], [2, 1], [2, 0]] as const) {
    it(`a new worker that hangs at start fails the redeploy with a reason that names it, and the old workers serve on (worker ${hung} of ${workers})`, async () => {
      const dir = tmpDir();
      const sock = path.join(dir, 'ctl.sock');
      const failFile = path.join(dir, 'fail');
      child = spawnFixture('workers', [], {
        env: { ...process.env, APP_SOCKET: sock, APP_WORKERS: String(workers), APP_FAIL_FILE: failFile, APP_UPGRADE_TIMEOUT: '4000' },
      });
      const [, primary] = (await child.next(/^ready /)).split(' ');
      await until(() => workerPids(child!, 1).size === workers, 10_000, 'the workers');
      fs.writeFileSync(failFile, `hang ${hung}`);
      const err = await control(sock, 'redeploy').then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(ControlReplyError);
      const message = (err as Error).message;
      expect(message).to.match(new RegExp(`worker ${hung} of generation 2 \\(pid \\d+\\) was not ready within \\d+ ms`));
      expect(message).to.not.include('\n');
      const st = await control(sock, 'status') as Status;
      expect(st).to.include({ pid: Number(primary), generation: 1, workersReady: workers });
      const second = child.stdout.filter((l) => / 2$/.test(l)).map((l) => Number(l.split(' ')[l.startsWith('ready') ? 1 : 2]));
      for (const pid of second) await until(() => gone(pid), 10_000, `pid ${pid} of the failed generation to be gone`);
    });
  }
});

describe('Liveness.check, round by round (a real worker process and link, the clock given)', () => {
  /** serving: a slot whose worker is a real process, with a link whose worker end the test answers on (or not). */
  function serving() {
    const pair = socketPair('graceful:link');
    const link = new PrimaryLink(pair.write.take(), 'worker 0', () => undefined);
    const peer = new net.Socket({ fd: pair.read.take(), readable: true, writable: true });
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const slot = new Slot(0);
    slot.move('starting');
    slot.move('ready');
    slot.child = child;
    slot.link = link;
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, sig) => r(sig)));
    return { slot, link, peer, child, exited };
  }

  it('pings each round; unresponsive after the timeout, ready again once heard, killed (SIGKILL) after the kill timeout; its own lag restarts the count', async () => {
    const { slot, link, peer, child, exited } = serving();
    const logs: string[] = [];
    const states: string[] = [];
    const live = new Liveness({ timeoutMs: 300, killMs: 900, slots: () => [slot], generation: () => 1, log: (m) => logs.push(m), changed: (w) => states.push(w.state) });
    expect(pingInterval(300)).to.equal(100);
    expect(pingInterval(3000)).to.equal(1000);
    const t = link.lastHeard;
    const pings: string[] = [];
    peer.setEncoding('utf8');
    peer.on('data', (d: string) => pings.push(...d.split('\n').filter(Boolean)));
    live.check(t + 100);
    await until(() => pings.length === 1, 5_000, 'the first ping');
    live.check(t + 200);
    expect(slot.state).to.equal('ready');
    live.check(t + 300);
    expect(slot.state).to.equal('unresponsive');
    expect(slot.info(1, t + 300)).to.include({ responding: false, unresponsiveSince: new Date(t).toISOString() });
    expect(logs.at(-1)).to.equal(`worker 0 (pid ${child.pid}) has not answered for 300 ms (the liveness timeout is 300 ms): it is unresponsive, and is killed once silent for 900 ms`);
    // It answers (its ping): ready again.
    peer.write(`${JSON.stringify({ id: JSON.parse(pings[0]!).id, result: null })}\n`);
    await until(() => link.lastHeard > t, 5_000, 'the answer');
    const heard = link.lastHeard;
    live.check(heard + 100);
    expect(slot.state).to.equal('ready');
    expect(logs.at(-1)).to.match(new RegExp(`^worker 0 \\(pid ${child.pid}\\) answers again, after \\d+ ms$`));
    // This process late by more than two intervals: silence counts from now, not from its last answer.
    live.check(heard + 2_000);
    expect(slot.state).to.equal('ready');
    live.check(heard + 2_100);
    live.check(heard + 2_300);
    expect(slot.state).to.equal('unresponsive');
    live.check(heard + 2_500);
    live.check(heard + 2_700);
    expect(slot.hung).to.equal(null);
    live.check(heard + 2_900);
    expect(slot.hung).to.equal(900);
    expect(await exited).to.equal('SIGKILL');
    expect(states).to.deep.equal(['unresponsive', 'ready', 'unresponsive']);
    link.close();
    peer.destroy();
  });

  it('a timeout of 0 runs no check; a kill timeout of 0 never kills', async () => {
    const { slot, link, peer, child } = serving();
    const off = new Liveness({ timeoutMs: 0, killMs: 0, slots: () => [slot], generation: () => 1, log: () => undefined });
    off.start();
    off.stop();
    const never = new Liveness({ timeoutMs: 100, killMs: 0, slots: () => [slot], generation: () => 1, log: () => undefined });
    never.check(link.lastHeard + 50);
    never.check(link.lastHeard + 100);
    never.check(link.lastHeard + 150);
    expect(slot.state).to.equal('unresponsive');
    expect(slot.hung).to.equal(null);
    expect(child.exitCode === null && child.signalCode === null).to.equal(true);
    child.kill('SIGKILL');
    link.close();
    peer.destroy();
  });
});
