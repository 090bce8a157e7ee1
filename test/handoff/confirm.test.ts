/**
 * The taker's confirmation (src/handoff/confirm.ts): a server with `confirm`
 * learns that a receive() took every descriptor ('confirmed'), and that a
 * client that does not confirm (a plain socket, python3's recv_fds, a Go
 * gobwas/graceful peer) closed ('unconfirmed'), at once, not after its
 * timeout; a receive() against a server that does not read it still works.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { listenAndServe, receive, callbackHandler, type HandoffServer } from '../../src/index.js';
import { CONFIRMATION } from '../../src/handoff/confirm.js';
import { fdCount, root, spawnChild, tmpDir, type Child } from '../helpers.js';
import { goPeer } from '../helpers/go-peer.js';

const LONG = 30_000;

/** outcome: the server's next 'confirmed' or 'unconfirmed', with the pid and how long it took from now. */
function outcome(hs: HandoffServer): Promise<{ event: string; pid: number; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    for (const event of ['confirmed', 'unconfirmed']) hs.once(event, (peer: { pid: number }) => resolve({ event, pid: peer.pid, ms: Date.now() - t0 }));
  });
}

function fileServer(sock: string, file: string, confirm: number): { hs: HandoffServer; fd: number } {
  const fd = fs.openSync(file, 'r');
  const hs = listenAndServe(sock, callbackHandler((res) => res.send(fd, { name: 'f' })), { confirm });
  return { hs, fd };
}

describe('handoff confirm', function () {
  this.timeout(60_000);
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = tmpDir();
    file = path.join(dir, 'f');
    fs.writeFileSync(file, 'data');
  });

  it('CONFIRMATION is one frame with no descriptor: a length, then {"graceful":"served"}', () => {
    expect(CONFIRMATION.readUInt32LE(0)).to.equal(CONFIRMATION.length - 4);
    expect(JSON.parse(CONFIRMATION.subarray(4).toString())).to.deep.equal({ graceful: 'served' });
  });

  it('a Node taker confirms once its callbacks took the descriptors: confirmed, after served', async () => {
    const { hs, fd } = fileServer(path.join(dir, 'h.sock'), file, LONG);
    const events: string[] = [];
    for (const e of ['served', 'confirmed', 'unconfirmed']) hs.on(e, () => events.push(e));
    const done = outcome(hs);
    let took = false;
    const n = await receive(hs.path, async (got) => {
      await new Promise((r) => setTimeout(r, 50)); // a callback that takes its time: the confirmation waits for it
      took = true;
      fs.closeSync(got);
    });
    expect(n).to.equal(1);
    expect(took).to.equal(true);
    expect(await done).to.include({ event: 'confirmed', pid: process.pid });
    expect(events).to.deep.equal(['served', 'confirmed']);
    fs.closeSync(fd);
    await hs.close();
  });

  it('receive({ confirm: false }), a plain socket and a client that writes something else: unconfirmed at their close, not at the timeout', async () => {
    const { hs, fd } = fileServer(path.join(dir, 'h.sock'), file, LONG);
    let done = outcome(hs);
    await receive(hs.path, (got) => fs.closeSync(got), { confirm: false });
    expect((await done).event).to.equal('unconfirmed');
    expect((await done).ms).to.be.below(LONG / 2);
    for (const write of [null, '{"cmd":"status","args":[]}\n']) {
      done = outcome(hs);
      const c = net.createConnection(hs.path);
      c.on('error', () => undefined); // the server closes with our bytes unread: a reset
      if (write !== null) c.write(write);
      c.resume();
      await new Promise((resolve) => c.on('close', resolve)); // once() would reject on the reset
      const got = await done;
      expect(got.event, String(write)).to.equal('unconfirmed');
      expect(got.ms).to.be.below(LONG / 2);
    }
    fs.closeSync(fd);
    await hs.close();
  });

  it('a client that holds the connection open without a word: unconfirmed after the timeout', async () => {
    const { hs, fd } = fileServer(path.join(dir, 'h.sock'), file, 300);
    const done = outcome(hs);
    const c = net.createConnection({ path: hs.path, allowHalfOpen: true });
    c.on('error', () => undefined);
    c.resume();
    const got = await done;
    expect(got.event).to.equal('unconfirmed');
    expect(got.ms).to.be.at.least(250);
    c.destroy();
    fs.closeSync(fd);
    await hs.close();
  });

  it('listenAndServe refuses a confirm that is no number of ms', () => {
    for (const confirm of [-1, NaN, '10' as unknown as number]) {
      expect(() => listenAndServe(path.join(dir, 'x.sock'), callbackHandler(() => undefined), { confirm }), String(confirm)).to.throw().with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    }
  });

  it('python3 recv_fds, which does not confirm: unconfirmed at once, and it got everything', async () => {
    const { hs, fd } = fileServer(path.join(dir, 'h.sock'), file, LONG);
    const done = outcome(hs);
    const py = spawnChild('python3', [path.join(root, 'test/fixtures/peer.py'), 'recv', hs.path]);
    expect(JSON.parse(await py.next(/^\[/))).to.deep.equal([{ meta: { name: 'f' }, content: 'data' }]);
    const got = await done;
    expect(got).to.include({ event: 'unconfirmed', pid: py.pid });
    expect(got.ms).to.be.below(LONG / 2);
    expect((await py.exited).code).to.equal(0);
    fs.closeSync(fd);
    await hs.close();
  });

  describe('with the Go gobwas/graceful peer', () => {
    let peer = '';
    const children: Child[] = [];
    before(function () {
      peer = goPeer(this, 'python3 recv_fds above checks a client that does not confirm');
    });
    afterEach(async () => {
      for (const c of children.splice(0)) {
        c.kill('SIGKILL');
        await c.exited;
      }
    });

    it('a Go client does not confirm: unconfirmed at its close, and it got everything', async () => {
      const { hs, fd } = fileServer(path.join(dir, 'h.sock'), file, LONG);
      const done = outcome(hs);
      const go = spawnChild(peer, ['recv', hs.path]);
      children.push(go);
      await go.next(/^eof/);
      const got = await done;
      expect(got.event).to.equal('unconfirmed');
      expect(got.ms).to.be.below(LONG / 2);
      fs.closeSync(fd);
      await hs.close();
    });

    it('a Go server does not read the confirmation: receive() resolves, nothing leaks', async () => {
      const sock = path.join(dir, 'go.sock');
      const before = fdCount(); // before the peer's stdio pipes, which close at its exit
      const go = spawnChild(peer, ['send', sock, file]);
      children.push(go);
      await go.next(/^listening/);
      const n = await receive(sock, (got) => fs.closeSync(got));
      expect(n).to.equal(1);
      expect((await go.exited).code).to.equal(0);
      expect(fdCount()).to.equal(before);
    });
  });
});
