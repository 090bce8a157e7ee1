/**
 * Gob meta on real hand-off sockets: metaFormat per connection, per send,
 * for listenAndServe and sendTo; and, when Go is installed, with a Go peer
 * (test/fixtures/gob/peer) that sends and reads gobwas/graceful's Meta with
 * encoding/gob and syscall.UnixRights.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import {
  HandoffConnection, listenAndServe, receive, sendTo, callbackHandler, decodeGobMeta, type Meta,
} from '../../src/index.js';
import { fdCount, socketPair, spawnChild, tmpDir, type Child } from '../helpers.js';
import { goPeer } from '../helpers/go-peer.js';

/** The first bytes a fresh Go gob encoder writes for a Meta: the definition of its map type. */
const GOB_HEAD = '14ff81040101044d65746101ff8200010c01100000';

describe('gob meta on a hand-off connection', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir();
  });

  it('metaFormat per connection, overridden per send; the receiver decodes both to the same object', async () => {
    const before = fdCount();
    const [a, b] = await socketPair(dir);
    const tx = new HandoffConnection(a, { metaFormat: 'gob' });
    const rx = new HandoffConnection(b);
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'x');
    const fd = fs.openSync(file, 'r');
    const meta = { name: 'log', n: -3, ratio: 0.25, ok: true, none: null };
    await tx.send([{ fd, meta }, { fd, meta: Buffer.from('raw') }, { fd }]);
    await tx.send([{ fd, meta }], { metaFormat: 'json' });
    await sendTo(tx, fd, meta);
    const got = [];
    for (let i = 0; i < 5; i++) got.push((await rx.receive())!);
    expect(got.map((r) => r.meta)).to.deep.equal([meta, null, null, meta, meta]);
    expect(got.map((r) => r.raw.subarray(0, 21).toString('hex'))).to.deep.equal([
      GOB_HEAD, Buffer.from('raw').toString('hex'), '', Buffer.from('{"name":"log","n":-3,"r').toString('hex').slice(0, 42), GOB_HEAD,
    ]);
    expect(decodeGobMeta(got[0]!.raw)).to.deep.equal(meta);
    for (const r of got) fs.closeSync(r.fd);
    fs.closeSync(fd);
    tx.close();
    rx.close();
    expect(fdCount()).to.equal(before);
  });

  it('sendTo with metaFormat gob on a JSON connection; a bad format or meta is refused, nothing sent', async () => {
    const [a, b] = await socketPair(dir);
    const tx = new HandoffConnection(a);
    const rx = new HandoffConnection(b);
    await sendTo(tx, 0, { k: 'v' }, { metaFormat: 'gob' });
    const r = (await rx.receive())!;
    expect(r.meta).to.deep.equal({ k: 'v' });
    expect(r.raw.subarray(0, 21).toString('hex')).to.equal(GOB_HEAD);
    fs.closeSync(r.fd);
    let err = await tx.send([{ fd: 0, meta: { k: 'v' } }], { metaFormat: 'xml' as 'gob' }).catch((e: Error) => e);
    expect(err).to.include({ code: 'ERR_GRACEFUL_INVALID_ARGUMENT', message: `send: metaFormat must be 'json' or 'gob', got "xml"` });
    err = await sendTo(tx, 0, { k: { deep: 1 } } as unknown as Meta, { metaFormat: 'gob' }).catch((e: Error) => e);
    expect(err).to.include({ code: 'ERR_GRACEFUL_INVALID_ARGUMENT' });
    expect((err as Error).message).to.match(/^send: gob meta must be a flat object/);
    tx.close();
    expect(await rx.receive()).to.equal(null); // nothing else came
    rx.close();
  });

  it('listenAndServe with metaFormat gob serves gob meta to receive()', async () => {
    const sock = path.join(dir, 'h.sock');
    const hs = listenAndServe(sock, callbackHandler((res) => res.send(0, { i: 1, name: 'stdin' })), { metaFormat: 'gob' });
    const got: { meta: Meta | null; head: string }[] = [];
    await receive(sock, (fd, meta, raw) => {
      got.push({ meta, head: raw.subarray(0, 21).toString('hex') });
      fs.closeSync(fd);
    });
    expect(got).to.deep.equal([{ meta: { i: 1, name: 'stdin' }, head: GOB_HEAD }]);
    await hs.close();
  });
});

describe('gob meta with a Go peer over SCM_RIGHTS', function () {
  this.timeout(180_000);
  let peer = '';
  let dir: string;
  const children: Child[] = [];

  before(function () {
    peer = goPeer(this, 'the golden vectors of test/unit/gob.test.ts still check the bytes');
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

  it('receives descriptors with the gob Meta a Go program sends, each value with its type', async () => {
    const files = [0, 1, 2].map((i) => {
      const f = path.join(dir, `go${i}`);
      fs.writeFileSync(f, `go file ${i}`);
      return f;
    });
    const sock = path.join(dir, 'go.sock');
    const before = fdCount();
    const go = spawnChild(peer, ['send', sock, ...files]);
    children.push(go);
    await go.next(/^listening/);
    const got: { meta: Meta | null; content: string }[] = [];
    const n = await receive(sock, (fd, meta) => {
      got.push({ meta, content: fs.readFileSync(fd, 'utf8') });
      fs.closeSync(fd);
    });
    expect(n).to.equal(3);
    expect(got).to.deep.equal(files.map((f, i) => ({
      meta: { name: path.basename(f), i, i64: -(2 ** 40), ratio: 0.5, ok: i % 2 === 0, none: null },
      content: `go file ${i}`,
    })));
    expect((await go.exited).code).to.equal(0);
    expect(fdCount()).to.equal(before);
  });

  it('sends gob Meta that Go decodes with encoding/gob, with Go types; JSON meta it cannot read', async () => {
    const sock = path.join(dir, 'js.sock');
    const files = [0, 1, 2].map((i) => {
      const f = path.join(dir, `js${i}`);
      fs.writeFileSync(f, `node file ${i}`);
      return fs.openSync(f, 'r');
    });
    const hs = listenAndServe(sock, callbackHandler(async (res) => {
      res.send(files[0]!, { name: 'js0', n: 42, big: 2 ** 60, f: -1.25, ok: true, none: null });
      await res.flush();
      await sendTo(res.connection, files[1]!, { name: 'js1' }, { metaFormat: 'json' }); // per send: JSON, which gob cannot read
      res.send(files[2]!);
    }), { metaFormat: 'gob' });
    const go = spawnChild(peer, ['recv', sock]);
    children.push(go);
    await go.next(/^eof$/);
    const lines = go.stdout.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as unknown);
    expect(lines).to.have.length(3);
    expect(lines[0]).to.deep.equal({
      meta: {
        name: { type: 'string', value: 'js0' },
        n: { type: 'int', value: 42 },
        big: { type: 'float64', value: 2 ** 60 },
        f: { type: 'float64', value: -1.25 },
        ok: { type: 'bool', value: true },
        none: { type: '<nil>', value: null },
      },
      content: 'node file 0',
    });
    // what gobwas/graceful's MetaFrom meets in JSON meta
    expect(lines[1]).to.deep.equal({ meta: { error: { type: 'error', value: 'unexpected EOF' } }, content: 'node file 1' });
    expect(lines[2]).to.deep.equal({ meta: null, content: 'node file 2' });
    expect((await go.exited).code).to.equal(0);
    for (const fd of files) fs.closeSync(fd);
    await hs.close();
  });
});
