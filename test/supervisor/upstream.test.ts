/** What the supervisor passes on to its own service manager, received on a real notify socket. */
import { expect } from 'chai';
import { relay, relayedLines } from '../../src/supervisor/upstream.js';
import { notifyReader, tmpDir } from '../helpers.js';

describe('supervisor/upstream', function () {
  this.timeout(20_000);

  it('relayedLines keeps what a service manager understands and drops what is between the application and the supervisor', () => {
    const fields = new Map([['READY', '1'], ['MAINPID', '42'], ['STATUS', 'serving'], ['X_GRACEFUL_CONTROL', '/run/app.sock'], ['FDSTORE', '1'], ['RELOADING', '1'], ['BARRIER', '1']]);
    expect(relayedLines(fields)).to.deep.equal(['READY=1', 'STATUS=serving', 'RELOADING=1']);
  });

  it('relay sends those lines in one datagram, and nothing without an upstream socket or a line to send', async () => {
    const reader = await notifyReader(tmpDir());
    try {
      relay(undefined, new Map([['READY', '1']]));
      relay(reader.path, new Map([['MAINPID', '42']]));
      relay(reader.path, new Map([['READY', '1'], ['MAINPID', '42'], ['STATUS', 'up']]));
      expect(await reader.next()).to.equal('READY=1;STATUS=up');
      expect(reader.notes()).to.have.length(1);
    } finally {
      reader.child.kill('SIGKILL');
      await reader.child.exited;
    }
  });
});
