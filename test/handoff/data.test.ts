/**
 * Application data on a hand-off connection, before and between descriptor
 * messages, as gobwas/graceful's README sends it: golden bytes through the
 * real kernel in both directions, the errors of careless readers, and, when
 * Go is installed, a Go program that writes and reads data as that README does.
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { HandoffConnection, listenAndServe, callbackHandler } from '../../src/index.js';
import { addon, AGAIN } from '../../src/native.js';
import { fdCount, socketPair, spawnChild, tmpDir, until, type Child } from '../helpers.js';
import { goPeer } from '../helpers/go-peer.js';

/** The data a Go sender writes first (test/fixtures/gob/peer): byte i is i % 251. */
function dataBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

/** Golden record bytes: uint32 LE length, then the meta. */
const EMPTY_RECORD = Buffer.from('00000000', 'hex');
const NAME_RECORD = Buffer.from('0c0000007b226e616d65223a2262227d', 'hex'); // {"name":"b"}

/** readAll reads a raw socket until EOF: every byte and every descriptor, in order. */
async function readAll(fd: number): Promise<{ bytes: Buffer; fds: number[] }> {
  const chunks: Buffer[] = [];
  const fds: number[] = [];
  const buf = Buffer.alloc(65536);
  const out = new Int32Array(addon.maxFds + 1);
  for (;;) {
    const got = await until(() => {
      const r = addon.recvmsg(fd, buf, 0, buf.length, out);
      return r === AGAIN ? null : { n: r };
    }, 10_000, 'bytes from the sender');
    const n = got!.n;
    for (let i = 0; i < out[0]!; i++) fds.push(out[1 + i]!);
    if (n === 0 && out[0] === 0) return { bytes: Buffer.concat(chunks), fds };
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
}

describe('application data on a hand-off connection', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = tmpDir();
    file = path.join(dir, 'f');
    fs.writeFileSync(file, 'content');
  });

  it('writeData goes on the wire as plain bytes, in order with the descriptor messages (golden bytes)', async () => {
    const before = fdCount();
    const [a, b] = await socketPair(dir);
    const tx = new HandoffConnection(a);
    const fd = fs.openSync(file, 'r');
    const big = dataBytes(100_000);
    const sends = [tx.writeData(big), tx.send([{ fd }]), tx.writeData(Buffer.from('between\n')), tx.send([{ fd, meta: { name: 'b' } }])];
    const all = readAll(b);
    await Promise.all(sends);
    tx.close();
    const got = await all;
    expect(got.bytes.equals(Buffer.concat([big, EMPTY_RECORD, Buffer.from('between\n'), NAME_RECORD]))).to.equal(true);
    expect(got.fds).to.have.length(2);
    for (const f of got.fds) expect(fs.fstatSync(f).ino).to.equal(fs.statSync(file).ino);
    for (const f of got.fds) fs.closeSync(f);
    addon.close(b);
    fs.closeSync(fd);
    expect(fdCount()).to.equal(before);
  });

  it('readData takes the data before and between messages without losing a descriptor, even when reads merge them', async () => {
    const before = fdCount();
    const [a, b] = await socketPair(dir);
    const fd = fs.openSync(file, 'r');
    const one = new Int32Array([fd]);
    // Everything is in the kernel before the receiver reads, so its reads merge plain bytes with messages.
    const first = dataBytes(1000);
    expect(addon.sendmsg(a, first, 0, first.length, null, 0)).to.equal(first.length);
    expect(addon.sendmsg(a, EMPTY_RECORD, 0, 4, one, 1)).to.equal(4);
    const mid = Buffer.from('between\n');
    expect(addon.sendmsg(a, mid, 0, mid.length, null, 0)).to.equal(mid.length);
    expect(addon.sendmsg(a, NAME_RECORD, 0, NAME_RECORD.length, one, 1)).to.equal(NAME_RECORD.length);
    addon.close(a);
    const rx = new HandoffConnection(b, { applicationData: true });
    expect((await rx.readData(1000)).equals(first)).to.equal(true);
    const r1 = (await rx.receive())!;
    expect(r1.meta).to.equal(null);
    expect((await rx.readData(3)).toString()).to.equal('bet');
    expect((await rx.readData(5)).toString()).to.equal('ween\n');
    const r2 = (await rx.receive())!;
    expect(r2.meta).to.deep.equal({ name: 'b' });
    expect(await rx.receive()).to.equal(null);
    expect(fs.readFileSync(r1.fd, 'utf8')).to.equal('content');
    fs.closeSync(r1.fd);
    fs.closeSync(r2.fd);
    rx.close();
    fs.closeSync(fd);
    expect(fdCount()).to.equal(before);
  });

  it('a message the kernel splits (over 32 KiB of meta) is read to its end and no further: the data after it stays data', async () => {
    const before = fdCount();
    const [a, b] = await socketPair(dir);
    const fd = fs.openSync(file, 'r');
    const big = Buffer.from(JSON.stringify({ name: 'x'.repeat(50_000) }));
    const small = Buffer.from('{"name":"s"}');
    const head = (n: number) => {
      const h = Buffer.alloc(4);
      h.writeUInt32LE(n);
      return h;
    };
    const message = Buffer.concat([head(big.length), big, head(small.length), small]);
    const rx = new HandoffConnection(b, { applicationData: true });
    const sent = (async () => {
      // The peer writes as the kernel lets it (a full socket buffer says EAGAIN), then plain bytes.
      let off = 0;
      let fds: Int32Array | null = new Int32Array([fd, fd]);
      while (off < message.length) {
        const n = addon.sendmsg(a, message, off, message.length - off, fds, fds ? 2 : 0);
        if (n > 0) {
          off += n;
          fds = null;
        } else await new Promise((r) => setImmediate(r));
      }
      while (addon.sendmsg(a, Buffer.from('after'), 0, 5, null, 0) !== 5) await new Promise((r) => setImmediate(r));
    })();
    const r1 = (await rx.receive())!;
    const r2 = (await rx.receive())!;
    await sent;
    expect((r1.meta as { name: string }).name).to.have.length(50_000);
    expect(r2.meta).to.deep.equal({ name: 's' });
    expect((await rx.readData(5)).toString()).to.equal('after');
    addon.close(a);
    expect(await rx.receive()).to.equal(null);
    fs.closeSync(r1.fd);
    fs.closeSync(r2.fd);
    rx.close();
    fs.closeSync(fd);
    expect(fdCount()).to.equal(before);
  });

  it('careless readers: a receive() that meets data, readData without the option, a bad length, data that runs into descriptors, a cut stream', async () => {
    const before = fdCount();
    const fd = fs.openSync(file, 'r');
    const one = new Int32Array([fd]);
    const data = Buffer.from('0123456789');

    // Without applicationData, data in front of a message is not the framing.
    let [a, b] = await socketPair(dir);
    addon.sendmsg(a, data, 0, data.length, null, 0);
    addon.sendmsg(a, EMPTY_RECORD, 0, 4, one, 1);
    let rx = new HandoffConnection(b);
    let err: unknown = await rx.receive().catch((e: Error) => e);
    expect(err).to.be.instanceOf(Error);
    expect((err as { code: string }).code).to.match(/^ERR_GRACEFUL_(BAD_FRAME|FD_COUNT_MISMATCH)$/);
    err = await rx.readData(10).catch((e: Error) => e);
    expect(err).to.include({
      code: 'ERR_GRACEFUL_INVALID_ARGUMENT',
      message: 'readData: open the connection with { applicationData: true }, so that it reads no further than what is asked',
    });
    rx.close();
    addon.close(a);

    [a, b] = await socketPair(dir);
    rx = new HandoffConnection(b, { applicationData: true });
    for (const n of [0, -1, 1.5, Number.NaN, 2 ** 31, '10' as unknown as number]) {
      err = await rx.readData(n).catch((e: Error) => e);
      expect(err, String(n)).to.include({ code: 'ERR_GRACEFUL_INVALID_ARGUMENT' });
      expect((err as Error).message).to.match(/^readData: n must be a whole number of bytes from 1 to 1073741824, got /);
    }
    err = await rx.writeData('text' as unknown as Buffer).catch((e: Error) => e);
    expect(err).to.include({ code: 'ERR_GRACEFUL_INVALID_ARGUMENT', message: 'writeData: data must be a Buffer or Uint8Array' });
    // The stream is read in call order: data asked for while a descriptor is awaited would jump the queue.
    const waiting = rx.receive();
    err = await rx.readData(4).catch((e: Error) => e);
    expect(err).to.include({
      code: 'ERR_GRACEFUL_INVALID_ARGUMENT',
      message: 'readData: a receive() still waits for a descriptor that comes first on the stream: await it before readData()',
    });
    addon.sendmsg(a, EMPTY_RECORD, 0, 4, one, 1);
    fs.closeSync((await waiting)!.fd);
    // Asking for more than came before the descriptors: the descriptor is closed, never leaked.
    addon.sendmsg(a, data, 0, data.length, null, 0);
    addon.sendmsg(a, EMPTY_RECORD, 0, 4, one, 1);
    err = await rx.readData(14).catch((e: Error) => e);
    expect(err).to.include({ code: 'ERR_GRACEFUL_BAD_FRAME' });
    expect((err as Error).message).to.equal('readData asked for more bytes than the peer wrote before its next descriptors: ' +
      'the application data and the descriptor messages do not line up');
    expect((await rx.receive().catch((e: Error) => e))).to.include({ code: 'ERR_GRACEFUL_BAD_FRAME' });
    rx.close();
    addon.close(a);

    // The peer leaves in the middle of the data.
    [a, b] = await socketPair(dir);
    rx = new HandoffConnection(b, { applicationData: true });
    addon.sendmsg(a, data, 0, data.length, null, 0);
    addon.close(a);
    err = await rx.readData(100).catch((e: Error) => e);
    expect(err).to.include({
      code: 'ERR_GRACEFUL_TRUNCATED_MESSAGE',
      message: 'the peer closed the connection after 10 of the 100 bytes of application data readData() asked for',
    });
    rx.close();
    err = await rx.readData(1).catch((e: Error) => e);
    expect(err).to.include({ code: 'ERR_GRACEFUL_CLOSED' });
    err = await rx.writeData(data).catch((e: Error) => e);
    expect(err).to.include({ code: 'ERR_GRACEFUL_CLOSED' });
    fs.closeSync(fd);
    expect(fdCount()).to.equal(before);
  });
});

describe('application data with a Go peer (gobwas/graceful README order)', function () {
  this.timeout(180_000);
  let peer = '';
  let dir: string;
  const children: Child[] = [];

  before(function () {
    peer = goPeer(this, 'the golden bytes of this file check the same wire');
  });
  beforeEach(() => {
    dir = tmpDir();
  });
  afterEach(async () => {
    for (const c of children.splice(0)) {
      c.kill('SIGKILL');
      await c.exited;
    }
  });

  it('receives the data a Go program writes first, then its descriptors, then more data', async () => {
    const files = ['ln', 'log'].map((n) => {
      const f = path.join(dir, n);
      fs.writeFileSync(f, `go ${n}`);
      return f;
    });
    const sock = path.join(dir, 'go.sock');
    const before = fdCount();
    const go = spawnChild(peer, ['senddata', sock, ...files]);
    children.push(go);
    await go.next(/^listening/);
    const conn = await HandoffConnection.connect(sock, { applicationData: true });
    expect((await conn.readData(100_000)).equals(dataBytes(100_000))).to.equal(true);
    const ln = (await conn.receive())!;
    expect((await conn.readData(8)).toString()).to.equal('between\n');
    const log = (await conn.receive())!;
    expect(await conn.receive()).to.equal(null);
    expect([ln.meta, fs.readFileSync(ln.fd, 'utf8')]).to.deep.equal([null, 'go ln']);
    expect([log.meta, fs.readFileSync(log.fd, 'utf8')]).to.deep.equal([{ name: 'log' }, 'go log']);
    fs.closeSync(ln.fd);
    fs.closeSync(log.fd);
    conn.close();
    expect((await go.exited).code).to.equal(0);
    expect(fdCount()).to.equal(before);
  });

  it('writes data that a Go program reads with a plain Read before each descriptor', async () => {
    const sock = path.join(dir, 'js.sock');
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'content');
    const fd = fs.openSync(file, 'r');
    const fd2 = fs.openSync(file, 'r'); // an open file of its own: Go reads each to its end
    const big = dataBytes(70_000);
    const hs = listenAndServe(sock, callbackHandler(async (res) => {
      await res.connection.writeData(big);
      await res.connection.send([{ fd }]);
      await res.connection.writeData(Buffer.from('between\n'));
      await res.connection.send([{ fd: fd2, meta: { name: 'f' } }], { metaFormat: 'gob' });
    }));
    const go = spawnChild(peer, ['recvdata', sock, String(big.length), '8']);
    children.push(go);
    await go.next(/^eof$/);
    const lines = go.stdout.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as unknown);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(lines).to.deep.equal([
      { data: big.length, sha256: sha(big) },
      { meta: null, content: 'content' },
      { data: 8, sha256: sha(Buffer.from('between\n')) },
      { meta: { name: { type: 'string', value: 'f' } }, content: 'content' },
    ]);
    expect((await go.exited).code).to.equal(0);
    fs.closeSync(fd);
    fs.closeSync(fd2);
    await hs.close();
  });
});
