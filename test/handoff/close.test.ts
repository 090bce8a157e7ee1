/** handoff/close.ts: closing descriptors the hand-off owns, loudly on a double close. */
import { expect } from 'chai';
import fs from 'node:fs';
import { closeAll } from '../../src/handoff/close.js';
import { fdCount } from '../helpers.js';

/** warningsDuring runs fn with this file's own warning listener in place of the others (the run fails on any warning otherwise). */
async function warningsDuring(fn: () => void): Promise<Error[]> {
  const others = process.listeners('warning');
  process.removeAllListeners('warning');
  const seen: Error[] = [];
  const mine = (w: Error) => seen.push(w);
  process.on('warning', mine);
  try {
    fn();
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
  } finally {
    process.off('warning', mine);
    for (const l of others) process.on('warning', l);
  }
  return seen;
}

describe('handoff/close', () => {
  it('closeAll closes every descriptor', async () => {
    const before = fdCount();
    const fds = [fs.openSync('/dev/null', 'r'), fs.openSync('/dev/null', 'r'), fs.openSync('/dev/null', 'r')];
    expect(await warningsDuring(() => closeAll(fds))).to.deep.equal([]);
    expect(fdCount()).to.equal(before);
    closeAll([]);
  });

  it('a descriptor closed already becomes a GRACEFUL_EBADF process warning, and the rest are still closed', async () => {
    const before = fdCount();
    const gone = fs.openSync('/dev/null', 'r');
    const live = fs.openSync('/dev/null', 'r');
    fs.closeSync(gone);
    const seen = await warningsDuring(() => closeAll([gone, live]));
    expect(seen).to.have.length(1);
    expect(seen[0]).to.include({ code: 'GRACEFUL_EBADF', message: `close(${gone}) failed with EBADF: the descriptor was closed already (closed twice, or never ours)` });
    expect(fdCount()).to.equal(before);
  });
});
