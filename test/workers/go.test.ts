/**
 * go.ts: a worker's waitForGo resolves true on the go byte and false at EOF
 * (the start called off), and closes its descriptor either way; GoSignal
 * writes to every worker, and its close before go() is each one's EOF.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import { GO_NAME, GoSignal, waitForGo } from '../../src/workers/go.js';
import { openFds } from '../helpers.js';

describe('workers/go', () => {
  it('GoSignal.go(): every worker\'s waitForGo resolves true, and its descriptor is closed', async () => {
    const before = openFds().length;
    const signal = new GoSignal();
    const ends = [signal.pair(), signal.pair(), signal.pair()];
    expect(ends.map((e) => e.meta.name)).to.deep.equal([GO_NAME, GO_NAME, GO_NAME]);
    const waits = ends.map((e) => waitForGo(e.take()));
    signal.go();
    expect(await Promise.all(waits)).to.deep.equal([true, true, true]);
    signal.close();
    expect(openFds().length).to.equal(before);
  });

  it('GoSignal.close() before go(): each worker reads EOF, so waitForGo resolves false', async () => {
    const before = openFds().length;
    const signal = new GoSignal();
    const waits = [signal.pair(), signal.pair()].map((e) => waitForGo(e.take()));
    signal.close();
    signal.close(); // a second close is a no-op
    expect(await Promise.all(waits)).to.deep.equal([false, false]);
    expect(openFds().length).to.equal(before);
  });

  it('go() throws once a worker\'s end is gone (a worker that died between ready and go)', () => {
    const signal = new GoSignal();
    const end = signal.pair();
    end.close();
    try {
      expect(() => signal.go()).to.throw().with.property('code', 'EPIPE');
    } finally {
      signal.close();
    }
  });

  it('waitForGo closes the descriptor it was given', async () => {
    const signal = new GoSignal();
    const fd = signal.pair().take();
    // What the number names (socket:[inode]): a listing of /proc/self/fd may itself take the number once it is free.
    const named = () => { try { return fs.readlinkSync(`/proc/self/fd/${fd}`); } catch { return null; } };
    const socket = named();
    expect(socket).to.match(/^socket:/);
    const waiting = waitForGo(fd);
    signal.go();
    await waiting;
    expect(named()).not.to.equal(socket);
    signal.close();
  });
});
