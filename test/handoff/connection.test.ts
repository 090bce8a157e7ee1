/**
 * HandoffConnection on real sockets: backpressure against a fast sender
 * (separate processes), receiveBatch, lazily decoded meta, and the kernel's
 * own error when the peer resets the connection.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { HandoffConnection, type ReceivedFd } from '../../src/index.js';
import { DEFAULT_HIGH_WATER_MARK } from '../../src/handoff/connection.js';
import { addon } from '../../src/native.js';
import { fdCount, socketPair, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

interface FloodSummary {
  count: number;
  outOfOrder: number;
  notOpen: number;
  maxHeld: number;
  leaked: number;
  error?: string;
}

/** tookSome resolves once the first of sends has resolved: the kernel took it, and the socket is being filled. */
function tookSome(sends: Promise<void>[]): Promise<boolean> {
  let sent = 0;
  for (const p of sends) p.then(() => sent++, () => undefined);
  return until(() => sent > 0, 5000, 'the kernel to take the first sends');
}

describe('HandoffConnection', () => {
  let dir: string;
  const children: Child[] = [];
  beforeEach(() => {
    dir = tmpDir();
  });
  afterEach(async () => {
    for (const c of children.splice(0)) {
      c.kill('SIGKILL');
      await c.exited;
    }
  });

  describe('backpressure: a fast sender and a slow consumer, in separate processes', () => {
    // The receiver holds at most the high-water mark plus one message's
    // descriptors beyond what the consumer has taken (and, here, not yet closed).
    for (const [perMessage, messages, how] of [[1, 20_000, 'one'], [16, 1_500, 'one'], [16, 1_500, 'batch']] as const) {
      it(`${messages * perMessage} descriptors, ${perMessage} per message, taken with ${how === 'one' ? 'receive()' : 'receiveBatch()'}: bounded and complete`, async function () {
        this.timeout(120_000);
        const sock = path.join(dir, 'flood.sock');
        const sender = spawnFixture('flood', ['send', sock, String(messages), String(perMessage)]);
        children.push(sender);
        await sender.next(/^listening$/);
        const receiver = spawnFixture('flood', ['recv', sock, how]);
        children.push(receiver);
        const summary = JSON.parse(await receiver.next(/^\{/, 100_000)) as FloodSummary;
        expect(JSON.parse(await sender.next(/^\{/))).to.deep.equal({ sent: messages * perMessage });
        expect(summary.error).to.equal(undefined);
        expect(summary).to.include({ count: messages * perMessage, outOfOrder: 0, notOpen: 0, leaked: 0 });
        // what the consumer holds itself: one record (receive) or one batch (receiveBatch, part of the bound)
        const bound = DEFAULT_HIGH_WATER_MARK + perMessage + (how === 'one' ? 1 : 0);
        expect(summary.maxHeld, 'descriptors held at once').to.be.at.most(bound);
        // it did fill up: the sender was faster than the consumer
        expect(summary.maxHeld).to.be.at.least(DEFAULT_HIGH_WATER_MARK / 2);
      });
    }

    it('in one process: reading stops at highWaterMark, resumes as receive() drains, and still sees the end', async () => {
      const [c, s] = await socketPair(dir);
      const sender = new HandoffConnection(c);
      const receiver = new HandoffConnection(s, { highWaterMark: 8 });
      const file = fs.openSync('/dev/null', 'r');
      const before = fdCount();
      const total = 200;
      // one message per send: every read brings one descriptor
      const sent = Promise.all(Array.from({ length: total }, (_, i) => sender.send([{ fd: file, meta: { i } }])));
      let got = 0;
      let maxHeld = 0;
      while (got < total) {
        // Reading fills the inbox to the mark in one poll callback, then stops: wait for that, then measure.
        for (let turns = 0; fdCount() - before < Math.min(8, total - got); turns++) {
          if (turns > 10_000) expect.fail(`the inbox did not fill: ${fdCount() - before} held`);
          await new Promise((r) => setImmediate(r));
        }
        maxHeld = Math.max(maxHeld, fdCount() - before);
        const r = await receiver.receive();
        expect(r?.meta).to.deep.equal({ i: got });
        fs.closeSync(r!.fd);
        got++;
      }
      await sent;
      expect(maxHeld).to.equal(8);
      sender.close();
      expect(await receiver.receive()).to.equal(null);
      receiver.close();
      expect(fdCount()).to.equal(before - 2);
      fs.closeSync(file);
    });
  });

  it('one message at a time, then a stream, then one at a time again: everything arrives, in order', async () => {
    const [c, s] = await socketPair(dir);
    const a = new HandoffConnection(c);
    const b = new HandoffConnection(s);
    const file = fs.openSync('/dev/null', 'r');
    const before = fdCount();
    let i = 0;
    const exchange = async (n: number) => {
      for (let k = 0; k < n; k++) {
        await a.send([{ fd: file, meta: { i } }]);
        const got = await b.receive();
        expect(got?.meta).to.deep.equal({ i: i++ });
        fs.closeSync(got!.fd);
      }
    };
    await exchange(40);
    const burst = Promise.all(Array.from({ length: 2000 }, (_, k) => a.send([{ fd: file, meta: { i: i + k } }])));
    for (let k = 0; k < 2000;) {
      for (const r of (await b.receiveBatch())!) {
        expect(r.meta).to.deep.equal({ i: i++ });
        fs.closeSync(r.fd);
        k++;
      }
    }
    await burst;
    await exchange(40);
    expect(fdCount()).to.equal(before);
    a.close();
    b.close();
    fs.closeSync(file);
  });

  describe('receiveBatch', () => {
    it('resolves with every record already received, in order, mixes with receive(), and ends with null', async () => {
      const [c, s] = await socketPair(dir);
      const sender = new HandoffConnection(c);
      const receiver = new HandoffConnection(s);
      const file = fs.openSync('/dev/null', 'r');
      const before = fdCount();
      const batchPromise = receiver.receiveBatch(); // waits: nothing has arrived yet
      await sender.send(Array.from({ length: 10 }, (_, i) => ({ fd: file, meta: { i } })));
      const first = (await batchPromise)!;
      // one message carried the 10 records, and one read brought them
      expect(first.map((r) => r.meta)).to.deep.equal(Array.from({ length: 10 }, (_, i) => ({ i })));
      await sender.send([{ fd: file, meta: { i: 10 } }, { fd: file, meta: { i: 11 } }, { fd: file, meta: { i: 12 } }]);
      const one = await receiver.receive();
      const rest = (await receiver.receiveBatch())!;
      expect([one, ...rest].map((r) => r!.meta)).to.deep.equal([{ i: 10 }, { i: 11 }, { i: 12 }]);
      expect(fdCount()).to.equal(before + 13);
      for (const r of [...first, one!, ...rest]) fs.closeSync(r.fd);
      sender.close();
      expect(await receiver.receiveBatch()).to.equal(null);
      receiver.close();
      fs.closeSync(file);
    });

    it('pending receiveBatch() and receive() are served in call order', async () => {
      const [c, s] = await socketPair(dir);
      const sender = new HandoffConnection(c);
      const receiver = new HandoffConnection(s);
      const file = fs.openSync('/dev/null', 'r');
      const a = receiver.receive();
      const b = receiver.receiveBatch();
      const d = receiver.receive();
      await sender.send([0, 1, 2].map((i) => ({ fd: file, meta: { i } })));
      expect((await a)?.meta).to.deep.equal({ i: 0 });
      expect((await b)?.map((r) => r.meta)).to.deep.equal([{ i: 1 }, { i: 2 }]);
      await sender.send([{ fd: file, meta: { i: 3 } }]);
      const last = await d;
      expect(last?.meta).to.deep.equal({ i: 3 });
      for (const r of [(await a)!, ...(await b)!, last!]) fs.closeSync(r.fd);
      const pending = receiver.receiveBatch();
      receiver.close();
      await pending.then(() => expect.fail('resolved after close'), (err) => expect(err).to.have.property('code', 'ERR_GRACEFUL_CLOSED'));
      sender.close();
      fs.closeSync(file);
    });
  });

  describe('send', () => {
    it('refuses a bad fd or meta with a coded error and goes on working', async () => {
      const [c, s] = await socketPair(dir);
      const sender = new HandoffConnection(c);
      const receiver = new HandoffConnection(s);
      const file = fs.openSync('/dev/null', 'r');
      for (const fd of [-1, 1.5, NaN]) {
        await sender.send([{ fd: file }, { fd }]).then(() => expect.fail('sent'), (err) => expect(err).to.have.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT'));
      }
      await sender.send([{ fd: file, meta: { nested: {} } as never }]).then(() => expect.fail('sent'), (err) => expect(err).to.have.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT'));
      // nothing of the refused sends went out
      await sender.send([{ fd: file, meta: { ok: 'é' } }, { fd: file, meta: Buffer.from([1]) }, { fd: file }]);
      const got = (await receiver.receiveBatch())!;
      expect(got.map((r) => r.raw.toString('hex'))).to.deep.equal([Buffer.from('{"ok":"é"}').toString('hex'), '01', '']);
      for (const r of got) fs.closeSync(r.fd);
      sender.close();
      receiver.close();
      fs.closeSync(file);
    });

    it('a send from inside another (a meta getter) encodes on its own', async () => {
      const [c, s] = await socketPair(dir);
      const sender = new HandoffConnection(c);
      const receiver = new HandoffConnection(s);
      const file = fs.openSync('/dev/null', 'r');
      let inner: Promise<void> | undefined;
      const meta = { a: 1 } as { a: number; b?: string };
      Object.defineProperty(meta, 'b', {
        enumerable: true,
        get() {
          inner ??= sender.send([{ fd: file, meta: { inner: true } }]);
          return 'outer';
        },
      });
      await sender.send([{ fd: file, meta }, { fd: file, meta: { after: true } }]);
      await inner;
      const got: ReceivedFd[] = [];
      while (got.length < 3) got.push(...(await receiver.receiveBatch())!);
      expect(got.map((r) => r.meta)).to.deep.equal([{ inner: true }, { a: 1, b: 'outer' }, { after: true }]);
      for (const r of got) fs.closeSync(r.fd);
      sender.close();
      receiver.close();
      fs.closeSync(file);
    });
  });

  describe('received records', () => {
    it('decode meta on first access and keep it; fd, meta and raw is what they show', async () => {
      const [c, s] = await socketPair(dir);
      const sender = new HandoffConnection(c);
      const receiver = new HandoffConnection(s);
      const file = fs.openSync('/dev/null', 'r');
      await sender.send([{ fd: file, meta: { name: 'a' } }, { fd: file, meta: Buffer.from('\x01\x02') }]);
      const [r1, r2] = (await receiver.receiveBatch()) as [ReceivedFd, ReceivedFd];
      expect(r1.meta).to.equal(r1.meta); // the same object: parsed once
      expect(r1.meta).to.deep.equal({ name: 'a' });
      expect(r2.meta).to.equal(null);
      expect(r2.raw.toString('hex')).to.equal('0102');
      // the raw metas are views of one copy of the read
      expect(r1.raw.buffer).to.equal(r2.raw.buffer);
      expect(r1).to.deep.equal({ fd: r1.fd, meta: { name: 'a' }, raw: Buffer.from('{"name":"a"}') });
      expect(JSON.parse(JSON.stringify(r1))).to.deep.equal({ fd: r1.fd, meta: { name: 'a' }, raw: JSON.parse(JSON.stringify(r1.raw)) });
      expect(inspect(r1)).to.match(/^\{\s+fd: \d+,\s+meta: \{ name: 'a' \},\s+raw: <Buffer/);
      expect(Object.keys(r1).concat(...(function* () { for (const k in r1) if (!Object.hasOwn(r1, k)) yield k; })()).sort()).to.deep.equal(['fd', 'meta', 'raw']);
      r1.meta = { name: 'b' };
      expect(r1.meta).to.deep.equal({ name: 'b' });
      fs.closeSync(r1.fd);
      fs.closeSync(r2.fd);
      sender.close();
      receiver.close();
      fs.closeSync(file);
    });
  });

  describe('a peer that resets the connection', () => {
    it('fails a pending receive() with ECONNRESET and a pending send() with EPIPE, not a poll status', async () => {
      const [c, s] = await socketPair(dir);
      const conn = new HandoffConnection(c);
      const file = fs.openSync('/dev/null', 'r');
      const received = conn.receive();
      // Fill the socket: the peer never reads, so sends end up queued.
      const sends: Promise<void>[] = [];
      for (let i = 0; i < 2000; i++) sends.push(conn.send([{ fd: file, meta: { i } }]));
      const outcomes = Promise.allSettled(sends);
      await tookSome(sends); // the rest wait in the queue
      addon.close(s); // closed with unread data: the kernel resets the connection
      const [recvErr] = await Promise.allSettled([received]);
      expect(recvErr).to.have.property('status', 'rejected');
      expect((recvErr as PromiseRejectedResult).reason).to.include({ code: 'ECONNRESET', syscall: 'recvmsg' });
      const failed = (await outcomes).filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(failed.length).to.be.greaterThan(0);
      expect(failed[0]!.reason).to.include({ code: 'EPIPE', syscall: 'sendmsg' });
      await conn.send([{ fd: file }]).then(() => expect.fail('sent after the reset'), (err) => expect(err).to.have.property('code', 'EPIPE'));
      conn.close();
      fs.closeSync(file);
    });

    it('while reading is paused, only the sends fail; the records already sent still arrive', async () => {
      const [c, s] = await socketPair(dir);
      const conn = new HandoffConnection(c, { highWaterMark: 2 });
      const peer = new HandoffConnection(s);
      const file = fs.openSync('/dev/null', 'r');
      const before = fdCount();
      for (let i = 0; i < 10; i++) await peer.send([{ fd: file, meta: { i } }]);
      // One poll callback reads until the mark and stops: the count when it first reaches 2 is final.
      await until(() => fdCount() - before >= 2, 5000, 'the first reads');
      expect(fdCount() - before, 'descriptors read before the pause').to.equal(2);
      const sends: Promise<void>[] = [];
      for (let i = 0; i < 2000; i++) sends.push(conn.send([{ fd: file, meta: { i } }]));
      const outcomes = Promise.allSettled(sends);
      await tookSome(sends); // the rest wait in the queue
      peer.close(); // unread data: the kernel resets the connection
      const failed = (await outcomes).filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(failed.length).to.be.greaterThan(0);
      expect(failed[0]!.reason).to.include({ code: 'EPIPE' });
      const got: number[] = [];
      let end: unknown;
      try {
        for (;;) {
          const r = await conn.receive();
          if (r === null) break;
          got.push(r.meta!.i as number);
          fs.closeSync(r.fd);
        }
      } catch (err) {
        end = err;
      }
      expect(got).to.deep.equal([...Array(10).keys()]);
      expect(end).to.include({ code: 'ECONNRESET' });
      conn.close();
      fs.closeSync(file);
    });

    it('fails a pending receive() with ECONNRESET when nothing is being sent', async () => {
      const [c, s] = await socketPair(dir);
      const conn = new HandoffConnection(c);
      const file = fs.openSync('/dev/null', 'r');
      await conn.send([{ fd: file, meta: { unread: true } }]);
      const received = conn.receive();
      addon.close(s);
      const err = await received.then(() => expect.fail('resolved'), (e: Error) => e);
      expect(err).to.include({ code: 'ECONNRESET', syscall: 'recvmsg' });
      expect(err.message).to.not.match(/poll failed/);
      conn.close();
      fs.closeSync(file);
    });
  });
});
