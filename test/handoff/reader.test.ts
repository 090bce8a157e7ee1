/** handoff/reader.ts: the receiving half of a hand-off connection, on a real socket pair. */
import { expect } from 'chai';
import fs from 'node:fs';
import { addon } from '../../src/native.js';
import { ClosedError } from '../../src/errors.js';
import { Reader } from '../../src/handoff/reader.js';
import type { ReceivedFd } from '../../src/handoff/record.js';
import { encodeMessages } from '../../src/wire.js';
import { fdCount, socketPair, tmpDir } from '../helpers.js';

const closed = (): Error => new ClosedError('closed');

/** sendRecords sends one message: a record per meta, each with a fresh descriptor of /dev/null (closed here after). */
function sendRecords(fd: number, metas: string[], opts: { fds?: number; bytes?: [number, number] } = {}): void {
  const mine = Array.from({ length: opts.fds ?? metas.length }, () => fs.openSync('/dev/null', 'r'));
  const [m] = encodeMessages(metas.map((s) => ({ fd: 0, meta: Buffer.from(s) })), 1 << 20, 1000);
  const [from, to] = opts.bytes ?? [0, m!.data.length];
  try {
    expect(addon.sendmsg(fd, m!.data, from, to - from, mine, mine.length)).to.equal(to - from);
  } finally {
    for (const f of mine) fs.closeSync(f);
  }
}

function sendData(fd: number, text: string): void {
  const b = Buffer.from(text);
  expect(addon.sendmsg(fd, b, 0, b.length, null, 0)).to.equal(b.length);
}

function release(records: readonly (ReceivedFd | null)[]): void {
  for (const r of records) if (r) addon.close(r.fd);
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  return p.then(() => { throw new Error('expected a rejection'); }, (e: Error) => e);
}

describe('handoff/reader', () => {
  let before: number;
  beforeEach(() => {
    before = fdCount();
  });

  it('hands records to receive() and receiveBatch() in call order, then null at the end of the stream', async () => {
    const [c, s] = await socketPair(tmpDir());
    let wakes = 0;
    const r = new Reader(s, 16, 65536, () => wakes++);
    expect(r.wantsToRead()).to.equal(true);
    const first = r.receive(closed);
    expect(wakes).to.equal(1);
    sendRecords(c, ['{"i":0}', '{"i":1}']);
    sendRecords(c, ['{"i":2}']);
    r.readSome();
    const a = (await first)!;
    expect(a.meta).to.deep.equal({ i: 0 });
    expect(fs.readlinkSync(`/proc/self/fd/${a.fd}`)).to.equal('/dev/null');
    const batch = (await r.receiveBatch(closed))!;
    expect(batch.map((x) => x.meta)).to.deep.equal([{ i: 1 }, { i: 2 }]);
    release([a, ...batch]);
    addon.close(c);
    const end = r.receive(closed);
    r.readSome();
    expect(await end).to.equal(null);
    expect(r.eof).to.equal(true);
    expect(r.wantsToRead()).to.equal(false);
    expect(await r.receiveBatch(closed)).to.equal(null);
    r.close(closed());
    addon.close(s);
    expect(fdCount()).to.equal(before);
  });

  it('stops reading at highWaterMark records and wakes the connection when receive() takes one', async () => {
    const [c, s] = await socketPair(tmpDir());
    let wakes = 0;
    const r = new Reader(s, 2, 65536, () => wakes++);
    for (let i = 0; i < 4; i++) sendRecords(c, [`{"i":${i}}`]);
    r.readSome();
    expect(r.wantsToRead()).to.equal(false);
    const got: ReceivedFd[] = [];
    got.push((await r.receive(closed))!);
    expect(wakes).to.equal(1);
    expect(r.wantsToRead()).to.equal(true);
    while (got.length < 4) {
      const next = r.receive(closed);
      r.readSome();
      got.push((await next)!);
    }
    expect(got.map((x) => x.meta)).to.deep.equal([{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }]);
    release(got);
    r.close(closed());
    addon.close(c);
    addon.close(s);
    expect(fdCount()).to.equal(before);
  });

  it('a record without its descriptor ends reading with ERR_GRACEFUL_FD_COUNT_MISMATCH and closes what it held', async () => {
    const [c, s] = await socketPair(tmpDir());
    const r = new Reader(s, 16, 65536, () => undefined);
    const waiting = r.receive(closed);
    sendRecords(c, ['{"a":1}', '{"b":2}'], { fds: 1 }); // two records, one descriptor
    r.readSome();
    const err = await rejection(waiting);
    expect(err.code).to.equal('ERR_GRACEFUL_FD_COUNT_MISMATCH');
    expect(err.message).to.equal('a message carries more meta records than descriptors (record 2 has no descriptor): the peer does not speak this framing');
    expect(r.error).to.equal(err);
    expect(await rejection(r.receive(closed))).to.equal(err);
    expect(await rejection(r.receiveBatch(closed))).to.equal(err);
    expect(r.wantsToRead()).to.equal(false);
    r.close(closed());
    addon.close(c);
    addon.close(s);
    expect(fdCount()).to.equal(before);
  });

  it('a meta over maxMetaBytes is refused with ERR_GRACEFUL_BAD_FRAME', async () => {
    const [c, s] = await socketPair(tmpDir());
    const r = new Reader(s, 16, 8, () => undefined);
    const waiting = r.receive(closed);
    sendRecords(c, ['{"long":"0123456789"}']);
    r.readSome();
    const err = await rejection(waiting);
    expect(err.code).to.equal('ERR_GRACEFUL_BAD_FRAME');
    expect(err.message).to.equal('a record announces 21 bytes of meta; the limit is 8: the peer does not speak this framing, or raise maxMetaBytes');
    r.close(closed());
    addon.close(c);
    addon.close(s);
    expect(fdCount()).to.equal(before);
  });

  it('the peer closing in the middle of a message: ERR_GRACEFUL_TRUNCATED_MESSAGE, the descriptor closed', async () => {
    const [c, s] = await socketPair(tmpDir());
    const r = new Reader(s, 16, 65536, () => undefined);
    const waiting = r.receive(closed);
    sendRecords(c, ['{"a":1}'], { bytes: [0, 6] });
    r.readSome();
    addon.close(c);
    r.readSome();
    const err = await rejection(waiting);
    expect(err.code).to.equal('ERR_GRACEFUL_TRUNCATED_MESSAGE');
    expect(err.message).to.equal('the peer closed the connection in the middle of a message (6 byte(s) and 1 descriptor(s) left over): it probably crashed while sending');
    r.close(closed());
    addon.close(s);
    expect(fdCount()).to.equal(before);
  });

  it('close() closes the records that wait and rejects the waiters; later receives get the closed error', async () => {
    const [c, s] = await socketPair(tmpDir());
    const r = new Reader(s, 16, 65536, () => undefined);
    sendRecords(c, ['{}', '{}', '{}']);
    r.readSome();
    const stop = new ClosedError('the connection was closed');
    r.close(stop);
    const err = await rejection(r.receive(() => new ClosedError('closed later')));
    expect(err.message).to.equal('closed later');
    addon.close(c);
    addon.close(s);
    expect(fdCount()).to.equal(before);

    const [c2, s2] = await socketPair(tmpDir());
    const r2 = new Reader(s2, 16, 65536, () => undefined);
    const w1 = r2.receive(closed);
    const w2 = r2.receiveBatch(closed);
    r2.close(stop);
    expect(await rejection(w1)).to.equal(stop);
    expect(await rejection(w2)).to.equal(stop);
    addon.close(c2);
    addon.close(s2);
  });

  describe('reading ahead (several reads per call into the addon)', () => {
    it('reads every message that waits in one readSome(), and no further than the mark', async () => {
      const [c, s] = await socketPair(tmpDir());
      const r = new Reader(s, 3, 65536, () => undefined);
      for (let i = 0; i < 5; i++) sendRecords(c, [`{"i":${i}}`]);
      r.readSome();
      expect(r.wantsToRead()).to.equal(false); // 3 records wait: the mark
      const first = (await r.receiveBatch(closed))!;
      expect(first.map((x) => x.meta)).to.deep.equal([{ i: 0 }, { i: 1 }, { i: 2 }]);
      r.readSome();
      const rest = (await r.receiveBatch(closed))!;
      expect(rest.map((x) => x.meta)).to.deep.equal([{ i: 3 }, { i: 4 }]);
      release([...first, ...rest]);
      r.close(closed());
      addon.close(c);
      addon.close(s);
      expect(fdCount()).to.equal(before);
    });

    it('a highWaterMark of Infinity reads on without a bound but the buffer\'s', async () => {
      const [c, s] = await socketPair(tmpDir());
      const r = new Reader(s, Infinity, 65536, () => undefined);
      for (let i = 0; i < 3; i++) sendRecords(c, [`{"i":${i}}`, `{"j":${i}}`]);
      r.readSome();
      const got = (await r.receiveBatch(closed))!;
      expect(got).to.have.length(6);
      expect(r.error).to.equal(null);
      release(got);
      r.close(closed());
      addon.close(c);
      addon.close(s);
      expect(fdCount()).to.equal(before);
    });

    it('a bad message among others: the records before it arrive, the descriptors of the reads after it are closed', async () => {
      const [c, s] = await socketPair(tmpDir());
      const r = new Reader(s, 64, 65536, () => undefined);
      sendRecords(c, ['{"i":0}']);
      sendRecords(c, ['{"i":1}'], { fds: 3 }); // three descriptors, one record
      sendRecords(c, ['{"i":2}', '{"i":3}']);
      sendRecords(c, ['{"i":4}']);
      r.readSome();
      const good = (await r.receive(closed))!;
      expect(good.meta).to.deep.equal({ i: 0 });
      const err = await rejection(r.receive(closed));
      expect(err.code).to.equal('ERR_GRACEFUL_FD_COUNT_MISMATCH');
      release([good]);
      expect(fdCount()).to.equal(before + 2); // only the socket pair: nothing of messages 2 to 4
      r.close(closed());
      addon.close(c);
      addon.close(s);
      expect(fdCount()).to.equal(before);
    });

    it('a read that fails after others (ECONNRESET): their records arrive first, then the error, and nothing leaks', async () => {
      const [c, s] = await socketPair(tmpDir());
      const r = new Reader(s, 64, 65536, () => undefined);
      sendRecords(c, ['{"i":0}']);
      sendRecords(c, ['{"i":1}', '{"i":2}']);
      sendData(s, 'x'); // unread by c: closing c resets the connection
      addon.close(c);
      r.readSome();
      const batch = (await r.receiveBatch(closed))!;
      expect(batch.map((x) => x.meta)).to.deep.equal([{ i: 0 }, { i: 1 }, { i: 2 }]);
      const err = await rejection(r.receive(closed));
      expect(err.code).to.equal('ECONNRESET');
      expect((err as Error & { syscall?: string }).syscall).to.equal('recvmsg');
      release(batch);
      r.close(closed());
      addon.close(s);
      expect(fdCount()).to.equal(before);
    });
  });

  describe('on demand (applicationData)', () => {
    it('reads a record only when asked, and plain bytes between messages with readData()', async () => {
      const [c, s] = await socketPair(tmpDir());
      const r = new Reader(s, 16, 65536, () => undefined, true);
      expect(r.wantsToRead()).to.equal(false); // nothing asked for
      sendRecords(c, ['{"n":1}']);
      sendData(c, 'hello world');
      sendRecords(c, ['{"n":2}']);
      const a = r.receive(closed);
      expect(r.wantsToRead()).to.equal(true);
      r.readSome();
      expect((await a)!.meta).to.deep.equal({ n: 1 });
      expect(r.wantsToRead()).to.equal(false);
      const d1 = r.readData(5, closed);
      r.readSome();
      expect((await d1).toString()).to.equal('hello');
      const d2 = r.readData(6, closed);
      r.readSome();
      expect((await d2).toString()).to.equal(' world');
      const b = r.receive(closed);
      r.readSome();
      const rb = (await b)!;
      expect(rb.meta).to.deep.equal({ n: 2 });
      release([await a, rb]);
      r.close(closed());
      addon.close(c);
      addon.close(s);
      expect(fdCount()).to.equal(before);
    });

    it('readData refuses while a receive() waits, and after the peer left or mid-way', async () => {
      const [c, s] = await socketPair(tmpDir());
      const r = new Reader(s, 16, 65536, () => undefined, true);
      const waiting = r.receive(closed);
      const e1 = await rejection(r.readData(3, closed));
      expect(e1.code).to.equal('ERR_GRACEFUL_INVALID_ARGUMENT');
      expect(e1.message).to.equal('readData: a receive() still waits for a descriptor that comes first on the stream: await it before readData()');
      sendRecords(c, ['{}']);
      r.readSome();
      release([await waiting]);
      sendData(c, 'abc');
      addon.close(c);
      const cut = r.readData(5, closed);
      r.readSome();
      const e2 = await rejection(cut);
      expect(e2.code).to.equal('ERR_GRACEFUL_TRUNCATED_MESSAGE');
      expect(e2.message).to.equal('the peer closed the connection after 3 of the 5 bytes of application data readData() asked for');
      r.close(closed());
      addon.close(s);
      expect(fdCount()).to.equal(before);

      const [c2, s2] = await socketPair(tmpDir());
      const r2 = new Reader(s2, 16, 65536, () => undefined, true);
      addon.close(c2);
      const end = r2.receive(closed);
      r2.readSome();
      expect(await end).to.equal(null);
      const e3 = await rejection(r2.readData(4, closed));
      expect(e3.message).to.equal('the peer closed the connection after 0 of the 4 bytes of application data readData() asked for');
      r2.close(closed());
      addon.close(s2);
    });

    it('readData that runs into descriptors ends reading with ERR_GRACEFUL_BAD_FRAME and closes them', async () => {
      const [c, s] = await socketPair(tmpDir());
      const r = new Reader(s, 16, 65536, () => undefined, true);
      sendData(c, 'ab');
      sendRecords(c, ['{}']);
      const d = r.readData(10, closed);
      r.readSome();
      const err = await rejection(d);
      expect(err.code).to.equal('ERR_GRACEFUL_BAD_FRAME');
      expect(err.message).to.equal('readData asked for more bytes than the peer wrote before its next descriptors: the application data and the descriptor messages do not line up');
      expect(await rejection(r.readData(1, closed))).to.equal(err);
      r.close(closed());
      addon.close(c);
      addon.close(s);
      expect(fdCount()).to.equal(before);
    });

    it('readData in the middle of a descriptor message is refused with ERR_GRACEFUL_BAD_FRAME', async () => {
      const [c, s] = await socketPair(tmpDir());
      const r = new Reader(s, 16, 65536, () => undefined, true);
      const waiting = r.receive(closed);
      sendRecords(c, ['{"a":1}'], { bytes: [0, 6] }); // the descriptor and part of its record
      r.readSome();
      r.close(new ClosedError('stop')); // the half message's descriptor is closed
      await rejection(waiting);
      addon.close(c);
      addon.close(s);
      expect(fdCount()).to.equal(before);

      const [c2, s2] = await socketPair(tmpDir());
      const r2 = new Reader(s2, 16, 65536, () => undefined);
      sendRecords(c2, ['{"a":1}'], { bytes: [0, 6] });
      r2.readSome();
      const err = await rejection(r2.readData(2, closed));
      expect(err.code).to.equal('ERR_GRACEFUL_BAD_FRAME');
      expect(err.message).to.equal('readData: the stream is in the middle of a descriptor message: application data may only come between messages');
      r2.close(closed());
      addon.close(c2);
      addon.close(s2);
      expect(fdCount()).to.equal(before);
    });
  });
});
