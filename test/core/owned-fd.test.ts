/** owned-fd.ts: a descriptor with exactly one owner. */
import { expect } from 'chai';
import fs from 'node:fs';
import { OwnedFd, closeOwned } from '../../src/owned-fd.js';
import { fdCount } from '../helpers.js';

const isOpen = (fd: number): boolean => fs.existsSync(`/proc/self/fd/${fd}`);

describe('owned-fd', () => {
  let before: number;
  beforeEach(() => {
    before = fdCount();
  });

  it('close closes once; a second close does nothing; fd then throws ERR_GRACEFUL_CLOSED naming it', () => {
    const n = fs.openSync('/dev/null', 'r');
    const o = new OwnedFd(n, { name: 'http' });
    expect(o.open).to.equal(true);
    expect(o.fd).to.equal(n);
    expect(o.meta).to.deep.equal({ name: 'http' });
    o.close();
    expect(isOpen(n)).to.equal(false);
    expect(o.open).to.equal(false);
    const again = fs.openSync('/dev/null', 'r'); // very likely the same number: must not be closed by o
    o.close();
    expect(isOpen(again)).to.equal(true);
    fs.closeSync(again);
    expect(() => o.fd).to.throw('the descriptor "http" was closed or given away already').with.property('code', 'ERR_GRACEFUL_CLOSED');
    expect(fdCount()).to.equal(before);
  });

  it('take gives the descriptor away: the object no longer closes it', () => {
    const n = fs.openSync('/dev/null', 'r');
    const o = new OwnedFd(n);
    expect(o.take()).to.equal(n);
    expect(o.open).to.equal(false);
    o.close();
    expect(isOpen(n)).to.equal(true);
    expect(() => o.take()).to.throw('the descriptor "?" was closed or given away already').with.property('code', 'ERR_GRACEFUL_CLOSED');
    fs.closeSync(n);
    expect(fdCount()).to.equal(before);
  });

  it('closeOwned closes every one, and throws the first error after all were closed', () => {
    const a = fs.openSync('/dev/null', 'r');
    const b = fs.openSync('/dev/null', 'r');
    const c = fs.openSync('/dev/null', 'r');
    closeOwned([new OwnedFd(a), new OwnedFd(b)]);
    expect(isOpen(a) || isOpen(b)).to.equal(false);
    // One closed behind its owner's back (a bug): EBADF, and the others are still closed.
    const x = fs.openSync('/dev/null', 'r');
    const stale = new OwnedFd(x);
    fs.closeSync(x);
    const owned = [stale, new OwnedFd(c)];
    expect(() => closeOwned(owned)).to.throw().with.property('code', 'EBADF');
    expect(isOpen(c)).to.equal(false);
    expect(owned.every((o) => !o.open)).to.equal(true);
    expect(fdCount()).to.equal(before);
  });
});
