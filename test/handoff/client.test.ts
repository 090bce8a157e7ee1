/** handoff/client.ts: receive() from a hand-off socket, and sendTo / receiveFrom on an open connection. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { receive, receiveFrom, sendTo } from '../../src/handoff/client.js';
import { HandoffConnection } from '../../src/handoff/connection.js';
import { listenAndServe } from '../../src/handoff/server.js';
import { fdCount, tmpDir } from '../helpers.js';

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  return p.then(() => { throw new Error('expected a rejection'); }, (e: Error) => e);
}

describe('handoff/client', () => {
  let before: number;
  beforeEach(() => {
    before = fdCount();
  });

  it('receive calls back for every descriptor in order and resolves with the count', async () => {
    const sock = path.join(tmpDir(), 'h.sock');
    const files = [0, 1, 2].map((i) => {
      const f = path.join(path.dirname(sock), `f${i}`);
      fs.writeFileSync(f, `file ${i}`);
      return fs.openSync(f, 'r');
    });
    const server = listenAndServe(sock, (res) => {
      files.forEach((fd, i) => res.send(fd, i === 2 ? Buffer.from('raw') : { i }));
    });
    const got: [string, unknown, string][] = [];
    const n = await receive(sock, (fd, meta, raw) => {
      got.push([fs.readFileSync(fd, 'utf8'), meta, raw.toString()]);
      fs.closeSync(fd);
    });
    expect(n).to.equal(3);
    expect(got).to.deep.equal([['file 0', { i: 0 }, '{"i":0}'], ['file 1', { i: 1 }, '{"i":1}'], ['file 2', null, 'raw']]);
    await server.close();
    for (const f of files) fs.closeSync(f);
    expect(fdCount()).to.equal(before);
  });

  it('receive refuses bad arguments with ERR_GRACEFUL_INVALID_ARGUMENT', async () => {
    const cb = (): void => undefined;
    expect((await rejection(receive('', cb))).message).to.equal('receive: path must be a non-empty string');
    expect((await rejection(receive('/x', null as never))).message).to.equal('receive: cb must be a function');
    const e = await rejection(receive('/x', cb, { timeout: 0 }));
    expect(e).to.include({ code: 'ERR_GRACEFUL_INVALID_ARGUMENT', message: 'receive: timeout must be a positive number of ms, got 0' });
  });

  it('a callback that throws: ERR_GRACEFUL_CALLBACK_FAILED, and what was not given to it is closed', async () => {
    const sock = path.join(tmpDir(), 'h.sock');
    const fds = [0, 1, 2].map(() => fs.openSync('/dev/null', 'r'));
    const server = listenAndServe(sock, (res) => fds.forEach((fd) => res.send(fd)));
    let first = -1;
    const e = await rejection(receive(sock, (fd) => {
      first = fd;
      throw new Error('boom');
    }));
    expect(e.code).to.equal('ERR_GRACEFUL_CALLBACK_FAILED');
    expect(e.message).to.equal(`receive: the callback failed on descriptor 1 (fd ${first}): boom`);
    fs.closeSync(first); // the callback owned it
    await server.close();
    for (const f of fds) fs.closeSync(f);
    expect(fdCount()).to.equal(before);
  });

  it('a server that never finishes: ERR_GRACEFUL_TIMEOUT after timeout ms', async () => {
    const sock = path.join(tmpDir(), 'h.sock');
    let release: () => void = () => undefined;
    const server = listenAndServe(sock, () => new Promise<void>((r) => (release = r)));
    const e = await rejection(receive(sock, () => undefined, { timeout: 100 }));
    expect(e).to.include({ code: 'ERR_GRACEFUL_TIMEOUT', message: `receive: ${sock} did not finish sending within 100 ms` });
    release();
    await server.close();
    expect(fdCount()).to.equal(before);
  });

  it('nobody listening: receive rejects with the errno', async () => {
    const e = await rejection(receive(path.join(tmpDir(), 'none.sock'), () => undefined));
    expect(e.code).to.equal('ENOENT');
    expect(fdCount()).to.equal(before);
  });

  it('sendTo and receiveFrom move descriptors over an open connection, and check their arguments', async () => {
    const sock = path.join(tmpDir(), 'h.sock');
    const fd = fs.openSync('/dev/null', 'r');
    const server = listenAndServe(sock, async (res) => {
      await sendTo(res.connection, fd, { via: 'sendTo' });
      await sendTo(res.connection, fd, { via: 'gob' }, { metaFormat: 'gob' });
    });
    const conn = await HandoffConnection.connect(sock);
    const a = (await receiveFrom(conn))!;
    const b = (await receiveFrom(conn))!;
    expect(a.meta).to.deep.equal({ via: 'sendTo' });
    expect(b.meta).to.deep.equal({ via: 'gob' });
    expect(b.raw.toString()).to.not.equal('{"via":"gob"}');
    expect(await receiveFrom(conn)).to.equal(null);
    fs.closeSync(a.fd);
    fs.closeSync(b.fd);
    expect(() => sendTo({} as never, fd)).to.throw('sendTo: connection must be a HandoffConnection').with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    expect(() => sendTo(conn, -1)).to.throw('sendTo: fd must be a non-negative integer, got -1');
    expect(() => sendTo(conn, 1.5)).to.throw('sendTo: fd must be a non-negative integer, got 1.5');
    expect(() => receiveFrom(null as never)).to.throw('receiveFrom: connection must be a HandoffConnection');
    conn.close();
    await server.close();
    fs.closeSync(fd);
    expect(fdCount()).to.equal(before);
  });
});
