/**
 * worker.ts: the role read from the environment the primary sets (a worker's
 * slot and its generation's size), and watchPrimary calling halt once the
 * primary is gone.
 */
import { expect } from 'chai';
import { WORKER_COUNT_ENV, WORKER_ENV } from '../../src/protocol.js';
import type { Predecessor } from '../../src/server/predecessor.js';
import { roleOf, watchPrimary } from '../../src/workers/worker.js';

describe('workers/worker', () => {
  it('roleOf: single without workers, primary with them, when no slot is in the environment', () => {
    expect(roleOf(0, {})).to.deep.equal({ role: 'single', workerId: null, workers: 0 });
    expect(roleOf(4, {})).to.deep.equal({ role: 'primary', workerId: null, workers: 4 });
  });

  it('roleOf: a worker when the primary named its slot; the count the primary set wins over the configured one', () => {
    expect(roleOf(4, { [WORKER_ENV]: '2', [WORKER_COUNT_ENV]: '3' })).to.deep.equal({ role: 'worker', workerId: 2, workers: 3 });
    expect(roleOf(4, { [WORKER_ENV]: '0' })).to.deep.equal({ role: 'worker', workerId: 0, workers: 4 });
    // A worker even if the program configures none: the primary's environment decides.
    expect(roleOf(0, { [WORKER_ENV]: '1', [WORKER_COUNT_ENV]: '2' })).to.deep.equal({ role: 'worker', workerId: 1, workers: 2 });
  });

  it('roleOf: a slot that is not a whole number is no slot', () => {
    for (const id of ['', '-1', '1.5', 'x', ' 1']) {
      expect(roleOf(2, { [WORKER_ENV]: id }).role, JSON.stringify(id)).to.equal('primary');
    }
  });

  it('roleOf reads process.env by default', () => {
    const saved = process.env[WORKER_ENV];
    process.env[WORKER_ENV] = '5';
    try {
      expect(roleOf(1).workerId).to.equal(5);
    } finally {
      if (saved === undefined) delete process.env[WORKER_ENV];
      else process.env[WORKER_ENV] = saved;
    }
  });

  it('watchPrimary calls halt once the primary has exited, not before', async () => {
    let exited!: () => void;
    const primary = { exited: () => new Promise<void>((r) => { exited = r; }) } as unknown as Predecessor;
    let halted = 0;
    watchPrimary(primary, () => { halted++; });
    await Promise.resolve();
    expect(halted).to.equal(0);
    exited();
    await new Promise((r) => setImmediate(r));
    expect(halted).to.equal(1);
  });
});
