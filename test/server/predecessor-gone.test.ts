/**
 * A predecessor that dies (SIGKILL: the OOM killer, a `kill -9`) while the
 * new instance starts. Until ready(), the new instance's stderr is a pipe read
 * by its predecessor: once that reader is gone, the new instance must still
 * finish starting and serve alone, also while it writes to stderr; the same
 * for a new primary and its workers. Real processes, real signals, real clients.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { appReady, endGenerations, gone, httpGet, spawnApp, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

/** pidOf: the pid in the first line of child's stdout that matches re (its first group). */
async function pidOf(child: Child, re: RegExp): Promise<number> {
  return Number(re.exec(await child.next(re))![1]);
}

/** workersOf: the pids of generation g's workers, by slot, from their "worker <id> <pid> <g>" lines. */
function workersOf(child: Child, g: number): Map<number, number> {
  const slots = new Map<number, number>();
  for (const line of child.stdout) {
    const m = /^worker (\d+) (\d+) (\d+)$/.exec(line);
    if (m && Number(m[3]) === g) slots.set(Number(m[1]), Number(m[2]));
  }
  return slots;
}

describe('a predecessor killed while the new instance starts', function () {
  this.timeout(60_000);
  let app: Child | undefined;
  let dir: string;
  let failFile: string;

  beforeEach(() => {
    dir = tmpDir();
    failFile = path.join(dir, 'fail');
  });

  afterEach(async () => {
    // Every primary and instance, then every worker: the test's processes, by pid.
    if (app) for (const line of app.stdout) {
      const m = /^worker \d+ (\d+) /.exec(line);
      if (m) try { process.kill(Number(m[1]), 'SIGKILL'); } catch { /* gone */ }
    }
    await endGenerations(app, /^(?:ready|holding) (\d+)/);
    app = undefined;
  });

  it('SIGKILLed while the new instance writes to stderr before ready(): the new one becomes ready, serves alone and says so once', async () => {
    app = spawnApp({ sock: path.join(dir, 'c.sock'), failFile });
    const { pid, port } = await appReady(app);
    fs.writeFileSync(failFile, 'stderr-until-orphan');
    process.kill(pid, 'SIGHUP');
    const newPid = await pidOf(app, /^holding (\d+)$/);
    await until(() => app!.stderr.some((l) => l.startsWith(`app: starting ${newPid} `)), 10_000, 'the new instance to write to stderr');
    process.kill(pid, 'SIGKILL');
    await app.next(new RegExp(`^ready ${newPid} ${port} 2 `));
    for (let i = 0; i < 5; i++) expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(newPid) });
    expect(gone(newPid)).to.equal(false);
    // Its lines after the death reach the service's stderr, and one line says what happened.
    await until(() => app!.stderr.some((l) => l.startsWith(`app: starting ${newPid} `) && Number(l.split(' ').pop()) > 50), 10_000, 'its later lines');
    const said = app.stderr.filter((l) => l.startsWith(`graceful[${newPid}]:`) && l.includes(`pid ${pid}`));
    expect(said).to.deep.equal([`graceful[${newPid}]: the instance this one replaces (pid ${pid}) exited before this one was ready: its stderr is the service's again, this instance goes on starting, and from ready() it serves alone`]);
  });

  for (const rollout of ['', 'rolling']) it(`with workers: 2${rollout ? ` (rollout ${rollout})` : ''}, the old primary SIGKILLed while the new primary writes to stderr before ready(): its workers start and serve`, async () => {
    app = spawnFixture('workers', [], { env: { ...process.env, APP_SOCKET: path.join(dir, 'c.sock'), APP_WORKERS: '2', APP_FAIL_FILE: failFile, APP_STDERR_EVERY: '1', APP_ROLLOUT: rollout } });
    const [, p, portText] = (await app.next(/^ready /)).split(' ');
    const pid = Number(p);
    const port = Number(portText);
    await until(() => workersOf(app!, 1).size === 2, 10_000, 'the first workers');
    const old = [...workersOf(app, 1).values()];
    fs.writeFileSync(failFile, 'stderr-until-orphan');
    process.kill(pid, 'SIGHUP');
    const newPid = await pidOf(app, /^holding (\d+)$/);
    await until(() => app!.stderr.some((l) => l.startsWith(`primary: starting ${newPid} `)), 10_000, 'the new primary to write to stderr');
    process.kill(pid, 'SIGKILL');
    await app.next(new RegExp(`^ready ${newPid} ${port} 2$`));
    await until(() => workersOf(app!, 2).size === 2, 10_000, 'the new workers');
    const fresh = [...workersOf(app, 2).values()];
    // The old generation's workers halt (their primary is gone); the new ones serve, and write to stderr on each request.
    await until(() => old.every(gone), 10_000, 'the old workers to halt');
    const answered = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const r = await httpGet({ port });
      expect(r.status).to.equal(200);
      answered.add(r.body);
    }
    expect([...answered].every((b) => fresh.includes(Number(b)))).to.equal(true);
    expect([newPid, ...fresh].some(gone)).to.equal(false);
    await until(() => [...answered].every((w) => app!.stderr.some((l) => new RegExp(`^worker \\d ${w} request `).test(l))), 10_000, 'the workers\' lines');
    expect(app.stderr.filter((l) => l.includes('exited with code'))).to.deep.equal([]);
  });

  it('with workers: the new workers write to stderr after the old primary exited (a redeploy without faults): they live on', async () => {
    app = spawnFixture('workers', [], { env: { ...process.env, APP_SOCKET: path.join(dir, 'c.sock'), APP_WORKERS: '2', APP_STDERR_EVERY: '1' } });
    const [, p, portText] = (await app.next(/^ready /)).split(' ');
    const pid = Number(p);
    const port = Number(portText);
    await until(() => workersOf(app!, 1).size === 2, 10_000, 'the first workers');
    process.kill(pid, 'SIGHUP');
    const newPid = await pidOf(app, /^ready (\d+) \d+ 2$/);
    await until(() => workersOf(app!, 2).size === 2, 10_000, 'the new workers');
    const fresh = [...workersOf(app, 2).values()];
    await until(() => gone(pid), 20_000, 'the old primary to exit');
    for (let i = 0; i < 40; i++) expect((await httpGet({ port })).status).to.equal(200);
    expect([newPid, ...fresh].some(gone)).to.equal(false);
    expect(app.stderr.filter((l) => l.includes('exited with code'))).to.deep.equal([]);
  });
});
