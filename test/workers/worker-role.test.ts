/**
 * WorkerRole (src/workers/worker-role.ts), through a real service with
 * workers (test/fixtures/roles.ts): a worker takes its generation, runlevel,
 * redeploys and scale from its primary and says so with
 * ERR_GRACEFUL_NOT_PRIMARY; it serves with its primary's ticket keys; it runs
 * its tasks itself and its application's commands on the primary's request;
 * its telinit(0) halts it alone; it halts once its primary is gone.
 */
import { expect } from 'chai';
import path from 'node:path';
import { ControlClient } from '../../src/control/client.js';
import { endGenerations, gone, httpGet, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

interface Report {
  pid: number;
  ppid: number;
  isPrimary: boolean;
  workerId: number | null;
  workers: number;
  generation: number;
  [k: string]: unknown;
}

const reports = (child: Child): Report[] => child.stdout.filter((l) => l.startsWith('role ')).map((l) => JSON.parse(l.slice(5)) as Report);

describe('workers/worker-role: WorkerRole', function () {
  this.timeout(60_000);
  let child: Child | undefined;
  let sock: string;
  let primary: number;
  let port: number;

  const start = async (env: NodeJS.ProcessEnv = {}) => {
    sock = path.join(tmpDir(), 'ctl.sock');
    child = spawnFixture('roles', [], { env: { ...process.env, APP_SOCKET: sock, ...env } });
    const [, pid, p] = (await child.next(/^ready /)).split(' ');
    primary = Number(pid);
    port = Number(p);
  };

  const workers = (n = 2): Promise<Report[]> => until(() => {
    const ws = reports(child!).filter((r) => !r.isPrimary);
    return ws.length >= n ? ws : null;
  }, 15_000, `${n} worker reports`).then((ws) => ws!.sort((a, b) => a.workerId! - b.workerId!));

  afterEach(async () => {
    if (child) {
      for (const r of reports(child)) {
        try {
          process.kill(r.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await endGenerations(child);
    }
    child = undefined;
  });

  it('takes its runlevel, redeploys and scale from the primary (ERR_GRACEFUL_NOT_PRIMARY), its generation too, and serves with the primary\'s ticket keys', async () => {
    await start();
    const ws = await workers();
    expect(ws.map((w) => w.workerId)).to.deep.equal([0, 1]);
    for (const w of ws) {
      const id = w.workerId;
      const from = `the primary (pid ${primary})`;
      expect(w, `worker ${id}`).to.deep.include({
        ppid: primary, isPrimary: false, workers: 2, generation: 1, heldAddress: null, who: w.pid,
        telinit1: { code: 'ERR_GRACEFUL_NOT_PRIMARY', message: `telinit 1: worker ${id} takes its runlevel from ${from}: run telinit there (its control socket)` },
        telinit3: { code: 'ERR_GRACEFUL_NOT_PRIMARY', message: `telinit 3: worker ${id} takes its runlevel from ${from}: run telinit there (its control socket)` },
        redeploy: { code: 'ERR_GRACEFUL_NOT_PRIMARY', message: `redeploy(): worker ${id} cannot redeploy the service: ${from} does, on SIGHUP or its control command redeploy` },
        scale: { code: 'ERR_GRACEFUL_NOT_PRIMARY', message: `scale(): worker ${id} cannot scale the service: ${from} does (its control command scale)` },
        rotateTicketKeys: [],
        rotateTask: 'a worker serves with the TLS ticket keys of its primary: run rotate-tickets on the primary',
      });
    }
  });

  // A level that is no runlevel (2) is refused as such in a worker too, before the worker says
  // that the primary sets its runlevel (that was ERR_GRACEFUL_NOT_PRIMARY before).
  it('a level that is no runlevel is ERR_GRACEFUL_INVALID_RUNLEVEL in a worker too', async () => {
    await start();
    for (const w of await workers()) {
      expect(w.telinit2).to.deep.equal({ code: 'ERR_GRACEFUL_INVALID_RUNLEVEL', message: 'runlevel must be 0 (halt), 1 (single user: listeners closed) or 3 (serving), got 2' });
    }
  });

  it('runs its application\'s commands on its primary\'s request, its output labelled with its slot', async () => {
    await start();
    const ws = await workers();
    const client = await ControlClient.connect(sock);
    try {
      const lines = await client.raw('whoami');
      expect(lines.slice(0, 2).sort()).to.deep.equal(ws.map((w) => `worker ${w.workerId}: from ${w.pid}`));
      expect(lines.slice(2)).to.deep.equal([...ws.map((w) => `worker ${w.workerId} (pid ${w.pid}): worker ${w.workerId} pid ${w.pid}`), 'ok']);
    } finally {
      client.close();
    }
  });

  it('its telinit(0) halts that worker alone: it exits with 0, the service serves on, its slot filled again', async () => {
    await start({ APP_HALT_WORKER: '1', APP_HALT_MARK: path.join(tmpDir(), 'halted') });
    // The line may come before the primary's: it is looked for in all of stdout.
    const line = (await until(() => child!.stdout.find((l) => /^halted worker 1 \d+$/.test(l)), 15_000, 'worker 1 halted'))!;
    const pid = Number(line.split(' ')[3]);
    await until(() => gone(pid), 15_000, 'the halted worker gone');
    expect(gone(primary)).to.equal(false);
    // It exits with 0; its primary, which did not ask for it, starts another in its slot.
    await until(() => child!.stderr.includes(`graceful[${primary}]: worker 1 (pid ${pid}) exited with code 0; restarting it in 100 ms (the other workers serve on)`),
      15_000, 'the primary\'s line on the exit');
    const again = await until(() => reports(child!).find((r) => r.workerId === 1 && r.pid !== pid), 15_000, 'a new worker 1');
    expect(again!.generation).to.equal(1);
    for (let i = 0; i < 5; i++) expect(Number((await httpGet({ port })).body)).to.not.equal(pid);
  });

  it('halts once its primary is gone', async () => {
    await start();
    const ws = await workers();
    process.kill(primary, 'SIGKILL');
    await until(() => ws.every((w) => gone(w.pid)), 20_000, 'the orphaned workers gone');
    for (const w of ws) {
      expect(child!.stderr).to.include(`graceful[${w.pid}]: worker ${w.workerId}: the primary (pid ${primary}) is gone: halting`);
    }
  });
});

