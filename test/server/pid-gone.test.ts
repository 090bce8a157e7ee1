/**
 * server/pid-gone.ts: pidGone resolves once a process exits, through a pidfd,
 * or by asking running() every 100 ms where no pidfd can be had.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { alive, pidGone } from '../../src/server/pid-gone.js';
import { fdCount, gone, until } from '../helpers.js';

describe('server/pid-gone', () => {
  it('pidGone resolves once a process exits, and leaves no descriptor open', async () => {
    const before = fdCount();
    const sleeper = spawn(process.execPath, ['-e', 'process.stdin.once("data", () => {})'], { stdio: ['pipe', 'ignore', 'ignore'] });
    await once(sleeper, 'spawn');
    let resolved = false;
    const exited = pidGone(sleeper.pid!).then(() => (resolved = true));
    await new Promise((r) => setImmediate(r));
    expect(resolved, 'resolved while the process runs').to.equal(false);
    sleeper.stdin!.end('x');
    await exited;
    expect(gone(sleeper.pid!)).to.equal(true);
    await once(sleeper, 'close');
    expect(fdCount()).to.equal(before);
  });

  it('pidGone resolves at once for a pid that runs no process', async () => {
    await pidGone(2 ** 22 + 1);
  });

  it('without a pidfd (no such process to open), it asks running() until it says no', async () => {
    let running = true;
    let resolved = false;
    let asked = 0;
    const done = pidGone(2 ** 22 + 1, () => (asked++, running)).then(() => (resolved = true));
    await until(() => asked >= 3, 5_000, 'three questions'); // at the call, then every 100 ms
    expect(resolved).to.equal(false);
    running = false;
    await done;
  });

  it('alive: this process is, a pid without a process is not', () => {
    expect(alive(process.pid)).to.equal(true);
    expect(alive(2 ** 22 + 1)).to.equal(false);
  });
});
