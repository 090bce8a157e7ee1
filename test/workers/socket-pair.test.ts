/**
 * socket-pair.ts: a connected pair of UNIX stream sockets, both ends
 * close-on-exec, non-blocking and labelled, bytes both ways, nothing left
 * behind (no descriptor, no file), and the errno when the process is out of
 * descriptors.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import { socketPair } from '../../src/workers/socket-pair.js';
import { O_CLOEXEC, O_NONBLOCK, fdFlags, openFds } from '../helpers.js';
import { distUrl, inFresh } from '../helpers/fresh.js';

describe('workers/socket-pair', () => {
  it('connects two UNIX stream sockets, close-on-exec, that carry bytes both ways', () => {
    const pair = socketPair('graceful:test');
    try {
      expect(pair.read.meta.name).to.equal('graceful:test');
      expect(pair.write.meta.name).to.equal('graceful:test');
      for (const end of [pair.read, pair.write]) {
        expect(fdFlags(end.fd) & O_CLOEXEC, 'close-on-exec').to.equal(O_CLOEXEC);
        expect(fdFlags(end.fd) & O_NONBLOCK, 'non-blocking').to.equal(O_NONBLOCK);
        expect(fs.readlinkSync(`/proc/self/fd/${end.fd}`)).to.match(/^socket:/);
      }
      fs.writeSync(pair.write.fd, 'to the worker');
      const buf = Buffer.alloc(64);
      expect(buf.subarray(0, fs.readSync(pair.read.fd, buf)).toString()).to.equal('to the worker');
      fs.writeSync(pair.read.fd, 'back');
      expect(buf.subarray(0, fs.readSync(pair.write.fd, buf)).toString()).to.equal('back');
    } finally {
      pair.read.close();
      pair.write.close();
    }
  });

  it('leaves no descriptor behind, over 200 pairs', () => {
    const fds = openFds().length;
    for (let i = 0; i < 200; i++) {
      const pair = socketPair('graceful:test');
      pair.read.close();
      pair.write.close();
    }
    expect(openFds().length).to.equal(fds);
  });

  it('out of descriptors: EMFILE from socketpair, and no descriptor left open (fresh process, prlimit)', () => {
    const program = `
      const { socketPair } = await import(${JSON.stringify(distUrl('src/workers/socket-pair.js'))});
      const fs = await import('node:fs');
      const held = [];
      let error = null;
      for (;;) {
        try { const p = socketPair('graceful:test'); held.push(p.read, p.write); } catch (err) { error = err; break; }
        if (held.length > 2000) break;
      }
      const open = fs.readdirSync('/proc/self/fd').length;
      for (const end of held) end.close();
      console.log(JSON.stringify({ code: error?.code, syscall: error?.syscall, pairs: held.length / 2, after: fs.readdirSync('/proc/self/fd').length, open }));`;
    const got = inFresh(program, { under: ['prlimit', '--nofile=64'] }) as { code: string; syscall: string; pairs: number; after: number; open: number };
    expect(got).to.include({ code: 'EMFILE', syscall: 'socketpair' });
    expect(got.pairs).to.be.above(5);
    // Every descriptor the failing call might have made is closed: what is open after is what was before the pairs.
    expect(got.after).to.equal(got.open - 2 * got.pairs);
  });
});
