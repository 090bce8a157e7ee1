/**
 * The notify receiver: whom it trusts. The kernel's credentials or nothing:
 * a sender without credentials is unknown and refused, never uid 0; a
 * datagram whose ancillary data was cut is dropped.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { addon } from '../../src/native.js';
import { receive, sendDatagram } from '../../src/index.js';
import { NotifySocket, parseNotify, trustedSender, type NotifyMessage } from '../../src/supervisor/notify.js';
import { fdCount, root, spawnChild, spawnFixture, tmpDir, until } from '../helpers.js';

describe('notify receiver', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir();
  });

  it('recvDatagram on a socket without SO_PASSCRED: the sender is unknown (null), and refused', async () => {
    const sock = path.join(dir, 'peer.sock');
    const peer = spawnChild('python3', [path.join(root, 'test/fixtures/peer.py'), 'dgram', sock]);
    await peer.next(/^listening$/);
    const fds: number[] = [];
    expect(await receive(sock, (fd) => void fds.push(fd))).to.equal(1);
    const buf = new Uint8Array(64);
    const got = addon.recvDatagram(fds[0]!, buf)!;
    addon.close(fds[0]!);
    expect(got).to.deep.equal({ length: 7, pid: null, uid: null, gid: null });
    expect(trustedSender(got, process.getuid!())).to.equal(null);
    expect((await peer.exited).code).to.equal(0);
  });

  it('trustedSender: own uid and root are trusted, another uid and an unknown sender are not', () => {
    const me = process.getuid!();
    const other = me === 0 ? 4242 : me + 1;
    expect(trustedSender({ length: 1, pid: 7, uid: me, gid: 3 }, me)).to.deep.equal({ pid: 7, uid: me, gid: 3 });
    expect(trustedSender({ length: 1, pid: 7, uid: 0, gid: 0 }, me)).to.deep.equal({ pid: 7, uid: 0, gid: 0 });
    expect(trustedSender({ length: 1, pid: 7, uid: other, gid: 3 }, me)).to.equal(null);
    expect(trustedSender({ length: 1, pid: null, uid: null, gid: null }, me)).to.equal(null);
  });

  it('MSG_CTRUNC: a datagram is dropped (and the next one reads); a stream fails for good, with a FdsTruncatedError that advises no retry', async () => {
    const child = spawnFixture('ctrunc', [dir]);
    const line = await child.next(/^\{/);
    expect((await child.exited).code, child.stderr.join('\n')).to.equal(0);
    const out = JSON.parse(line) as { datagram: { code: string }; next: number; stream: { code: string; isClass: boolean; message: string } };
    expect(out.datagram.code).to.equal('ERR_GRACEFUL_FDS_TRUNCATED');
    expect(out.next).to.equal(7);
    expect(out.stream.code).to.equal('ERR_GRACEFUL_FDS_TRUNCATED');
    expect(out.stream.isClass).to.equal(true);
    expect(out.stream.message).to.include('cannot be resynchronised: close the connection and do not retry on it');
    expect(out.stream.message).to.not.match(/then retry/);
  });

  it('NotifySocket: passes fields and the sender of each datagram in order, drops an oversized one, leaks nothing', async () => {
    const before = fdCount();
    const got: NotifyMessage[] = [];
    const ns = new NotifySocket((m) => got.push(m));
    expect(fs.statSync(ns.path).mode & 0o777).to.equal(0o600);
    expect(fs.statSync(path.dirname(ns.path)).mode & 0o777).to.equal(0o700);
    sendDatagram(ns.path, 'MAINPID=42\nREADY=1');
    sendDatagram(ns.path, 'X'.repeat(5000));
    sendDatagram(ns.path, 'STATUS=a=b\nnoequals\n=x');
    await until(() => got.length === 2, 5000, 'two datagrams');
    expect(got.map((m) => [...m.fields])).to.deep.equal([[['MAINPID', '42'], ['READY', '1']], [['STATUS', 'a=b']]]);
    expect(got[0]!.sender).to.deep.equal({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    const socketDir = path.dirname(ns.path);
    ns.close();
    expect(fs.existsSync(socketDir)).to.equal(false);
    expect(fdCount()).to.equal(before);
  });

  it('parseNotify keeps the last value of a repeated key and ignores lines without a key', () => {
    expect([...parseNotify('A=1\nB=\nA=2\n=z\nplain')]).to.deep.equal([['A', '2'], ['B', '']]);
  });
});
