/**
 * pool.ts with real worker processes (the hand-off fixture as the worker
 * program, through the spawn seam): a generation starts whole and gets its
 * link and go signal, a crashed worker restarts in its slot, a failed start
 * stops every worker and names the one that failed, a scale replaces the
 * workers, a rolling redeploy's retire and refill, a drain; no slot ever
 * moves outside SLOT_TRANSITIONS.
 */
import { expect } from 'chai';
import { spawn, type SpawnOptions } from 'node:child_process';
import path from 'node:path';
import { UpgradeInProgressError, WorkerFailedError } from '../../src/errors.js';
import type { LogFields } from '../../src/log.js';
import { WORKER_ENV } from '../../src/protocol.js';
import { WorkerPool, type PoolOptions } from '../../src/workers/pool.js';
import type { WorkerInfo } from '../../src/workers/slots.js';
import { fixtures, gone, until } from '../helpers.js';

interface Harness {
  pool: WorkerPool;
  logs: { msg: string; fields?: LogFields }[];
  changes: WorkerInfo[];
  /** What each worker printed, by pid. */
  output: Map<number, string[]>;
  grown: number[];
  undone: number;
}

/** harness: a pool of count workers; the worker of a slot listed in failing gives up before it is ready. */
function harness(count: number, failing: number[] = [], more: Partial<PoolOptions> = {}): Harness {
  const h: Harness = { logs: [], changes: [], output: new Map(), grown: [], undone: 0, pool: undefined as unknown as WorkerPool };
  h.pool = new WorkerPool({
    count,
    descriptors: () => [],
    grow: async (n) => {
      h.grown.push(n);
      return () => { h.undone++; };
    },
    state: () => ({ runlevel: 3, generation: 7 }),
    generation: () => 7,
    timeoutMs: 20_000,
    shutdownTimeoutMs: 2_000,
    spawn: (_cmd: string, _args: readonly string[], options: SpawnOptions) => {
      const slot = Number(options.env?.[WORKER_ENV]);
      const proc = spawn(process.execPath, [path.join(fixtures, 'successor-child.js'), ...(failing.includes(slot) ? ['exit'] : [])], { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
      const lines: string[] = [];
      h.output.set(proc.pid!, lines);
      proc.stdout!.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean)));
      return proc;
    },
    log: (msg, fields) => h.logs.push({ msg, fields }),
    changed: (info) => h.changes.push(info),
    ...more,
  });
  return h;
}

const states = (h: Harness) => h.pool.info().map((w) => w.state);
const badMoves = (h: Harness) => h.logs.filter((l) => l.fields?.event === 'worker.bad-transition').map((l) => l.msg);

describe('workers/pool', function () {
  this.timeout(60_000);
  let h: Harness | undefined;
  afterEach(async () => {
    const pids = h?.pool.pids() ?? [];
    await h?.pool.drain();
    for (const pid of pids) expect(gone(pid), `worker ${pid} is gone`).to.equal(true);
    if (h) expect(badMoves(h)).to.deep.equal([]);
    h = undefined;
  });

  it('startAll starts every slot together: each worker gets its link, its go signal and its slot; all ready', async () => {
    h = harness(3);
    const ready: number[] = [];
    await h.pool.startAll((w) => ready.push(w.id));
    expect(ready.sort()).to.deep.equal([0, 1, 2]);
    expect(h.grown).to.deep.equal([3]);
    expect(states(h)).to.deep.equal(['ready', 'ready', 'ready']);
    expect([h.pool.count, h.pool.wanted, h.pool.readyCount, h.pool.pids().length]).to.deep.equal([3, 3, 3, 3]);
    for (const w of h.pool.info()) {
      expect(w).to.deep.include({ generation: 7, restarts: 0 });
      const out = h.output.get(w.pid!)!;
      await until(() => out.some((l) => l.startsWith('told ')), 10_000, 'the worker\'s answer');
      expect(out).to.deep.equal(['got graceful:link fd socket', 'got graceful:go fd socket', `state {"runlevel":3,"generation":7,"workerId":${w.id}} running=true`, 'told ok']);
    }
    expect(h.changes.filter((c) => c.id === 1).map((c) => c.state)).to.deep.equal(['starting', 'ready']);
    expect(() => h!.pool.resize(2)).to.throw(UpgradeInProgressError, 'resize: the workers run already: use scale()');
  });

  it('a worker that dies while its generation serves restarts in its slot after the backoff; the others serve on', async () => {
    h = harness(2);
    await h.pool.startAll();
    const [first, second] = h.pool.info();
    process.kill(first!.pid!, 'SIGKILL');
    await until(() => h!.pool.info()[0]!.state === 'ready' && h!.pool.info()[0]!.pid !== first!.pid, 20_000, 'the restart');
    const now = h.pool.info();
    expect(now[0]).to.deep.include({ id: 0, state: 'ready', restarts: 1 });
    expect(now[1]).to.deep.include({ pid: second!.pid, state: 'ready', restarts: 0 });
    const crashed = h.logs.find((l) => l.fields?.event === 'worker.crashed');
    expect(crashed?.msg).to.equal(`worker 0 (pid ${first!.pid}) was killed by SIGKILL; restarting it in 100 ms (the other workers serve on)`);
    expect(h.changes.filter((c) => c.id === 0).map((c) => c.state)).to.deep.equal(['starting', 'ready', 'restarting', 'starting', 'ready']);
    // A restarted worker starts at once: no go signal.
    const out = h.output.get(now[0]!.pid!)!;
    await until(() => out.some((l) => l.startsWith('told ')), 10_000, 'the worker\'s answer');
    expect(out.filter((l) => l.startsWith('got '))).to.deep.equal(['got graceful:link fd socket']);
  });

  it('a worker that fails to start: every other is stopped, the error names it with its own last words, the groups are shrunk back', async () => {
    h = harness(3, [1]);
    const err = await h.pool.startAll().then(() => null, (e: Error) => e);
    expect(err).to.be.instanceOf(WorkerFailedError);
    expect(err!.message).to.match(/^worker 1 of generation 7 \(pid \d+\) exited with code 3 before it was ready: successor-child: giving up on purpose$/);
    expect(h.undone).to.equal(1);
    expect(states(h)).to.deep.equal(['stopped', 'stopped', 'stopped']);
    expect(h.pool.pids()).to.deep.equal([]);
    for (const pid of h.output.keys()) expect(gone(pid), `worker ${pid} is gone`).to.equal(true);
  });

  it('scale replaces every worker by count new ones; bad numbers and a second scale are refused; not before the start', async () => {
    h = harness(2);
    const early = await h.pool.scale(3).then(() => null, (e: Error) => e);
    expect(early).to.be.instanceOf(UpgradeInProgressError);
    expect(early!.message).to.equal('scale: the workers are not started yet: try again once the service serves');
    await h.pool.startAll();
    const old = h.pool.pids();
    for (const n of [0, 257, 1.5]) {
      const bad = await h.pool.scale(n).then(() => null, (e: Error & { code?: string }) => e);
      expect(bad?.code, String(n)).to.equal('ERR_GRACEFUL_INVALID_ARGUMENT');
      expect(bad?.message).to.equal(`scale: the number of workers must be an integer from 1 to 256, got ${n} (telinit 0 halts the service)`);
    }
    const scaling = h.pool.scale(3);
    expect(h.pool.scaling).to.equal(true);
    const second = await h.pool.scale(1).then(() => null, (e: Error) => e);
    expect(second?.message).to.equal('scale: another scale is under way: wait for it (see status)');
    await scaling;
    expect(h.pool.scaling).to.equal(false);
    expect(h.grown).to.deep.equal([2, 3]);
    expect(states(h)).to.deep.equal(['ready', 'ready', 'ready']);
    const now = h.pool.pids();
    expect(now.filter((p) => old.includes(p))).to.deep.equal([]);
    for (const pid of old) expect(gone(pid), `old worker ${pid} is gone`).to.equal(true);
  });

  it('retire hands a slot over (the pool wants one less); refill starts the retired slots again', async () => {
    h = harness(2);
    await h.pool.startAll();
    const [, second] = h.pool.info();
    await h.pool.retire(1);
    expect(gone(second!.pid!)).to.equal(true);
    expect(states(h)).to.deep.equal(['ready', 'retired']);
    expect([h.pool.wanted, h.pool.readyCount]).to.deep.equal([1, 1]);
    await h.pool.retire(9); // no such slot: nothing happens
    await h.pool.refill();
    expect(states(h)).to.deep.equal(['ready', 'ready']);
    expect(h.pool.info()[1]!.pid).not.to.equal(second!.pid);
  });

  it('drain stops every worker (SIGTERM) and no slot restarts; restart brings them all up again', async () => {
    h = harness(2);
    await h.pool.startAll();
    const pids = h.pool.pids();
    await h.pool.drain();
    for (const pid of pids) expect(gone(pid)).to.equal(true);
    expect(states(h)).to.deep.equal(['stopped', 'stopped']);
    expect(h.logs.filter((l) => l.fields?.event === 'worker.crashed')).to.deep.equal([]);
    await h.pool.restart();
    expect(states(h)).to.deep.equal(['ready', 'ready']);
  });
});
