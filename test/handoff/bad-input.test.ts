/**
 * Bad input on the hand-off socket: each case gets a coded error, no crash,
 * and /proc/self/fd shows no leaked descriptor afterwards. The misbehaving
 * server is built from the addon's raw calls, so it can send any bytes.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { receive, listenAndServe, callbackHandler, HandoffConnection } from '../../src/index.js';
import { addon } from '../../src/native.js';
import { fdCount, socketPair, spawnChild, tmpDir, until } from '../helpers.js';

/**
 * rawServer listens on path, starts the client, and once it connects runs
 * script on the connection, then closes everything.
 */
async function rawServer(sockPath: string, client: () => Promise<unknown>, script: (fd: number) => void | Promise<void>): Promise<void> {
  const lfd = addon.listen(sockPath, 0o600, 8);
  try {
    const pending = client();
    const cfd = await until(() => {
      const fd = addon.accept(lfd);
      return fd >= 0 ? fd : 0;
    }, 5000, 'a client');
    try {
      await script(cfd);
    } finally {
      addon.close(cfd);
    }
    await pending;
  } finally {
    addon.close(lfd);
    fs.rmSync(sockPath, { force: true });
  }
}

function record(meta: string | Buffer, announced?: number): Buffer {
  const body = Buffer.from(meta);
  const head = Buffer.alloc(4);
  head.writeUInt32LE(announced ?? body.length);
  return Buffer.concat([head, body]);
}

function sendRaw(fd: number, data: Buffer, fds: number[] = []): void {
  expect(addon.sendmsg(fd, data, 0, data.length, fds, fds.length)).to.equal(data.length);
}

/**
 * holding resolves once this process (where the receiver runs) holds n more
 * descriptors than base: the receiver has read a message that carried them.
 */
function holding(base: number, n: number): Promise<boolean> {
  return until(() => fdCount() >= base + n, 5000, `the receiver to hold ${n} more descriptor(s)`);
}

/** expectCoded runs a receive against a raw server script and checks the code and that nothing leaked. */
async function expectCoded(code: string, script: (fd: number, devnull: () => number, given: () => number) => void | Promise<void>): Promise<number> {
  const dir = tmpDir();
  const sock = path.join(dir, 'bad.sock');
  const opened: number[] = [];
  const devnull = () => {
    const fd = fs.openSync('/dev/null', 'r');
    opened.push(fd);
    return fd;
  };
  const before = fdCount();
  let given = 0;
  let caught: unknown;
  const client = () => receive(sock, (fd) => {
    given++;
    fs.closeSync(fd);
  }).catch((err) => {
    caught = err;
  });
  await rawServer(sock, client, (fd) => script(fd, devnull, () => given));
  for (const fd of opened) fs.closeSync(fd);
  expect(caught, 'receive must reject').to.be.instanceOf(Error);
  expect((caught as { code?: string }).code, (caught as Error).message).to.equal(code);
  expect(fdCount(), 'descriptors after').to.equal(before);
  return given;
}

describe('hand-off bad input', () => {
  it('garbage bytes: ERR_GRACEFUL_BAD_FRAME', async () => {
    await expectCoded('ERR_GRACEFUL_BAD_FRAME', (fd, devnull) => {
      sendRaw(fd, Buffer.from('\xff\xff\xff\xffGET / HTTP/1.1\r\n\r\n', 'latin1'), [devnull()]);
    });
  });

  it('garbage bytes without descriptors: ERR_GRACEFUL_FD_COUNT_MISMATCH', async () => {
    await expectCoded('ERR_GRACEFUL_FD_COUNT_MISMATCH', (fd) => {
      sendRaw(fd, Buffer.from('hello\n'));
    });
  });

  it('more descriptors than records: ERR_GRACEFUL_FD_COUNT_MISMATCH, and every descriptor closed', async () => {
    await expectCoded('ERR_GRACEFUL_FD_COUNT_MISMATCH', (fd, devnull) => {
      sendRaw(fd, record('{"a":1}'), [devnull(), devnull(), devnull()]);
    });
  });

  it('more records than descriptors: ERR_GRACEFUL_FD_COUNT_MISMATCH', async () => {
    await expectCoded('ERR_GRACEFUL_FD_COUNT_MISMATCH', (fd, devnull) => {
      sendRaw(fd, Buffer.concat([record('{"a":1}'), record('{"b":2}')]), [devnull()]);
    });
  });

  it('meta longer than its message, followed by another message: ERR_GRACEFUL_BAD_FRAME', async () => {
    await expectCoded('ERR_GRACEFUL_BAD_FRAME', async (fd, devnull) => {
      const base = fdCount();
      sendRaw(fd, record('{"short":1}', 500), [devnull()]);
      await holding(base, 2); // the descriptor sent and the one received: the first message is read alone
      sendRaw(fd, record('{}'), [devnull()]);
    });
  });

  it('meta longer than its message, completed by the next message: ERR_GRACEFUL_BAD_FRAME, nothing handed out', async () => {
    // The second message starts with the 9 bytes the first record lacks, then a record of its own.
    const given = await expectCoded('ERR_GRACEFUL_BAD_FRAME', async (fd, devnull) => {
      const base = fdCount();
      sendRaw(fd, record('{"short":1}', 20), [devnull()]);
      await holding(base, 2); // the descriptor sent and the one received: the first message is read alone
      sendRaw(fd, Buffer.concat([Buffer.from('"pad-pad"'), record('{}')]), [devnull()]);
    });
    expect(given).to.equal(0);
  });

  it('meta longer than its message, completed by plain bytes: ERR_GRACEFUL_BAD_FRAME, nothing handed out', async () => {
    const given = await expectCoded('ERR_GRACEFUL_BAD_FRAME', async (fd, devnull) => {
      const base = fdCount();
      sendRaw(fd, record('{"short":1}', 20), [devnull()]);
      await holding(base, 2); // the descriptor sent and the one received: the first message is read alone
      sendRaw(fd, Buffer.from('"pad-pad"'));
    });
    expect(given).to.equal(0);
  });

  it('meta longer than its message, completed by plain bytes, on a connection reading on demand (applicationData): ERR_GRACEFUL_BAD_FRAME', async () => {
    const before = fdCount();
    const [a, b] = await socketPair(tmpDir());
    const rx = new HandoffConnection(b, { applicationData: true });
    const file = fs.openSync('/dev/null', 'r');
    sendRaw(a, record('{"short":1}', 20), [file]);
    sendRaw(a, Buffer.from('"pad-pad"'));
    fs.closeSync(file);
    const err = await rx.receive().then(() => null, (e: Error) => e);
    expect(err, 'receive must reject').to.include({ code: 'ERR_GRACEFUL_BAD_FRAME', message: 'a record runs past the end of its message: its meta is longer than the message' });
    rx.close();
    addon.close(a);
    expect(fdCount(), 'descriptors after').to.equal(before);
  });

  it('meta longer than the receiver allows: ERR_GRACEFUL_BAD_FRAME', async () => {
    await expectCoded('ERR_GRACEFUL_BAD_FRAME', (fd, devnull) => {
      sendRaw(fd, record('{}', 0x7fffffff), [devnull()]);
    });
  });

  it('a peer that closes mid-message: ERR_GRACEFUL_TRUNCATED_MESSAGE', async () => {
    await expectCoded('ERR_GRACEFUL_TRUNCATED_MESSAGE', (fd, devnull) => {
      sendRaw(fd, record('{"name":"x"}', 40), [devnull(), devnull()].slice(0, 1));
    });
  });

  it('a good message then a bad one: the good descriptors reach the callback, the rest are closed', async () => {
    const given = await expectCoded('ERR_GRACEFUL_FD_COUNT_MISMATCH', async (fd, devnull, received) => {
      sendRaw(fd, Buffer.concat([record('{"i":0}'), record('{"i":1}')]), [devnull(), devnull()]);
      await until(() => received() === 2, 5000, 'the good descriptors to reach the callback'); // the first message is read alone
      sendRaw(fd, record('{"i":2}'), [devnull(), devnull()]);
    });
    expect(given).to.equal(2);
  });

  it('a callback that throws: ERR_GRACEFUL_CALLBACK_FAILED with the cause, remaining descriptors closed', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'cb.sock');
    const fds = [0, 1, 2, 3, 4].map(() => fs.openSync('/dev/null', 'r'));
    const before = fdCount();
    const hs = listenAndServe(sock, callbackHandler((res) => fds.forEach((fd, i) => res.send(fd, { i }))));
    const boom = new Error('boom');
    let calls = 0;
    const err = await receive(sock, async (fd) => {
      calls++;
      fs.closeSync(fd);
      if (calls === 2) throw boom;
    }).then(() => null, (e: unknown) => e as Error & { code?: string });
    expect(err?.code).to.equal('ERR_GRACEFUL_CALLBACK_FAILED');
    expect(err?.cause).to.equal(boom);
    expect(err?.message).to.match(/callback failed on descriptor 2 .*boom/);
    expect(calls).to.equal(2);
    await hs.close();
    expect(fdCount()).to.equal(before);
    for (const fd of fds) fs.closeSync(fd);
  });

  it('receive on a missing path: ENOENT; where nothing listens: ECONNREFUSED', async () => {
    const dir = tmpDir();
    const before = fdCount();
    const missing = await receive(path.join(dir, 'none.sock'), () => undefined).catch((e: unknown) => e as Error & { code?: string; syscall?: string; path?: string });
    expect(missing).to.include({ code: 'ENOENT', syscall: 'connect', path: path.join(dir, 'none.sock') });
    expect((missing as { errno?: number }).errno).to.equal(-2);

    // A socket file left behind by a process that died: nothing listens.
    const stale = path.join(dir, 'stale.sock');
    await new Promise<void>((resolve) => {
      const py = spawnChild('python3', ['-c', `import socket; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(stale)})`]);
      void py.exited.then(() => resolve());
    });
    const refused = await receive(stale, () => undefined).catch((e: unknown) => e as Error & { code?: string });
    expect(refused).to.include({ code: 'ECONNREFUSED', syscall: 'connect' });
    // What the failed connects opened is closed (a close may land a moment after the rejection).
    await until(() => fdCount() === before, 5_000, `back to ${before} descriptors (has ${fdCount()})`);
  });

  it('a socket path longer than the kernel allows: ENAMETOOLONG, not a truncated path', async () => {
    const long = `/tmp/${'x'.repeat(120)}.sock`;
    const err = await receive(long, () => undefined).then(() => null, (e: unknown) => e as Error & { code?: string });
    expect(err?.code).to.equal('ENAMETOOLONG');
    expect(err?.message).to.match(/is 130 bytes long and the kernel allows 107/);
    expect(() => listenAndServe(long, () => undefined)).to.throw(/kernel allows 107/).with.property('code', 'ENAMETOOLONG');
    expect(() => addon.listen(long, 0o600, 1)).to.throw().with.property('code', 'ENAMETOOLONG');
  });

  it('EMFILE in the receiving process: ERR_GRACEFUL_FDS_TRUNCATED, and the receiver leaks nothing', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'emfile.sock');
    const fds = Array.from({ length: 200 }, () => fs.openSync('/dev/null', 'r'));
    const hs = listenAndServe(sock, callbackHandler((res) => fds.forEach((fd, i) => res.send(fd, { i }))));
    // A hard limit of 64: Node cannot raise it, and 200 descriptors do not fit.
    const child = spawnChild('sh', ['-c', `ulimit -n 64 && exec "$0" "$@"`, process.execPath,
      path.join(path.dirname(new URL(import.meta.url).pathname), '../fixtures/receiver.js'), 'emfile', sock]);
    const out = JSON.parse(await child.next(/^\{/)) as { code: string; before: number; after: number; got: number };
    expect(out.code).to.equal('ERR_GRACEFUL_FDS_TRUNCATED');
    expect(out.got).to.equal(0);
    expect(out.after).to.equal(out.before);
    await child.exited;
    await hs.close();
    for (const fd of fds) fs.closeSync(fd);
  });

  it('a handler that throws does not crash the server, which goes on serving', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'h.sock');
    let n = 0;
    const errors: unknown[] = [];
    const hs = listenAndServe(sock, (res) => {
      if (++n === 1) throw new Error('handler broke');
      res.send(0, { ok: true });
    });
    hs.on('clientError', (err) => errors.push(err));
    expect(await receive(sock, (fd) => fs.closeSync(fd))).to.equal(0);
    expect(await receive(sock, (fd) => fs.closeSync(fd))).to.equal(1);
    expect(errors).to.have.length(1);
    await hs.close();
  });
});
