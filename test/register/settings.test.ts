/** The register's settings from the environment: defaults, each form of --ready, and a coded error naming the variable. */
import { expect } from 'chai';
import path from 'node:path';
import { DEFAULT_SETTLE, parseReady, readSettings } from '../../src/register/settings.js';

describe('register/settings', () => {
  it('defaults: ready once listened, settle 500 ms, the deadline a second before the upgrade timeout', () => {
    const s = readSettings({});
    expect(s.ready).to.deep.equal({ kind: 'listen' });
    expect(s.settle).to.equal(DEFAULT_SETTLE);
    expect(s.listenDeadline).to.equal(59_000);
    expect(s.controlSocket).to.equal(undefined);
    expect(readSettings({ GRACEFUL_UPGRADE_TIMEOUT: '3' }).listenDeadline).to.equal(2_000);
  });

  it('--ready: listen, message, http:/path; paths become absolute', () => {
    expect(parseReady('message')).to.deep.equal({ kind: 'message' });
    expect(parseReady('http:/health?x=1')).to.deep.equal({ kind: 'http', path: '/health?x=1' });
    const s = readSettings({ GRACEFUL_CONTROL_SOCKET: 'app.sock', GRACEFUL_LOG_FILE: 'out.log', GRACEFUL_SETTLE: '0' });
    expect(s.controlSocket).to.equal(path.resolve('app.sock'));
    expect(s.logFile).to.equal(path.resolve('out.log'));
    expect(s.settle).to.equal(0);
  });

  it('a bad value is ERR_GRACEFUL_INVALID_ARGUMENT naming the variable and the forms', () => {
    for (const [env, name] of [[{ GRACEFUL_READY: 'soon' }, 'GRACEFUL_READY'], [{ GRACEFUL_READY: 'http:health' }, 'GRACEFUL_READY'], [{ GRACEFUL_SETTLE: '-1' }, 'GRACEFUL_SETTLE'], [{ GRACEFUL_SETTLE: '1.5' }, 'GRACEFUL_SETTLE']] as const) {
      expect(() => readSettings(env)).to.throw(name).with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    }
    expect(() => parseReady('x', '--ready')).to.throw(/--ready: must be listen, message or http:\/path/);
  });
});
