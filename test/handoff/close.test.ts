/** handoff/close.ts: closing descriptors in batches, loudly on a double close; closeFds for a caller that discards what it received. */
import { expect } from 'chai';
import fs from 'node:fs';
import { closeAll } from '../../src/handoff/close.js';
import { closeFds, HandoffConnection, type ReceivedFd } from '../../src/handoff.js';
import { fdCount, socketPair, tmpDir } from '../helpers.js';

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
  it('closeAll skips an entry that is no descriptor number, closing the rest', async () => {
    const before = fdCount();
    const fds = [fs.openSync('/dev/null', 'r'), fs.openSync('/dev/null', 'r')];
    const odd = [fds[0]!, NaN, -1, 1.5, 2 ** 31, fds[1]!] as number[];
    expect(await warningsDuring(() => closeAll(odd))).to.deep.equal([]);
    expect(fdCount()).to.equal(before);
  });

  it('closeAll closes a batch larger than its buffer', async () => {
    const before = fdCount();
    const fds = Array.from({ length: 600 }, () => fs.openSync('/dev/null', 'r'));
    expect(await warningsDuring(() => closeAll(fds))).to.deep.equal([]);
    expect(fdCount()).to.equal(before);
  });

  describe('closeFds', () => {
    let dir: string;
    beforeEach(() => {
      dir = tmpDir();
    });

    /** receivedOver sends n descriptors of /dev/null over a real socketpair and receives them with receiveBatch(). */
    async function receivedOver(n: number): Promise<{ got: ReceivedFd[]; close(): void }> {
      const [c, s] = await socketPair(dir);
      const a = new HandoffConnection(c);
      const b = new HandoffConnection(s);
      const files = Array.from({ length: n }, () => fs.openSync('/dev/null', 'r'));
      await a.send(files.map((fd, i) => ({ fd, meta: { i } })));
      closeAll(files);
      const got: ReceivedFd[] = [];
      while (got.length < n) got.push(...(await b.receiveBatch())!);
      return { got, close: () => (a.close(), b.close()) };
    }

    it('closes received descriptors given as records (receiveBatch) or numbers, in one call', async () => {
      const before = fdCount();
      for (const n of [1, 16, 253, 600]) {
        const { got, close } = await receivedOver(n);
        expect(got.map((r) => r.meta)).to.deep.equal(Array.from({ length: n }, (_, i) => ({ i })));
        const opened = fdCount();
        if (n === 16) closeFds(got.map((r) => r.fd));
        else closeFds(got);
        expect(fdCount()).to.equal(opened - n);
        close();
      }
      closeFds([]);
      expect(fdCount()).to.equal(before);
    });

    it('refuses anything but descriptors with ERR_GRACEFUL_INVALID_ARGUMENT, closing none', () => {
      const before = fdCount();
      const fd = fs.openSync('/dev/null', 'r');
      const bad: unknown[] = [[fd, -1], [fd, 1.5], [fd, NaN], [fd, '3'], [fd, null], [fd, {}], [fd, { fd: -2 }], [fd, 2 ** 31],
        [fd, undefined], new Array(1e9)];
      for (const items of bad) {
        expect(() => closeFds(items as number[])).to.throw(/^closeFds: item \d+ is not a descriptor .*: nothing was closed$/)
          .that.includes({ code: 'ERR_GRACEFUL_INVALID_ARGUMENT' });
      }
      for (const items of [null, undefined, 3, 'abc', { length: 1, 0: fd }, Int32Array.of(fd)]) {
        expect(() => closeFds(items as unknown as number[])).to.throw(/^closeFds: items must be an array/)
          .that.includes({ code: 'ERR_GRACEFUL_INVALID_ARGUMENT' });
      }
      expect(fdCount()).to.equal(before + 1); // fd is still open: nothing was closed
      fs.closeSync(fd);
      expect(fdCount()).to.equal(before);
    });

    it('closes every one past a failure, then throws the first like fs.closeSync (close EBADF)', () => {
      const before = fdCount();
      const gone = fs.openSync('/dev/null', 'r');
      fs.closeSync(gone);
      const live = [fs.openSync('/dev/null', 'r'), fs.openSync('/dev/null', 'r')];
      expect(() => closeFds([live[0]!, gone, { fd: live[1]! }])).to.throw('close EBADF (bad file descriptor)')
        .that.includes({ code: 'EBADF', errno: -9, syscall: 'close' });
      expect(fdCount()).to.equal(before);
    });
  });
});
