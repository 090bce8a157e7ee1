/** Generations: real processes followed to their exit through a pidfd. */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Generations, processGone } from '../../src/supervisor/generations.js';
import { fdCount, until } from '../helpers.js';

describe('supervisor/generations', function () {
  this.timeout(10_000);

  function generations(): { g: Generations; gone: number[]; logged: string[] } {
    const gone: number[] = [];
    const logged: string[] = [];
    const g = new Generations({ gone: (pid) => gone.push(pid), poll: () => undefined, log: (m) => logged.push(m) });
    return { g, gone, logged };
  }

  it('follows each generation to its exit, tells it once, and releases its pidfd', async () => {
    const fds = fdCount();
    const { g, gone, logged } = generations();
    const a = spawn('sleep', ['30']);
    const b = spawn('sleep', ['30']);
    g.watch(a.pid!);
    g.watch(b.pid!);
    expect([g.size, g.pids(), g.has(a.pid!), g.polled(a.pid!)]).to.deep.equal([2, [a.pid, b.pid], true, false]);
    a.kill('SIGTERM');
    await until(() => gone.length === 1);
    expect([gone, g.pids(), processGone(a.pid!)]).to.deep.equal([[a.pid], [b.pid], true]);
    g.gone(a.pid!); // told once only
    expect(gone).to.deep.equal([a.pid]);
    b.kill('SIGTERM');
    await until(() => gone.length === 2);
    expect(g.size).to.equal(0);
    expect(logged).to.deep.equal([]);
    await until(() => fdCount() <= fds, 5_000, 'the pidfds to be closed');
  });

  it('a pid that is gone already is told on the next turn', async () => {
    const { g, gone } = generations();
    const child = spawn('true');
    await once(child, 'exit'); // reaped by libuv: no such process any more
    g.watch(child.pid!);
    expect(gone).to.deep.equal([]);
    await until(() => gone.length === 1);
    expect(gone).to.deep.equal([child.pid]);
  });

  it('closeAll stops following every generation and tells nobody', async () => {
    const { g, gone } = generations();
    const child = spawn('sleep', ['30']);
    g.watch(child.pid!);
    g.closeAll();
    expect(g.size).to.equal(0);
    child.kill('SIGKILL');
    await once(child, 'exit');
    await new Promise((r) => setImmediate(r));
    expect(gone).to.deep.equal([]);
  });

  it('processGone: a live process is not gone', () => {
    expect(processGone(process.pid)).to.equal(false);
  });
});
