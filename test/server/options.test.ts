/** Options: defaults, the environment's overrides, the checks, and configuration files. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import {
  CONFIG_KEYS, DEFAULT_IDLE_GRACE, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_TAKE_BACK_WINDOW, DEFAULT_UPGRADE_TIMEOUT, DEFAULT_WORKER_KILL_TIMEOUT, DEFAULT_WORKER_LIVENESS_TIMEOUT,
  checkRunlevel, readConfigFile, resolveOptions,
} from '../../src/server/options.js';
import { tmpDir } from '../helpers.js';

describe('options', () => {
  it('applies the defaults, and the environment over the options', () => {
    expect(resolveOptions({}, {})).to.include({
      upgradeTimeout: DEFAULT_UPGRADE_TIMEOUT, shutdownTimeout: DEFAULT_SHUTDOWN_TIMEOUT, idleGrace: DEFAULT_IDLE_GRACE,
      takeBackWindow: DEFAULT_TAKE_BACK_WINDOW, runlevel: 3,
    });
    const env = { GRACEFUL_UPGRADE_TIMEOUT: '2', GRACEFUL_SHUTDOWN_TIMEOUT: '0.5', GRACEFUL_RUNLEVEL: '1' };
    expect(resolveOptions({ upgradeTimeout: 9, shutdownTimeout: 9, runlevel: 3 }, env)).to.include({ upgradeTimeout: 2000, shutdownTimeout: 500, runlevel: 1 });
  });

  it('refuses what makes no sense, naming the option or variable', () => {
    expect(() => resolveOptions({}, { GRACEFUL_SHUTDOWN_TIMEOUT: 'soon' })).to.throw('GRACEFUL_SHUTDOWN_TIMEOUT must be a positive number of seconds, got "soon"')
      .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    expect(() => resolveOptions({ upgradeTimeout: 0 }, {})).to.throw('upgradeTimeout must be a positive number of ms, got 0');
    expect(() => resolveOptions({ takeBackWindow: -1 }, {})).to.throw('takeBackWindow must be a non-negative number of ms, got -1');
    expect(() => resolveOptions({}, { GRACEFUL_RUNLEVEL: '0' })).to.throw('the default runlevel must be 1 or 3');
    expect(() => resolveOptions({}, { GRACEFUL_RUNLEVEL: '2' })).to.throw(/runlevel must be 0 \(halt\), 1 .* or 3 \(serving\), got "2"/)
      .with.property('code', 'ERR_GRACEFUL_INVALID_RUNLEVEL');
  });

  it('workerLivenessTimeout and workerKillTimeout: defaults 3 s and 10 s, the environment in seconds (0: off), checked', () => {
    expect(DEFAULT_WORKER_LIVENESS_TIMEOUT).to.equal(3000);
    expect(DEFAULT_WORKER_KILL_TIMEOUT).to.equal(10_000);
    expect(resolveOptions({}, {})).to.include({ workerLivenessTimeout: 3000, workerKillTimeout: 10_000 });
    expect(resolveOptions({ workerLivenessTimeout: 500, workerKillTimeout: 0 }, {})).to.include({ workerLivenessTimeout: 500, workerKillTimeout: 0 });
    expect(resolveOptions({ workerLivenessTimeout: 500 }, { GRACEFUL_WORKER_LIVENESS_TIMEOUT: '1.5', GRACEFUL_WORKER_KILL_TIMEOUT: '4' }))
      .to.include({ workerLivenessTimeout: 1500, workerKillTimeout: 4000 });
    expect(resolveOptions({}, { GRACEFUL_WORKER_LIVENESS_TIMEOUT: '0', GRACEFUL_WORKER_KILL_TIMEOUT: '0' })).to.include({ workerLivenessTimeout: 0, workerKillTimeout: 0 });
    expect(CONFIG_KEYS.has('workerLivenessTimeout') && CONFIG_KEYS.has('workerKillTimeout')).to.equal(true);
    expect(() => resolveOptions({ workerLivenessTimeout: -1 }, {})).to.throw('workerLivenessTimeout must be a non-negative number of ms (0: off), got -1')
      .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    expect(() => resolveOptions({ workerKillTimeout: '10' as unknown as number }, {})).to.throw('workerKillTimeout must be a non-negative number of ms (0: off), got "10"');
    expect(() => resolveOptions({}, { GRACEFUL_WORKER_KILL_TIMEOUT: 'soon' })).to.throw('GRACEFUL_WORKER_KILL_TIMEOUT must be a non-negative number of seconds (0: off), got "soon"')
      .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    expect(() => resolveOptions({ workerLivenessTimeout: 5000, workerKillTimeout: 4000 }, {})).to.throw('workerKillTimeout (4000 ms) must be at least workerLivenessTimeout (5000 ms), or 0 (never killed)');
    expect(() => resolveOptions({ workerKillTimeout: 2 ** 31 }, {})).to.throw(`workerKillTimeout must be at most ${2 ** 31 - 1} ms (a Node.js timer's limit), got ${2 ** 31}`);
    expect(() => resolveOptions({ workerLivenessTimeout: 0 }, {})).to.throw('workerKillTimeout (10000 ms) needs the liveness check: workerLivenessTimeout is 0');
  });

  it('checkRunlevel reads numbers and one-digit strings', () => {
    expect([0, 1, 3, '0', '1', '3'].map(checkRunlevel)).to.deep.equal([0, 1, 3, 0, 1, 3]);
    for (const bad of [2, '13', '', null, 3.5]) expect(() => checkRunlevel(bad)).to.throw().with.property('code', 'ERR_GRACEFUL_INVALID_RUNLEVEL');
  });

  it('reads a configuration file with placeholders; an unknown key is ERR_GRACEFUL_CONFIG listing the known ones', () => {
    const dir = tmpDir();
    const good = path.join(dir, 'good.json');
    process.env.GR_TEST_WINDOW = '250';
    try {
      fs.writeFileSync(good, JSON.stringify({ takeBackWindow: '{$GR_TEST_WINDOW}', pidFile: '/run/{$GR_TEST_WINDOW}.pid' }));
      expect(readConfigFile(good)).to.deep.equal({ takeBackWindow: 250, pidFile: '/run/250.pid' });
    } finally {
      delete process.env.GR_TEST_WINDOW;
    }
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ upgradeTimout: 5 }));
    expect(() => readConfigFile(bad)).to.throw(`${bad}: unknown option "upgradeTimout"; known: ${[...CONFIG_KEYS].join(', ')}`)
      .with.property('code', 'ERR_GRACEFUL_CONFIG');
  });
});
