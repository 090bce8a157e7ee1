/** The supervisor's signal handlers, with real signals sent to this process. */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { FORWARDED_SIGNALS, listenToSignals } from '../../src/supervisor/signals.js';
import { until } from '../helpers.js';

describe('supervisor/signals: listenToSignals', () => {
  it('forwards SIGHUP and SIGUSR2 by name, calls child on SIGCHLD, and removes every handler it installed', async () => {
    const before = [...FORWARDED_SIGNALS, 'SIGCHLD'].map((s) => process.listenerCount(s));
    const forwarded: string[] = [];
    let children = 0;
    const unlisten = listenToSignals((sig) => forwarded.push(sig), () => children++);
    expect([...FORWARDED_SIGNALS, 'SIGCHLD'].map((s) => process.listenerCount(s))).to.deep.equal(before.map((n) => n + 1));
    process.kill(process.pid, 'SIGHUP');
    process.kill(process.pid, 'SIGUSR2');
    await until(() => forwarded.length === 2);
    expect(forwarded.sort()).to.deep.equal(['SIGHUP', 'SIGUSR2']);
    await once(spawn('true'), 'exit');
    await until(() => children > 0);
    unlisten();
    expect([...FORWARDED_SIGNALS, 'SIGCHLD'].map((s) => process.listenerCount(s))).to.deep.equal(before);
  });

  it('FORWARDED_SIGNALS: SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2', () => {
    expect(FORWARDED_SIGNALS).to.deep.equal(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2']);
  });
});
