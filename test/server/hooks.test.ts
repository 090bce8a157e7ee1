/** Hooks: order, the first error stops a kind, stop hooks get an abort signal at the deadline and are left behind. */
import { expect } from 'chai';
import { Hooks } from '../../src/server/hooks.js';

describe('hooks', () => {
  it('runs the hooks of a kind one after another, in registration order; the first error stops the run and is thrown', async () => {
    const hooks = new Hooks();
    const seen: string[] = [];
    hooks.add('ready', async () => {
      await new Promise((r) => setImmediate(r));
      seen.push('a');
    });
    hooks.add('ready', () => {
      seen.push('b');
    });
    hooks.add('started', () => {
      seen.push('other kind');
    });
    await hooks.run('ready');
    expect(seen).to.deep.equal(['a', 'b']);
    hooks.add('ready', () => {
      throw new Error('no');
    });
    hooks.add('ready', () => {
      seen.push('never');
    });
    seen.length = 0;
    await hooks.run('ready').then(() => expect.fail('should reject'), (err: Error) => expect(err.message).to.equal('no'));
    expect(seen).to.deep.equal(['a', 'b']);
  });

  it('runStop: done, the first error, or overran at the deadline with the signal aborted', async () => {
    const none = new Hooks();
    expect(await none.runStop(Date.now() + 1000)).to.equal('done');
    const failing = new Hooks();
    failing.add('stop', () => Promise.reject(new Error('stop failed')));
    expect(((await failing.runStop(Date.now() + 1000)) as Error).message).to.equal('stop failed');
    const slow = new Hooks();
    let signal: AbortSignal | undefined;
    slow.add('stop', (s: AbortSignal) => {
      signal = s;
      return new Promise<void>((resolve) => s.addEventListener('abort', () => setTimeout(resolve, 5000).unref()));
    });
    const started = Date.now();
    expect(await slow.runStop(Date.now() + 100)).to.equal('overran');
    expect(Date.now() - started).to.be.below(2000);
    expect(signal!.aborted).to.equal(true);
  });
});
