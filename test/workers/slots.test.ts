/**
 * slots.ts: the slot state table (every state has its row, the moves the
 * pool makes are allowed, the ones it must never make are refused), a move
 * outside the table reported and made, the crash backoff and crash loop,
 * and stopping and killing the workers of slots (real processes).
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import {
  BACKOFF_MAX_MS, BACKOFF_MIN_MS, CRASH_LOOP_COUNT, CRASH_LOOP_MS, SLOT_TRANSITIONS, Slot, canMove, killWorkers, makeSlots, stopWorkers, type WorkerState,
} from '../../src/workers/slots.js';

const STATES: WorkerState[] = ['starting', 'ready', 'unresponsive', 'restarting', 'crash-loop', 'draining', 'stopped', 'retired'];

/** live: a slot whose worker is a real process that ignores nothing (or SIGTERM, with ignoreTerm). */
function live(id: number, ignoreTerm = false): Slot {
  const slot = new Slot(id);
  const child = spawn(process.execPath, ['-e', `${ignoreTerm ? "process.on('SIGTERM', () => {});" : ''} setInterval(() => {}, 1000); console.log('up')`], { stdio: ['ignore', 'pipe', 'inherit'] });
  slot.child = child;
  slot.exited = new Promise((resolve) => child.once('exit', () => {
    slot.child = null;
    slot.move('stopped');
    resolve();
  }));
  slot.move('starting');
  slot.move('ready');
  return slot;
}

describe('workers/slots', () => {
  it('SLOT_TRANSITIONS has a row for each of the 8 states, naming only states', () => {
    expect(Object.keys(SLOT_TRANSITIONS).sort()).to.deep.equal([...STATES].sort());
    for (const to of Object.values(SLOT_TRANSITIONS).flat()) expect(STATES).to.include(to);
  });

  it('allows the moves of a worker\'s life: start, serve, crash, restart, crash loop, drain, retire, refill', () => {
    const allowed: [WorkerState, WorkerState][] = [
      ['stopped', 'starting'], ['starting', 'ready'], ['starting', 'stopped'], ['ready', 'draining'], ['draining', 'stopped'],
      ['ready', 'restarting'], ['restarting', 'starting'], ['ready', 'crash-loop'], ['stopped', 'restarting'], ['stopped', 'crash-loop'],
      ['crash-loop', 'stopped'], ['restarting', 'stopped'], ['stopped', 'retired'], ['retired', 'starting'], ['retired', 'stopped'],
      ['ready', 'stopped'], ['stopped', 'stopped'], ['draining', 'draining'],
      // the liveness check: silent, answers again, or killed past the kill timeout (a crash)
      ['ready', 'unresponsive'], ['unresponsive', 'ready'], ['unresponsive', 'restarting'], ['unresponsive', 'crash-loop'],
      ['unresponsive', 'draining'], ['unresponsive', 'stopped'], ['unresponsive', 'retired'],
    ];
    for (const [from, to] of allowed) expect(canMove(from, to), `${from} -> ${to}`).to.equal(true);
  });

  it('refuses the moves the pool must never make', () => {
    const refused: [WorkerState, WorkerState][] = [
      ['stopped', 'draining'], ['starting', 'starting'], ['starting', 'restarting'], ['starting', 'retired'], ['ready', 'ready'], ['ready', 'starting'],
      ['crash-loop', 'starting'], ['crash-loop', 'ready'], ['crash-loop', 'restarting'], ['draining', 'ready'], ['draining', 'starting'],
      ['draining', 'restarting'], ['restarting', 'ready'], ['restarting', 'restarting'], ['retired', 'ready'], ['retired', 'retired'],
      // only a serving worker can stop answering
      ['starting', 'unresponsive'], ['stopped', 'unresponsive'], ['restarting', 'unresponsive'], ['draining', 'unresponsive'],
      ['unresponsive', 'unresponsive'], ['unresponsive', 'starting'],
    ];
    for (const [from, to] of refused) expect(canMove(from, to), `${from} -> ${to}`).to.equal(false);
  });

  it('a slot starts stopped; a move outside the table is reported with the two states, and made', () => {
    const bugs: string[] = [];
    const [slot] = makeSlots(1, (msg, from, to) => bugs.push(`${from}>${to}: ${msg}`));
    expect(slot!.state).to.equal('stopped');
    slot!.move('starting');
    slot!.move('ready');
    expect(bugs).to.deep.equal([]);
    slot!.move('starting');
    expect(slot!.state).to.equal('starting');
    expect(bugs).to.deep.equal(['ready>starting: worker slot 0 moved from ready to starting, which SLOT_TRANSITIONS does not allow (a bug of the worker pool)']);
  });

  it('crash: the backoff doubles from BACKOFF_MIN_MS up to BACKOFF_MAX_MS; CRASH_LOOP_COUNT crashes within CRASH_LOOP_MS are a crash loop', () => {
    const slot = new Slot(3);
    const t0 = 1_000_000;
    const delays = Array.from({ length: CRASH_LOOP_COUNT }, (_, i) => slot.crash(t0 + i));
    expect(delays.slice(0, -1)).to.deep.equal(Array.from({ length: CRASH_LOOP_COUNT - 1 }, (_, i) => Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** i)));
    expect(delays.at(-1)).to.equal(null);
    // Crashes older than CRASH_LOOP_MS are forgotten: the next one starts over.
    const later = new Slot(4);
    for (let i = 0; i < CRASH_LOOP_COUNT - 1; i++) later.crash(t0);
    expect(later.crash(t0 + CRASH_LOOP_MS)).to.equal(BACKOFF_MIN_MS);
    expect(later.crashes).to.deep.equal([t0 + CRASH_LOOP_MS]);
  });

  it('info: uptime only while its worker runs, the pid of its worker, its restarts, whether it responds and since when not', () => {
    const slot = new Slot(2);
    expect(slot.info(7)).to.deep.equal({ id: 2, pid: null, generation: 7, state: 'stopped', uptime: 0, restarts: 0, responding: null, unresponsiveSince: null });
    slot.move('starting');
    slot.move('ready');
    slot.readyAt = 10_000;
    slot.restarts = 2;
    expect(slot.info(7, 13_600)).to.deep.equal({ id: 2, pid: null, generation: 7, state: 'ready', uptime: 4, restarts: 2, responding: true, unresponsiveSince: null });
    slot.silentSince = 12_000;
    slot.move('unresponsive');
    expect(slot.info(7, 15_600)).to.deep.equal({
      id: 2, pid: null, generation: 7, state: 'unresponsive', uptime: 6, restarts: 2, responding: false, unresponsiveSince: new Date(12_000).toISOString(),
    });
  });

  it('stopWorkers: a slot without a worker is stopped and its pending restart called off; a worker drains on SIGTERM, and one that ignores it is killed after the grace', async () => {
    const waiting = new Slot(0);
    waiting.move('starting');
    waiting.move('ready');
    waiting.move('restarting');
    const restart = setTimeout(() => expect.fail('the restart of a stopped slot fired'), 60_000);
    waiting.timer = restart;
    const polite = live(1);
    const stubborn = live(2, true);
    await new Promise((r) => stubborn.child!.stdout!.once('data', r)); // its SIGTERM handler is in place
    const states: WorkerState[] = [];
    const stopping = stopWorkers([waiting, polite, stubborn], 300);
    states.push(waiting.state, polite.state, stubborn.state);
    const stubbornChild = stubborn.child!;
    await stopping;
    expect(states).to.deep.equal(['stopped', 'draining', 'draining']);
    expect([waiting.state, polite.state, stubborn.state]).to.deep.equal(['stopped', 'stopped', 'stopped']);
    expect(stubbornChild.signalCode).to.equal('SIGKILL');
    expect(waiting.timer).to.equal(null);
  });

  it('killWorkers: SIGKILL to each live worker, resolved once each exited', async () => {
    const a = live(0, true);
    const b = live(1, true);
    const idle = new Slot(2);
    const children = [a.child!, b.child!];
    await killWorkers([a, b, idle]);
    expect(children.map((c) => c.signalCode)).to.deep.equal(['SIGKILL', 'SIGKILL']);
    expect(idle.state).to.equal('stopped');
  });
});
