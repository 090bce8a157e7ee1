/** Signals, sent for real to this process: what each one does, the second SIGINT, and removal. */
import { expect } from 'chai';
import { installSignals } from '../../src/server/signals.js';

function once(record: string[], what: string): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (record.includes(what)) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
}

describe('signals', () => {
  it('SIGTERM and SIGINT stop, a SIGINT while stopping forces, SIGHUP redeploys, SIGUSR2 runs its task; removal restores the defaults', async () => {
    const seen: string[] = [];
    let stopping = false;
    const before = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR2'].map((s) => process.listenerCount(s));
    const remove = installSignals({ sigusr2: 'reopen' }, {
      redeploy: () => seen.push('redeploy'),
      stop: () => seen.push(seen.includes('stop') ? 'stop 2' : 'stop'),
      force: () => seen.push('force'),
      runTask: (name, sig) => seen.push(`task ${name} ${sig}`),
      stopping: () => stopping,
    });
    try {
      process.kill(process.pid, 'SIGHUP');
      await once(seen, 'redeploy');
      process.kill(process.pid, 'SIGUSR2');
      await once(seen, 'task reopen SIGUSR2');
      process.kill(process.pid, 'SIGINT');
      await once(seen, 'stop');
      stopping = true;
      process.kill(process.pid, 'SIGINT');
      await once(seen, 'force');
      process.kill(process.pid, 'SIGTERM');
      await once(seen, 'stop 2');
      expect(seen).to.deep.equal(['redeploy', 'task reopen SIGUSR2', 'stop', 'force', 'stop 2']);
    } finally {
      remove();
    }
    expect(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR2'].map((s) => process.listenerCount(s))).to.deep.equal(before);
  });

  it('sighup: stop, or ignore (no action, and not the default death)', async () => {
    const seen: string[] = [];
    const actions = { redeploy: () => seen.push('redeploy'), stop: () => seen.push('stop'), force: () => seen.push('force'), runTask: () => undefined, stopping: () => false };
    const stop = installSignals({ sighup: 'stop' }, actions);
    process.kill(process.pid, 'SIGHUP');
    await once(seen, 'stop');
    stop();
    const ignore = installSignals({ sighup: 'ignore' }, actions);
    // A second handler shows when the signal has been delivered: the ignoring one did nothing meanwhile.
    const marker = installSignals({ sighup: 'stop' }, { ...actions, stop: () => seen.push('marker') });
    process.kill(process.pid, 'SIGHUP');
    await once(seen, 'marker');
    marker();
    ignore();
    expect(seen).to.deep.equal(['stop', 'marker']);
  });
});
