/** control/client.ts: the JSON-mode control client, against a scripted server on a real UNIX socket. */
import { expect } from 'chai';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import fs from 'node:fs';
import { ControlClient, ControlReplyError, looksLikeHandoff, NOT_CONTROL_SOCKET, resolveUid } from '../../src/control/client.js';
import { callbackHandler, listenAndServe } from '../../src/index.js';
import { fdCount, tmpDir } from '../helpers.js';

/** serve listens at a fresh path; answer gets each request line and the socket to answer on. */
async function serve(answer: (line: string, socket: net.Socket) => void): Promise<{ path: string; server: net.Server; close(): Promise<void> }> {
  const p = path.join(tmpDir(), 'c.sock');
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    readline.createInterface({ input: socket }).on('line', (line) => answer(line, socket));
  });
  await new Promise<void>((r) => server.listen(p, r));
  return {
    path: p,
    server,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

describe('control/client', () => {
  it('request sends one JSON line, passes events on, and resolves with the result', async () => {
    const seen: string[] = [];
    const s = await serve((line, socket) => {
      seen.push(line);
      socket.write('{"event":"progress","step":1}\n');
      socket.write('not json: skipped\n');
      socket.write('{"event":"output","line":"hi"}\n');
      socket.write('{"ok":true,"result":{"pid":42}}\n');
    });
    const c = await ControlClient.connect(s.path);
    const events: unknown[] = [];
    expect(await c.request('status', ['a', 'b'], (e) => events.push(e))).to.deep.equal({ pid: 42 });
    expect(seen).to.deep.equal(['{"cmd":"status","args":["a","b"]}']);
    expect(events).to.deep.equal([{ event: 'progress', step: 1 }, { event: 'output', line: 'hi' }]);
    c.close();
    await s.close();
  });

  it('request rejects with ControlReplyError carrying the server code, or COMMAND_FAILED without one', async () => {
    const answers = [
      '{"ok":false,"error":{"code":"ERR_GRACEFUL_NOT_READY","message":"not ready yet"}}',
      '{"ok":false,"error":{"code":"EACCES","message":"denied"}}',
      '{"ok":false}',
      'error: could not read the line',
    ];
    const s = await serve((_line, socket) => socket.write(`${answers.shift()}\n`));
    const c = await ControlClient.connect(s.path);
    const expected = [
      ['ERR_GRACEFUL_NOT_READY', 'not ready yet'],
      ['EACCES', 'denied'],
      ['ERR_GRACEFUL_COMMAND_FAILED', 'the command failed'],
      ['ERR_GRACEFUL_COMMAND_FAILED', 'could not read the line'],
    ];
    for (const [code, message] of expected) {
      const err = await c.request('x').then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(ControlReplyError);
      expect(err).to.include({ code, message, name: 'ControlReplyError' });
    }
    c.close();
    await s.close();
  });

  it('raw sends a plain line and collects the lines up to ok or error:', async () => {
    const s = await serve((line, socket) => {
      if (line === 'good') socket.write('one\ntwo\nok\n');
      else socket.write('error: unknown command\nleft over\n');
    });
    const c = await ControlClient.connect(s.path);
    const streamed: string[] = [];
    expect(await c.raw('good', (l) => streamed.push(l))).to.deep.equal(['one', 'two', 'ok']);
    expect(streamed).to.deep.equal(['one', 'two', 'ok']);
    expect(await c.raw('bad')).to.deep.equal(['error: unknown command']);
    c.close();
    await s.close();
  });

  it('a server that closes before answering: request rejects with ERR_GRACEFUL_CLOSED, raw gives what came, onEnd fires', async () => {
    const s = await serve((line, socket) => {
      if (line === 'partial') socket.end('half\n');
      else socket.end();
    });
    const c = await ControlClient.connect(s.path);
    expect(c.isEnded).to.equal(false);
    const ended = new Promise<void>((r) => c.onEnd(r));
    const err = await c.request('status').then(() => null, (e: unknown) => e);
    expect(err).to.include({ code: 'ERR_GRACEFUL_CLOSED', message: 'the server closed the connection before answering' });
    await ended;
    expect(c.isEnded).to.equal(true);
    let late = false;
    c.onEnd(() => (late = true));
    expect(late).to.equal(true);
    c.close();

    const c2 = await ControlClient.connect(s.path);
    expect(await c2.raw('partial')).to.deep.equal(['half']);
    c2.close();
    await s.close();
  });

  it('request times out with ERR_GRACEFUL_TIMEOUT when nothing answers', async () => {
    const s = await serve(() => undefined);
    const c = await ControlClient.connect(s.path);
    const err = await c.request('status', [], undefined, 50).then(() => null, (e: unknown) => e);
    expect(err).to.include({ code: 'ERR_GRACEFUL_TIMEOUT', message: 'no answer within 50 ms' });
    c.close();
    await s.close();
  });

  it('a late answer to a request that timed out is not taken as the answer to the next request', async () => {
    let n = 0;
    let answerFirst: () => void = () => undefined;
    const s = await serve((_line, socket) => {
      const mine = ++n;
      if (mine === 1) answerFirst = () => socket.write('{"event":"output","line":"late"}\n{"ok":true,"result":"first"}\n');
      else socket.write(`{"ok":true,"result":"answer ${mine}"}\n`);
    });
    const c = await ControlClient.connect(s.path);
    const err = await c.request('slow', [], undefined, 50).then(() => null, (e: unknown) => e);
    expect(err).to.have.property('code', 'ERR_GRACEFUL_TIMEOUT');
    answerFirst();
    const events: unknown[] = [];
    expect(await c.request('next', [], (e) => events.push(e))).to.equal('answer 2');
    expect(events, 'the late request\'s own events').to.deep.equal([]);
    c.close();
    await s.close();
  });

  it('connect rejects with the errno when nobody listens, and leaks no descriptor', async () => {
    const dir = tmpDir();
    const before = fdCount();
    for (let i = 0; i < 20; i++) {
      const err = await ControlClient.connect(path.join(dir, 'none.sock')).then(() => null, (e: unknown) => e);
      expect(err).to.have.property('code', 'ENOENT');
    }
    expect(fdCount()).to.equal(before);
  });

  it('connect trusts a server of our own uid; a connection closed by close() ends', async () => {
    const before = fdCount();
    const s = await serve(() => undefined);
    const c = await ControlClient.connect(s.path, 1000, { serverUids: [] });
    const ended = new Promise<void>((r) => c.onEnd(r));
    c.close();
    await ended;
    expect(c.isEnded).to.equal(true);
    await s.close();
    expect(fdCount()).to.equal(before);
  });

  it('resolveUid reads a number or a user name from /etc/passwd, and refuses an unknown name', () => {
    expect(resolveUid('0')).to.equal(0);
    expect(resolveUid('1234')).to.equal(1234);
    expect(resolveUid('root')).to.equal(0);
    expect(() => resolveUid('no-such-user-xyz')).to.throw('serverUids: no user "no-such-user-xyz" in /etc/passwd: give a uid or a user name')
      .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
  });

  it('looksLikeHandoff: a frame header (a length with a NUL in its fourth byte), never a line of text', () => {
    expect(looksLikeHandoff(Buffer.from([21, 0, 0, 0, 123]))).to.equal(true);
    expect(looksLikeHandoff(Buffer.from('{"ok":true}\n'))).to.equal(false);
    expect(looksLikeHandoff(Buffer.from('ok\n'))).to.equal(false);
    expect(looksLikeHandoff(Buffer.from([0, 0, 0, 0]))).to.equal(false);
    expect(looksLikeHandoff(Buffer.from([5, 0]))).to.equal(false);
  });

  it('a hand-off socket: the request fails with ERR_GRACEFUL_NOT_CONTROL_SOCKET, and no descriptor it sent stays open here', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'x');
    const fds = [0, 1, 2].map(() => fs.openSync(file, 'r'));
    const hs = listenAndServe(path.join(dir, 'handoff.sock'), callbackHandler((res) => {
      for (const fd of fds) res.send(fd, { name: 'f' });
    }));
    const before = fdCount();
    for (const plain of [false, true]) {
      const client = await ControlClient.connect(hs.path, 5000);
      const err = await (plain ? client.raw('status') : client.request('status')).then(() => null, (e: unknown) => e);
      expect(err, plain ? 'plain mode' : 'JSON mode').to.be.instanceOf(ControlReplyError);
      expect((err as ControlReplyError).code).to.equal(NOT_CONTROL_SOCKET);
      expect((err as Error).message).to.include(`${hs.path} is a hand-off socket, not a control socket`);
      expect(client.isHandoff).to.equal(true);
      client.close();
    }
    await new Promise((r) => setImmediate(r));
    expect(fdCount(), 'every descriptor sent was closed').to.equal(before);
    for (const fd of fds) fs.closeSync(fd);
    await hs.close();
  });
});
