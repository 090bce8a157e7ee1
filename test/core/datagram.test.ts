/**
 * sendDatagram (src/datagram.ts) to a real AF_UNIX datagram socket (a Python
 * reader that says what arrived: the bytes, the descriptors as inodes, a cut
 * of the ancillary data): a path or the abstract namespace, descriptors the
 * caller keeps, and the errors: bad arguments, too many descriptors, a path
 * too long, nobody there.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { sendDatagram } from '../../src/datagram.js';
import { addon } from '../../src/native.js';
import { fdCount, spawnChild, tmpDir, type Child } from '../helpers.js';

interface Arrived {
  data: string;
  inos: number[];
  truncated: boolean;
}

/** reader binds a datagram socket at where ('\0' first: the abstract namespace) and prints each datagram as JSON. */
async function reader(where: string): Promise<Child & { arrived(): Promise<Arrived> }> {
  const child = spawnChild('python3', ['-u', '-c', [
    'import array, json, os, socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    `s.bind(${JSON.stringify(where)})`,
    'print("bound", flush=True)',
    'while True:',
    '    msg, anc, flags, _ = s.recvmsg(65536, socket.CMSG_SPACE(300 * 4))',
    '    fds = array.array("i")',
    '    for l, k, d in anc:',
    '        if l == socket.SOL_SOCKET and k == socket.SCM_RIGHTS: fds.frombytes(d[:len(d) - len(d) % 4])',
    '    print(json.dumps({"data": msg.hex(), "inos": [os.fstat(f).st_ino for f in fds], "truncated": bool(flags & socket.MSG_CTRUNC)}), flush=True)',
    '    for f in fds: os.close(f)',
  ].join('\n')]);
  await child.next(/^bound$/);
  return Object.assign(child, {
    async arrived(): Promise<Arrived> {
      const a = JSON.parse(await child.next(/^\{/)) as Arrived;
      return { ...a, data: Buffer.from(a.data, 'hex').toString('latin1') };
    },
  });
}

describe('core/datagram: sendDatagram', function () {
  this.timeout(20_000);
  let dir: string;
  let r: Awaited<ReturnType<typeof reader>> | undefined;

  beforeEach(() => {
    dir = tmpDir();
  });

  afterEach(async () => {
    r?.kill('SIGKILL');
    await r?.exited;
    r = undefined;
  });

  it('sends a string as UTF-8 and bytes as they are, and returns how many bytes went', async () => {
    const sock = path.join(dir, 'n.sock');
    r = await reader(sock);
    expect(sendDatagram(sock, 'READY=1\nSTATUS=é')).to.equal(17);
    expect(await r.arrived()).to.deep.equal({ data: Buffer.from('READY=1\nSTATUS=é').toString('latin1'), inos: [], truncated: false });
    expect(sendDatagram(sock, new Uint8Array([0, 255, 10]))).to.equal(3);
    expect(await r.arrived()).to.deep.equal({ data: '\x00\xff\n', inos: [], truncated: false });
    expect(sendDatagram(sock, '')).to.equal(0);
    expect(await r.arrived()).to.deep.equal({ data: '', inos: [], truncated: false });
  });

  it('passes descriptors in one message; the caller keeps its own', async () => {
    const sock = path.join(dir, 'n.sock');
    r = await reader(sock);
    const a = fs.openSync(path.join(dir, 'a'), 'w');
    const b = fs.openSync(path.join(dir, 'b'), 'w');
    try {
      const before = fdCount();
      expect(sendDatagram(sock, 'FDSTORE=1', [a, b, a])).to.equal(9);
      expect(fdCount(), 'nothing opened or closed here').to.equal(before);
      const ino = (fd: number) => fs.fstatSync(fd).ino;
      expect(await r.arrived()).to.deep.equal({ data: 'FDSTORE=1', inos: [ino(a), ino(b), ino(a)], truncated: false });
      fs.writeSync(a, 'still mine'); // the caller's descriptor works on
      expect(fs.readFileSync(path.join(dir, 'a'), 'utf8')).to.equal('still mine');
    } finally {
      fs.closeSync(a);
      fs.closeSync(b);
    }
  });

  it('sends to the abstract namespace with a leading @, as NOTIFY_SOCKET names it', async () => {
    const name = `gr-test-${process.pid}-${Date.now()}`;
    r = await reader(`\0${name}`);
    expect(sendDatagram(`@${name}`, 'WATCHDOG=1')).to.equal(10);
    expect(await r.arrived()).to.deep.equal({ data: 'WATCHDOG=1', inos: [], truncated: false });
  });

  it('takes as many descriptors as fit one message, and refuses one more, sending nothing', async () => {
    const sock = path.join(dir, 'n.sock');
    r = await reader(sock);
    const fd = fs.openSync(path.join(dir, 'f'), 'w');
    try {
      expect(sendDatagram(sock, 'max', Array(addon.maxFds).fill(fd))).to.equal(3);
      expect((await r.arrived()).inos).to.have.length(addon.maxFds);
      expect(() => sendDatagram(sock, 'over', Array(addon.maxFds + 1).fill(fd))).to.throw(
        `sendDatagram: at most ${addon.maxFds} descriptors fit one message, got ${addon.maxFds + 1}`).with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
      expect(sendDatagram(sock, 'next')).to.equal(4);
      expect((await r.arrived()).data, 'the refused one never went').to.equal('next');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('refuses a path that is empty or no string with ERR_GRACEFUL_INVALID_ARGUMENT', () => {
    for (const bad of ['', undefined, 3, null]) {
      expect(() => sendDatagram(bad as unknown as string, 'x')).to.throw('sendDatagram: path must be a non-empty string')
        .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    }
  });

  it('refuses a path the kernel would truncate with ENAMETOOLONG, naming the limit', () => {
    const long = path.join(dir, 'x'.repeat(120));
    expect(() => sendDatagram(long, 'x')).to.throw(
      `sendDatagram: the socket path is ${Buffer.byteLength(long)} bytes long and the kernel allows 107: use a shorter path, e.g. one relative to the working directory (${long})`)
      .with.property('code', 'ENAMETOOLONG');
  });

  it('throws the kernel\'s errno when nobody is there, and leaks no descriptor', () => {
    const before = fdCount();
    const none = path.join(dir, 'none.sock');
    expect(() => sendDatagram(none, 'x')).to.throw(`sendmsg ENOENT ${none} (no such file or directory)`)
      .that.deep.includes({ code: 'ENOENT', errno: -2, syscall: 'sendmsg', path: none });
    const file = path.join(dir, 'plain');
    fs.writeFileSync(file, '');
    expect(() => sendDatagram(file, 'x')).to.throw(`sendmsg ECONNREFUSED ${file} (connection refused)`)
      .that.deep.includes({ code: 'ECONNREFUSED', errno: -111, syscall: 'sendmsg', path: file });
    const nobody = `@gr-nobody-${process.pid}-${Date.now()}`;
    expect(() => sendDatagram(nobody, 'x', [0])).to.throw(`sendmsg ECONNREFUSED ${nobody} (connection refused)`).with.property('code', 'ECONNREFUSED');
    expect(fdCount()).to.equal(before);
  });
});
