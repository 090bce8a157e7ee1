/**
 * 20 redeploys under load, in each of which the old instance (or the old
 * primary) is SIGKILLed at a random moment: a random delay in [0, the time a
 * redeploy takes] after the SIGHUP that starts it, but not before the new
 * instance holds the descriptors (what the README promises starts there; a
 * kill drawn earlier waits for that moment, the most delicate one). The new
 * instances write to stderr while they start (and, with workers, each worker
 * on some requests). The service never refuses a connection, every failed
 * request is one that the killed process held, and no process is left over.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { endGenerations, gone, spawnApp, spawnFixture, tmpDir, until, type Child } from '../helpers.js';
import { request } from '../load.js';

const REDEPLOYS = 20;

/** tagged: the live processes (zombies apart) whose environment holds APP_TAG=tag: the fixture's, whatever their parent. */
function tagged(tag: string): number[] {
  const mark = `APP_TAG=${tag}\0`;
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/environ`, 'latin1').includes(mark) && !gone(Number(name))) pids.push(Number(name));
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return pids;
}

/** Load: loops of requests on 127.0.0.1, through a pooled keep-alive agent and on fresh connections; each failure by its code. */
class Load {
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  readonly failures = new Map<string, number>();
  answered = 0;
  private last = Date.now();
  /** The longest time without an answer, in ms. */
  longestGap = 0;

  constructor(port: number) {
    for (let i = 0; i < 6; i++) this.loops.push(this.loop(port, i < 4 ? this.agent : false));
  }

  private async loop(port: number, agent: http.Agent | false): Promise<void> {
    while (this.running) {
      try {
        await request(port, '/', agent);
        this.answered++;
        const now = Date.now();
        this.longestGap = Math.max(this.longestGap, now - this.last);
        this.last = now;
      } catch (err) {
        const code = (err as { code?: string }).code ?? (err as Error).message;
        this.failures.set(code, (this.failures.get(code) ?? 0) + 1);
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
  }
}

describe('the old instance SIGKILLed at a random moment of each of 20 redeploys under load', function () {
  this.timeout(240_000);
  let child: Child | undefined;

  afterEach(async () => {
    if (child) for (const line of child.stdout) {
      const m = /^worker \d+ (\d+) /.exec(line);
      if (m) try { process.kill(Number(m[1]), 'SIGKILL'); } catch { /* gone */ }
    }
    await endGenerations(child, /^(?:ready|holding) (\d+)/);
    child = undefined;
  });

  /**
   * run: start the service, measure one redeploy, then 20 redeploys each
   * with a SIGKILL of the old instance; workers: how many each generation has.
   */
  async function run(workers: number): Promise<void> {
    const tag = `k${process.pid}x${workers}x${Date.now()}`;
    const dir = tmpDir();
    const env = { APP_TAG: tag, APP_START_STDERR_MS: '150', APP_UPGRADE_TIMEOUT: '20000' };
    child = workers === 0
      ? spawnApp({ sock: path.join(dir, 'c.sock'), failFile: path.join(dir, 'fail'), env })
      : spawnFixture('workers', [], { env: { ...process.env, ...env, APP_SOCKET: path.join(dir, 'c.sock'), APP_WORKERS: String(workers), APP_STDERR_EVERY: '50' } });
    const c = child;
    let [, pidText, portText] = (await c.next(/^ready /)).split(' ');
    let current = Number(pidText);
    const port = Number(portText);
    let generation = 1;
    const generationWorkers = (g: number) => c.stdout.filter((l) => l.endsWith(` ${g}`) && l.startsWith('worker ')).map((l) => Number(l.split(' ')[2]));
    await until(() => generationWorkers(1).length === workers, 10_000, 'the first workers');
    const load = new Load(port);

    /** redeploy: SIGHUP, then (with killAfter) a SIGKILL of the old instance once that long passed and the new one holds the descriptors. */
    const redeploy = async (killAfter: number | null): Promise<{ ms: number; killed: 'before ready' | 'after ready' | 'after exit' | null }> => {
      const old = current;
      const oldWorkers = generationWorkers(generation);
      const started = Date.now();
      const holding = c.next(/^holding \d+$/);
      process.kill(old, 'SIGHUP');
      let killed: 'before ready' | 'after ready' | 'after exit' | null = null;
      const newPid = Number((await (killAfter === null ? holding : Promise.all([holding, new Promise((r) => setTimeout(r, killAfter))]).then(([l]) => l))).split(' ')[1]);
      if (killAfter !== null) {
        killed = gone(old) ? 'after exit' : c.stdout.some((l) => l.startsWith(`ready ${newPid} `)) ? 'after ready' : 'before ready';
        if (killed !== 'after exit') process.kill(old, 'SIGKILL');
      }
      await c.next(new RegExp(`^ready ${newPid} ${port} ${generation + 1}( |$)`), 30_000);
      await until(() => gone(old), 30_000, `the old instance (pid ${old}) to be gone`);
      generation++;
      current = newPid;
      await until(() => generationWorkers(generation).length === workers, 10_000, `the workers of generation ${generation}`);
      await until(() => oldWorkers.every(gone), 30_000, 'the old workers to be gone');
      return { ms: Date.now() - started, killed };
    };

    try {
      const { ms } = await redeploy(null); // how long a redeploy takes here
      const moments: Record<string, number> = {};
      for (let i = 0; i < REDEPLOYS; i++) {
        const answered = load.answered;
        const { killed } = await redeploy(Math.random() * ms);
        moments[killed!] = (moments[killed!] ?? 0) + 1;
        await until(() => load.answered > answered + 10, 10_000, `answers after redeploy ${i + 1}`);
      }
      await load.stop();
      const failures = Object.fromEntries(load.failures);
      console.log(`      workers ${workers}: a redeploy took ${ms} ms; kills ${JSON.stringify(moments)}; ${load.answered} answered, failed ${JSON.stringify(failures)}, longest time without an answer ${load.longestGap} ms`);
      expect(failures, 'no connection refused').to.not.have.property('ECONNREFUSED');
      // What fails is a request on a connection the killed process held: reset, or closed before it answered.
      for (const code of Object.keys(failures)) expect(['ECONNRESET', 'socket hang up', 'EPIPE']).to.include(code);
      const failed = Object.values(failures).reduce((a, b) => a + b, 0);
      expect(failed).to.be.at.most(REDEPLOYS * 6 * (workers === 0 ? 1 : workers));
    } finally {
      await load.stop();
    }
    const living = tagged(tag).sort();
    expect(living).to.deep.equal([current, ...generationWorkers(generation)].sort());
    process.kill(current, 'SIGTERM');
    await until(() => tagged(tag).length === 0, 30_000, 'every process of the service to exit');
  }

  it('without workers', async () => {
    await run(0);
  });

  it('with workers: 2', async () => {
    await run(2);
  });
});
