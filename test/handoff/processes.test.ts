/** The hand-off between real processes: TCP, UNIX and UDP sockets, a shared log file, 1000 descriptors. */
import { expect } from 'chai';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  listenAndServe, listenOnPath, listenerHandler, dgramHandler, fileHandler, sequenceHandler, callbackHandler, type HandoffServer,
} from '../../src/index.js';
import { fdCount, httpGet, spawnFixture, tmpDir, type Child } from '../helpers.js';

describe('hand-off between processes', () => {
  let dir: string;
  let hs: HandoffServer | undefined;
  let child: Child | undefined;

  beforeEach(() => {
    dir = tmpDir();
  });
  afterEach(async () => {
    child?.kill('SIGKILL');
    await child?.exited;
    child = undefined;
    await hs?.close();
    hs = undefined;
  });

  it('hands a TCP HTTP server, a UNIX-socket server and a UDP socket to a spawned process that serves them', async () => {
    const before = fdCount();
    const tcp = http.createServer((_q, r) => r.end('parent'));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const port = (tcp.address() as { port: number }).port;
    const unixPath = path.join(dir, 'http.sock');
    // listenOnPath, not listen(path): Node unlinks a path it bound itself on close.
    const unix = await listenOnPath(http.createServer((_q, r) => r.end('parent')), unixPath);
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const udpPort = udp.address().port;

    const sock = path.join(dir, 'handoff.sock');
    hs = listenAndServe(sock, sequenceHandler(
      listenerHandler(tcp, { kind: 'tcp', name: 'web' }),
      listenerHandler(unix, { kind: 'unix', name: 'admin' }),
      dgramHandler(udp, { kind: 'udp', name: 'stats' }),
    ));
    child = spawnFixture('receiver', ['serve', sock]);
    await child.next(/^ready/);

    // The parent stops serving; the kernel keeps the sockets open in the child.
    await new Promise((r) => tcp.close(r));
    await new Promise((r) => unix.close(r));
    await new Promise<void>((r) => udp.close(() => r()));

    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: `child ${child.pid} web` });
    expect(await httpGet({ socketPath: unixPath })).to.deep.equal({ status: 200, body: `child ${child.pid} admin` });

    const client = dgram.createSocket('udp4');
    const reply = new Promise<string>((resolve) => client.once('message', (m) => resolve(m.toString())));
    client.send('ping', udpPort, '127.0.0.1');
    expect(await reply).to.equal(`child ${child.pid} ping`);
    await new Promise<void>((r) => client.close(() => r()));

    child.kill('SIGKILL');
    await child.exited;
    await hs.close();
    hs = undefined;
    expect(fdCount()).to.equal(before);
  });

  it('shares a log file opened for append: every line of both processes is there', async () => {
    const logPath = path.join(dir, 'app.log');
    const log = fs.createWriteStream(logPath, { flags: 'a' });
    const sock = path.join(dir, 'handoff.sock');
    hs = listenAndServe(sock, fileHandler(log, { name: 'log' }));
    const lines = 500;
    child = spawnFixture('receiver', ['log', sock, String(lines)]);
    for (let i = 0; i < lines; i++) {
      if (!log.write(`parent ${i}\n`)) await new Promise<void>((r) => log.once('drain', () => r()));
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await child.next(/^done$/);
    await new Promise<void>((r) => log.end(r));
    const got = fs.readFileSync(logPath, 'utf8').split('\n').filter(Boolean);
    expect(got).to.have.length(2 * lines);
    for (const who of ['parent', 'child']) {
      const mine = got.filter((l) => l.startsWith(`${who} `)).map((l) => Number(l.split(' ')[1]));
      expect(mine, who).to.deep.equal([...Array(lines).keys()]);
    }
  });

  it('hands 1000 descriptors in one hand-off, split into several messages, in order with their meta', async () => {
    const before = fdCount();
    const fds: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const file = path.join(dir, `f${i}`);
      fs.writeFileSync(file, `file ${i}`);
      fds.push(fs.openSync(file, 'r'));
    }
    const sock = path.join(dir, 'handoff.sock');
    let messages = 0;
    hs = listenAndServe(sock, callbackHandler(async (res) => {
      fds.forEach((fd, i) => res.send(fd, { i, name: `f${i}` }));
      // 1000 records of ~30 bytes: at least 4 messages by descriptors (253 each), more by bytes (4096 each).
      messages = Math.ceil(fds.length / 253);
    }));
    child = spawnFixture('receiver', ['files', sock]);
    const summary = JSON.parse(await child.next(/^\{/)) as { count: number; mismatches: number; inOrder: boolean };
    expect(summary).to.deep.equal({ count: 1000, mismatches: 0, inOrder: true });
    expect(messages).to.be.greaterThan(1);
    for (const fd of fds) fs.closeSync(fd);
    await child.exited;
    await hs.close();
    hs = undefined;
    expect(fdCount()).to.equal(before);
  });
});
