/**
 * PrimaryRole (src/workers/primary-role.ts), through a real service with
 * workers (test/fixtures/roles.ts) and its control socket: the primary holds
 * the socket and never accepts; it refuses runlevels 1 and 3; it is ready
 * once every worker is; an application's task and command run on every
 * worker while the library's run in the primary; status asks each worker; a
 * scale replaces the workers and carries over to the next generation, whose
 * number is one more; its halt stops every worker and removes the socket file.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { ControlClient, type ControlEvent } from '../../src/control/client.js';
import { endGenerations, gone, httpGet, openFds, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

interface Report {
  pid: number;
  ppid: number;
  isPrimary: boolean;
  workerId: number | null;
  workers: number;
  generation: number;
  [k: string]: unknown;
}

/** reports: every "role" line the service printed so far. */
const reports = (child: Child): Report[] => child.stdout.filter((l) => l.startsWith('role ')).map((l) => JSON.parse(l.slice(5)) as Report);

describe('workers/primary-role: PrimaryRole', function () {
  this.timeout(60_000);
  let child: Child | undefined;
  let sock: string;
  let primary: number;
  let port: number;
  let client: ControlClient | undefined;

  beforeEach(async () => {
    sock = path.join(tmpDir(), 'ctl.sock');
    child = spawnFixture('roles', [], { env: { ...process.env, APP_SOCKET: sock } });
    const [, pid, p] = (await child.next(/^ready /)).split(' ');
    primary = Number(pid);
    port = Number(p);
    client = await ControlClient.connect(sock);
  });

  afterEach(async () => {
    client?.close();
    client = undefined;
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

  const workerPids = (generation = 1): Promise<number[]> => until(() => {
    const ws = reports(child!).filter((r) => !r.isPrimary && r.generation === generation);
    return ws.length >= 2 ? ws.map((r) => r.pid) : null;
  }, 15_000, `the workers of generation ${generation}`).then((pids) => pids!);

  it('holds the socket and never accepts; refuses runlevels 1 and 3; runs the library\'s tasks itself', async () => {
    const me = reports(child!).find((r) => r.isPrimary)!;
    expect(me).to.deep.equal({
      pid: primary, ppid: process.pid, isPrimary: true, workerId: null, workers: 2, generation: 1,
      telinit1: { code: 'ERR_GRACEFUL_NOT_CONFIGURED', message: 'telinit: runlevel 1 is not available with workers: use telinit 0 to halt the service, or run it without the workers option' },
      telinit3: { code: 'ERR_GRACEFUL_NOT_CONFIGURED', message: 'telinit: runlevel 3 is not available with workers: use telinit 0 to halt the service, or run it without the workers option' },
      telinit2: { code: 'ERR_GRACEFUL_INVALID_RUNLEVEL', message: 'runlevel must be 0 (halt), 1 (single user: listeners closed) or 3 (serving), got 2' },
      rotateTicketKeys: [],
      rotateTask: 'rotated the TLS ticket keys of nothing (no TLS listener)',
      heldAddress: 'held',
    });
    const workers = await workerPids();
    const answered = new Set<number>();
    for (let i = 0; i < 20; i++) answered.add(Number((await httpGet({ port })).body));
    expect(answered.has(primary), 'the primary accepts nothing').to.equal(false);
    for (const pid of answered) expect(workers).to.include(pid);
    expect(await client!.request('telinit', ['1']).catch((e: Error & { code?: string }) => ({ code: e.code, message: e.message }))).to.deep.equal({
      code: 'ERR_GRACEFUL_NOT_CONFIGURED', message: 'telinit: runlevel 1 is not available with workers: use telinit 0 to halt the service, or run it without the workers option',
    });
    expect(await client!.request('reopen')).to.deep.equal({ reopened: [] });
  });

  it('is ready once every worker is; status asks each worker for its counts', async () => {
    const workers = await workerPids();
    // Both workers said they were ready before the primary printed its line.
    expect(child!.stderr.filter((l) => /worker \d of generation 1 ready/.test(l))).to.have.length(2);
    await httpGet({ port });
    const status = await client!.request('status') as { workers: { id: number; pid: number; requests: number | null; connections: number | null; rss: number | null }[]; workersWanted: number; workersReady: number; connections: number; state: string };
    expect(status).to.deep.include({ workersWanted: 2, workersReady: 2, state: 'ready' });
    expect(status.workers.map((w) => w.id)).to.deep.equal([0, 1]);
    expect(status.workers.map((w) => w.pid).sort()).to.deep.equal([...workers].sort());
    expect(status.workers.reduce((n, w) => n + (w.requests ?? -100), 0), 'every worker answered, one request in all').to.equal(1);
    for (const w of status.workers) expect(w.rss).to.be.a('number');
    expect(status.connections).to.equal(status.workers.reduce((n, w) => n + (w.connections ?? 0), 0));
  });

  it('an application\'s task and command run on every worker, a primary\'s command in the primary', async () => {
    const workers = await workerPids();
    const task = await client!.request('task', ['who']) as { workers: { id: number; pid: number; result: number }[] };
    expect(task.workers.map((w) => [w.id, w.pid === w.result])).to.deep.equal([[0, true], [1, true]]);
    expect(task.workers.map((w) => w.pid).sort()).to.deep.equal([...workers].sort());
    const events: ControlEvent[] = [];
    const who = await client!.request('whoami', [], (e) => events.push(e)) as { workers: { id: number; pid: number; result: string }[] };
    expect(who.workers.map((w) => w.result)).to.deep.equal(who.workers.map((w) => `worker ${w.id} pid ${w.pid}`));
    expect(events.map((e) => e.line).sort()).to.deep.equal(who.workers.map((w) => `worker ${w.id}: from ${w.pid}`).sort());
    expect(await client!.request('where')).to.equal(`primary ${primary}`);
  });

  it('scale replaces the workers; the number carries over to the next generation, one more than this', async () => {
    const old = await workerPids();
    expect(await client!.request('scale', ['3'])).to.deep.equal({ workers: 3 });
    const status = await client!.request('status') as { workers: { pid: number }[]; workersWanted: number; workersReady: number };
    expect(status).to.deep.include({ workersWanted: 3, workersReady: 3 });
    for (const w of status.workers) expect(old).to.not.include(w.pid);
    await until(() => old.every(gone), 15_000, 'the old workers gone');
    expect(child!.stderr).to.include(`graceful[${primary}]: scaled from 2 to 3 worker(s)`);
    const done = await client!.request('redeploy') as { pid: number };
    const line = await child!.next(/^ready /);
    const [, pid, , generation] = line.split(' ');
    expect(Number(pid)).to.equal(done.pid);
    expect(Number(pid)).to.not.equal(primary);
    expect(Number(generation)).to.equal(2);
    const next = (await until(() => {
      const ws = reports(child!).filter((r) => !r.isPrimary && r.generation === 2);
      return ws.length >= 3 ? ws : null;
    }, 15_000, 'the 3 workers of generation 2'))!;
    expect(next.map((r) => r.workerId).sort()).to.deep.equal([0, 1, 2]);
    expect(next.every((r) => r.workers === 3 && r.ppid === Number(pid))).to.equal(true);
  });

  it('scales to the same number, three times, replace every worker and leave the primary holding no more descriptors than before', async () => {
    // Measured right after the start, the count may still hold what the start closes a moment later
    // (a hand-off's socket): three scales in a row, so that a descriptor kept per scale shows as three.
    // The count is taken once the primary has answered this client: a connection the kernel has
    // completed but the primary not yet accepted is not in its table, and would show as one more later.
    await client!.request('status');
    const before = openFds(primary).length;
    let status = { workers: [] as { pid: number }[] };
    for (let i = 0; i < 3; i++) {
      const old = await workerPids();
      expect(await client!.request('scale', ['2'])).to.deep.equal({ workers: 2 });
      await until(() => old.every(gone), 15_000, 'the old workers gone');
      status = await client!.request('status') as { workers: { pid: number }[] };
      for (const w of status.workers) expect(old).to.not.include(w.pid);
    }
    // The old workers' links and pipes are closed once they exited: poll, as the primary reaps them on its own time.
    await until(() => openFds(primary).length <= before, 10_000, `the primary back to ${before} descriptors (has ${openFds(primary).length})`);
    expect(Number((await httpGet({ port })).body)).to.be.oneOf(status.workers.map((w) => w.pid));
  });

  it('telinit 0 halts every worker, then the primary, and removes the socket file', async () => {
    const workers = await workerPids();
    // Its answer is not awaited here (the next case checks it).
    void client!.request('telinit', ['0']).catch(() => undefined);
    expect(await child!.exited).to.deep.equal({ code: 0, signal: null });
    await until(() => workers.every(gone), 10_000, 'the workers gone');
    expect(fs.existsSync(sock)).to.equal(false);
  });

  // `telinit 0` over the control socket is answered before the halt closes the socket (it was not, once).
  it('telinit 0 over the control socket answers { runlevel: 0 } before the socket closes', async () => {
    expect(await client!.request('telinit', ['0'])).to.deep.equal({ runlevel: 0 });
    expect(await child!.exited).to.deep.equal({ code: 0, signal: null });
  });
});
