/** Exit statuses: the code a shell reports, signal names, the words of the log, a generation's report. */
import { expect } from 'chai';
import { describeStatus, exitCodeOf, parseExitReport, signalName } from '../../src/supervisor/exit-status.js';

describe('supervisor/exit-status', () => {
  it('exitCodeOf: the code, or 128 + the signal number, or 1 when neither is known', () => {
    expect(exitCodeOf({ code: 0, signal: null })).to.equal(0);
    expect(exitCodeOf({ code: 3, signal: null })).to.equal(3);
    expect(exitCodeOf({ code: null, signal: 'SIGKILL' })).to.equal(137);
    expect(exitCodeOf({ code: null, signal: 'SIGTERM' })).to.equal(143);
    expect(exitCodeOf({ code: null, signal: null })).to.equal(1);
  });

  it('signalName: the name of a signal number, null for a number that is none', () => {
    expect([signalName(9), signalName(15), signalName(4_242)]).to.deep.equal(['SIGKILL', 'SIGTERM', null]);
  });

  it('describeStatus says how a process ended', () => {
    expect(describeStatus({ code: 2, signal: null })).to.equal('exited with code 2');
    expect(describeStatus({ code: null, signal: 'SIGKILL' })).to.equal('was killed by SIGKILL');
  });

  it('parseExitReport reads "<pid> <code>" and "<pid> <SIGNAL>", nothing else', () => {
    expect(parseExitReport('4242 3')).to.deep.equal({ pid: 4242, status: { code: 3, signal: null } });
    expect(parseExitReport('4242 SIGTERM')).to.deep.equal({ pid: 4242, status: { code: null, signal: 'SIGTERM' } });
    for (const bad of ['', '4242', '4242 term', 'x 3', '4242 3 4', ' 4242 3']) expect(parseExitReport(bad), bad).to.equal(null);
  });
});
