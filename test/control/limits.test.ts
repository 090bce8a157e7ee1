/**
 * The control socket's bounds: defaults, overrides, and the coded refusal of
 * a bound that is not a positive integer or a mode that is not a file mode.
 */
import { expect } from 'chai';
import { CONTROL_DEFAULTS, resolveLimits } from '../../src/control/limits.js';
import { ControlServer } from '../../src/control/server.js';

describe('control limits', () => {
  it('resolveLimits: the defaults when nothing is given', () => {
    expect(resolveLimits({})).to.deep.equal({ ...CONTROL_DEFAULTS });
    expect(CONTROL_DEFAULTS).to.deep.equal({
      idleTimeout: 300_000, maxConnections: 64, probeConnections: 4, maxRefused: 16,
      lineTimeout: 10_000, writeTimeout: 10_000, maxQueuedLines: 32, maxOutputBytes: 1024 * 1024,
    });
  });

  it('resolveLimits: each bound given replaces its default; probeConnections may be 0', () => {
    const limits = resolveLimits({ maxConnections: 2, probeConnections: 0, lineTimeout: 400, mode: 0o660, allowUids: [1000], log: () => undefined });
    expect(limits).to.deep.equal({ ...CONTROL_DEFAULTS, maxConnections: 2, probeConnections: 0, lineTimeout: 400 });
  });

  for (const [key, value] of [['maxConnections', 0], ['maxRefused', 1.5], ['idleTimeout', -1], ['writeTimeout', '10'], ['probeConnections', -1]] as const) {
    it(`resolveLimits: ${key} ${JSON.stringify(value)} is refused, coded, naming the bound`, () => {
      expect(() => resolveLimits({ [key]: value } as never)).to.throw(`ControlServer: ${key} must be a positive integer, got ${String(value)}`)
        .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    });
  }

  it('resolveLimits: a mode that is not a file mode is refused, coded', () => {
    expect(() => resolveLimits({ mode: 0o1777 })).to.throw('controlSocket: mode must be a file mode such as 0o600, got 1023')
      .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
  });

  it('ControlServer checks its options with them, before it opens anything', () => {
    expect(() => new ControlServer('/nonexistent/c.sock', { maxQueuedLines: 0 })).to.throw('ControlServer: maxQueuedLines must be a positive integer, got 0');
    expect(new ControlServer('/nonexistent/c.sock', { idleTimeout: 1234 }).idleTimeout).to.equal(1234);
  });
});
