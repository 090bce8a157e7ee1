/** The Supervisor's options, checked, and its restart policy. */
import { expect } from 'chai';
import { checkSupervisorOptions, restartDue, type SupervisorOptions } from '../../src/supervisor/options.js';

describe('supervisor/options', () => {
  it('checkSupervisorOptions accepts a command with options in range', () => {
    expect(() => checkSupervisorOptions({ command: 'node', restart: 'on-failure', restartDelay: 0, maxRestarts: 3, killTimeout: 500 })).not.to.throw();
  });

  const bad: [Record<string, unknown>, string][] = [
    [{ command: '' }, 'Supervisor: a command to run is required'],
    [{}, 'Supervisor: a command to run is required'],
    [{ command: 'node', restartDelay: -1 }, 'Supervisor: restartDelay must be a whole number >= 0, got -1'],
    [{ command: 'node', killTimeout: 1.5 }, 'Supervisor: killTimeout must be a whole number >= 0, got 1.5'],
    [{ command: 'node', maxRestarts: '2' }, 'Supervisor: maxRestarts must be a whole number >= 0, got 2'],
    [{ command: 'node', restart: 'sometimes' }, 'Supervisor: restart must be no, on-failure or always, got "sometimes"'],
  ];
  for (const [options, message] of bad) {
    it(`refuses ${JSON.stringify(options)} with ERR_GRACEFUL_INVALID_ARGUMENT`, () => {
      expect(() => checkSupervisorOptions(options as unknown as SupervisorOptions)).to.throw(message).with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    });
  }

  it('restartDue: never by default, always with always, after a failure with on-failure, up to maxRestarts', () => {
    expect([restartDue({}, true, 0), restartDue({ restart: 'no' }, true, 0)]).to.deep.equal([false, false]);
    expect([restartDue({ restart: 'always' }, false, 0), restartDue({ restart: 'always' }, true, 1_000)]).to.deep.equal([true, true]);
    expect([restartDue({ restart: 'on-failure' }, true, 0), restartDue({ restart: 'on-failure' }, false, 0)]).to.deep.equal([true, false]);
    expect([restartDue({ restart: 'always', maxRestarts: 2 }, true, 1), restartDue({ restart: 'always', maxRestarts: 2 }, true, 2)]).to.deep.equal([true, false]);
    expect(restartDue({ restart: 'always', maxRestarts: 0 }, true, 0)).to.equal(false);
  });
});
