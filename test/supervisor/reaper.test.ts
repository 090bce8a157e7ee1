/**
 * The Reaper in a subreaper of its own (test/fixtures/reaper.ts): exit
 * statuses of libuv's children and of orphans, reports, and the end of the
 * processes left behind.
 */
import { expect } from 'chai';
import { spawnFixture } from '../helpers.js';

describe('supervisor/reaper', function () {
  this.timeout(20_000);

  it('remembers how its own children and the orphans ended, and ends the processes left behind', async () => {
    const child = spawnFixture('reaper');
    const { code } = await child.exited;
    expect(child.stderr.join('\n')).to.equal('');
    expect(code).to.equal(0);
    const lines = child.stdout.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).to.deep.equal([
      { spawned: { code: 3, signal: null } },
      { orphan: { code: null, signal: 'SIGTERM' } },
      { reported: { code: null, signal: 'SIGTERM' } },
      { leftovers: ['ending 1 process(es) left behind: <pid>'], alive: 0 },
      { done: true },
    ]);
  });
});
