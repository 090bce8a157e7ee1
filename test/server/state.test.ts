/** Lifecycle, the state machine alone: its transitions, its refusals (each with its code), and its queue. */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { Lifecycle } from '../../src/server/lifecycle.js';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

describe('lifecycle state machine', () => {
  it('allows only the transitions of its table', () => {
    const l = new Lifecycle();
    expect(l.state).to.equal('starting');
    expect(() => l.to('handing-over')).to.throw('no transition from starting to handing-over');
    l.to('ready');
    expect(l.wasReady).to.equal(true);
    l.to('handing-over', 42);
    expect(l.terminating).to.equal(true);
    l.to('taken-back');
    l.to('ready');
    l.to('handing-over', 43);
    l.to('draining');
    expect(() => l.to('taken-back'), 'no take-back once committed').to.throw('no transition from draining to taken-back');
    l.to('halting');
    l.to('halted');
    expect(() => l.to('ready')).to.throw();
  });

  it('refuses, each with its own code: not ready, in progress, handed over, terminating, twice ready', () => {
    const l = new Lifecycle();
    expect(codeOf(() => l.beginRedeploy())).to.equal('ERR_GRACEFUL_NOT_READY');
    expect(codeOf(() => l.checkTelinit(1))).to.equal('ERR_GRACEFUL_NOT_READY');
    l.checkReady();
    l.to('ready');
    expect(codeOf(() => l.checkReady())).to.equal('ERR_GRACEFUL_ALREADY_READY');
    const t = l.beginRedeploy();
    expect(codeOf(() => l.beginRedeploy())).to.equal('ERR_GRACEFUL_UPGRADE_IN_PROGRESS');
    expect(codeOf(() => l.checkTelinit(1))).to.equal('ERR_GRACEFUL_UPGRADE_IN_PROGRESS');
    expect(codeOf(() => l.checkTelinit(0)), 'a halt is always allowed').to.equal(undefined);
    l.endRedeploy(t);
    l.to('handing-over', 42);
    expect(codeOf(() => l.beginRedeploy())).to.equal('ERR_GRACEFUL_ALREADY_HANDED_OVER');
    expect(codeOf(() => l.checkTelinit(3))).to.equal('ERR_GRACEFUL_TERMINATING');
    l.to('draining');
    l.to('halting');
    expect(codeOf(() => l.beginRedeploy()), 'it handed over to 42').to.equal('ERR_GRACEFUL_ALREADY_HANDED_OVER');
    const halting = new Lifecycle();
    halting.to('ready');
    halting.to('halting');
    expect(codeOf(() => halting.beginRedeploy())).to.equal('ERR_GRACEFUL_TERMINATING');
    expect(codeOf(() => l.checkTelinit(0))).to.equal('ERR_GRACEFUL_TERMINATING');
    expect(codeOf(() => l.checkReady())).to.equal('ERR_GRACEFUL_TERMINATING');
  });

  it('runs transitions one at a time, in order, a failure not stopping the next', async () => {
    const l = new Lifecycle();
    const seen: string[] = [];
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const a = l.run(async () => {
      await gate; // a transition that takes its time: the next ones wait for it
      seen.push('a');
    });
    const b = l.run(async () => {
      seen.push('b');
      throw new Error('b failed');
    });
    const c = l.run(async () => seen.push('c'));
    await new Promise((r) => setImmediate(r));
    expect(seen, 'nothing runs while the first transition is under way').to.deep.equal([]);
    open();
    await a;
    await b.catch(() => undefined);
    await c;
    expect(seen).to.deep.equal(['a', 'b', 'c']);
  });

  it('waits for a predecessor that still runs: until it exits, or ERR_GRACEFUL_PREDECESSOR_RUNNING at the timeout', async () => {
    const proc = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    let running = true;
    const l = new Lifecycle({ predecessorRunning: () => (running ? { pid: proc.pid!, exited } : null) });
    l.to('ready');
    const log: string[] = [];
    const t1 = l.beginRedeploy();
    const err = await l.waitForPredecessor(t1, 100, (m) => log.push(m)).catch((e: Error & { code?: string }) => e);
    expect((err as { code?: string }).code).to.equal('ERR_GRACEFUL_PREDECESSOR_RUNNING');
    expect((err as Error).message).to.include(`(pid ${proc.pid}) still runs after 100 ms`);
    l.endRedeploy(t1);
    const t2 = l.beginRedeploy();
    const waiting = l.waitForPredecessor(t2, 10_000, (m) => log.push(m));
    proc.kill('SIGKILL');
    await waiting;
    running = false;
    l.endRedeploy(t2);
    expect(log[0]).to.equal(`redeploy: waiting for the instance this one replaced (pid ${proc.pid}) to exit first`);
    const t3 = l.beginRedeploy();
    await l.waitForPredecessor(t3, 10, () => expect.fail('no predecessor: no wait'));
    l.endRedeploy(t3);
  });

  it('asks a predecessor in its take-back window to commit first: no wait for its exit when it does; its exit when it does not answer', async () => {
    const never = new Promise<void>(() => undefined);
    let answer: 'committed' | 'closed' | null = 'committed';
    const asked: number[] = [];
    const l = new Lifecycle({
      predecessorRunning: () => ({ pid: 4242, exited: never, commit: (ms: number) => (asked.push(ms), Promise.resolve(answer)) }),
    });
    l.to('ready');
    const log: string[] = [];
    const committed: number[] = [];
    const t1 = l.beginRedeploy();
    await l.waitForPredecessor(t1, 10_000, (m) => log.push(m), (pid) => committed.push(pid));
    l.endRedeploy(t1);
    expect(committed).to.deep.equal([4242]);
    expect(asked).to.deep.equal([2000]);
    expect(log).to.deep.equal([]);
    answer = 'closed'; // its window had passed: no wait either, and no event (nothing was cut short)
    const t15 = l.beginRedeploy();
    await l.waitForPredecessor(t15, 10_000, (m) => log.push(m), (pid) => committed.push(pid));
    l.endRedeploy(t15);
    expect(committed).to.deep.equal([4242]);
    expect(log).to.deep.equal([]);
    answer = null; // no answer in time: the exit it is, within what is left of the timeout
    const t2 = l.beginRedeploy();
    const err = await l.waitForPredecessor(t2, 100, (m) => log.push(m), (pid) => committed.push(pid)).catch((e: Error & { code?: string }) => e);
    l.endRedeploy(t2);
    expect((err as { code?: string }).code).to.equal('ERR_GRACEFUL_PREDECESSOR_RUNNING');
    expect(asked).to.deep.equal([2000, 2000, 100]);
    expect(committed).to.deep.equal([4242]);
    expect(log).to.deep.equal([
      'redeploy: the instance this one replaced (pid 4242) did not answer a commit within 100 ms',
      'redeploy: waiting for the instance this one replaced (pid 4242) to exit first',
    ]);
  });
});
