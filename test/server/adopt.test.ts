/** server/adopt.ts: the new instance's receiver of established connections, fed over a real hand-off connection. */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fdOf } from '../../src/fds.js';
import { HandoffConnection, closeAll } from '../../src/handoff/connection.js';
import { ADOPTING_MARK } from '../../src/protocol.js';
import { Adopter, parentOf, type Adopted, type AdopterParts } from '../../src/server/adopt.js';
import { CONN_KIND } from '../../src/server/conn-handover.js';
import { fdCount, until } from '../helpers.js';

function parts(over: Partial<AdopterParts> = {}): AdopterParts & { logs: string[]; adoptedList: Adopted[] } {
  const logs: string[] = [];
  const adoptedList: Adopted[] = [];
  return {
    logs, adoptedList, predecessorPid: process.pid,
    target: () => null,
    adopted: (a) => adoptedList.push(a),
    socketTarget: () => null,
    adoptedSocket: () => undefined,
    log: (m) => logs.push(m),
    ...over,
  };
}

/** pair: a connected TCP pair on 127.0.0.1 (client, server side). */
async function pair(): Promise<{ client: net.Socket; server: net.Socket; close(): Promise<void> }> {
  const l = net.createServer();
  await new Promise<void>((r) => l.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => l.once('connection', r));
  const client = net.connect((l.address() as net.AddressInfo).port, '127.0.0.1');
  const server = await accepted;
  l.close(); // stops listening; its callback would wait for these connections to end
  return { client, server, close: async () => {
    client.destroy();
    server.destroy();
  } };
}

describe('server/adopt', () => {
  it('adopts a connection as one of its listener: the next request on it is answered here', async () => {
    const before = fdCount();
    const web = http.createServer((req, res) => res.end(`adopted ${req.url}`));
    const p = parts({ target: (name) => (name === 'web' ? web : null) });
    const adopter = Adopter.open(p);
    expect(fs.statSync(path.dirname(adopter.path)).mode & 0o777).to.equal(0o700);
    expect(fs.statSync(adopter.path).isSocket()).to.equal(true);
    const { client, server, close } = await pair();
    const conn = await HandoffConnection.connect(adopter.path);
    // Let in: its first record says so (the sender passes nothing before it).
    const hello = await conn.receive();
    expect(hello?.meta).to.deep.equal({ graceful: ADOPTING_MARK });
    closeAll([hello!.fd]);
    await conn.send([{ fd: fdOf(server), meta: { kind: CONN_KIND, listener: 'web', remoteAddress: '127.0.0.1', remotePort: client.localPort! } }]);
    server.destroy(); // the adopter has its own copy now
    await until(() => p.adoptedList.length === 1, 10_000, 'the adoption');
    expect(p.adoptedList[0]).to.include({ listener: 'web', remoteAddress: '127.0.0.1', remotePort: client.localPort });
    expect(adopter.adoptedCount).to.equal(1);
    expect(fs.existsSync(path.dirname(adopter.path))).to.equal(false); // one peer, once: the socket is gone
    const body = await new Promise<string>((resolve) => {
      client.write('GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
      let text = '';
      client.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve(text));
    });
    expect(body).to.match(/^HTTP\/1\.1 200 OK\r\n/);
    expect(body).to.match(/adopted \/x$/);
    conn.close();
    adopter.close();
    await close();
    await new Promise((r) => web.close(r));
    await until(() => fdCount() === before, 10_000, 'every descriptor closed');
  });

  it('refuses a connection for a listener that does not take them over, and a descriptor that is no socket: both closed', async () => {
    const before = fdCount();
    const p = parts();
    const adopter = Adopter.open(p);
    const { server, close } = await pair();
    const conn = await HandoffConnection.connect(adopter.path);
    const file = fs.openSync('/dev/null', 'r');
    await conn.send([{ fd: fdOf(server), meta: { kind: CONN_KIND, listener: 'nope' } }, { fd: file, meta: { kind: 'socket', listener: 'x' } }]);
    fs.closeSync(file);
    await until(() => adopter.refusedCount === 2, 10_000, 'two refusals');
    expect(p.logs).to.deep.equal([
      'connection hand-over: no listener "nope" here takes connections over (handOver: true): closed the connection',
      'connection hand-over: the state of a socket for "x" is not readable: closed the connection',
    ]);
    expect(adopter.adoptedCount).to.equal(0);
    conn.close();
    adopter.close();
    adopter.close(); // idempotent
    await close();
    await until(() => fdCount() === before, 10_000, 'every descriptor closed');
  });

  it('a process other than the predecessor is refused with ERR_GRACEFUL_PEER_REFUSED', async () => {
    const before = fdCount();
    const p = parts({ predecessorPid: 1 });
    const adopter = Adopter.open(p);
    const conn = await HandoffConnection.connect(adopter.path);
    await conn.receive().catch(() => null); // the adopter closes its end
    await until(() => p.logs.length > 0, 10_000, 'the refusal logged');
    expect(p.logs[0]).to.equal(
      `connection hand-over from pid 1: connection hand-over: refused pid ${process.pid} (uid ${process.getuid!()}): not a process that hands connections over to this one; only the predecessor (pid 1) may connect, once`,
    );
    conn.close();
    adopter.close();
    expect(fs.existsSync(path.dirname(adopter.path))).to.equal(false);
    await until(() => fdCount() === before, 10_000, 'every descriptor closed');
  });

  describe('with peers (a new worker: the old workers handed to it)', () => {
    /** peer: a process of our uid (our child) that connects to path and holds the connection; closed resolves once the connection was closed on (it exits then). */
    function peer(): { proc: ChildProcess; connect(path: string): void; closed: Promise<void> } {
      const proc = spawn(process.execPath, ['-e', `
        const net = require('node:net');
        process.stdin.once('data', (d) => {
          const s = net.connect(String(d).trim());
          s.on('close', () => process.exit(0));
          s.on('error', () => undefined);
        });
        setInterval(() => {}, 1000);`], { stdio: ['pipe', 'ignore', 'inherit'] });
      const closed = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      return { proc, connect: (p) => proc.stdin!.write(`${p}\n`), closed };
    }

    it('lets in each named peer once, a child of the parent named, and refuses another process of the same uid', async () => {
      const before = fdCount();
      const [a, b, other] = [peer(), peer(), peer()];
      try {
        expect(parentOf(a.proc.pid!)).to.equal(process.pid);
        const p = parts({ predecessorPid: 1, peers: [a.proc.pid!, b.proc.pid!], parent: process.pid });
        const adopter = Adopter.open(p);
        const refused = (pid: number) => p.logs.some((l) => l.includes(`refused pid ${pid} (uid ${process.getuid!()}): not a process that hands connections over to this one; only the old workers (pids ${a.proc.pid}, ${b.proc.pid}, children of pid ${process.pid}) may connect, once each`));
        other.connect(adopter.path);
        await other.closed; // closed on at once
        await until(() => refused(other.proc.pid!), 10_000, 'the other process refused');
        a.connect(adopter.path);
        await until(() => fs.existsSync(adopter.path), 1000, 'the socket'); // still open for b
        b.connect(adopter.path);
        // Both in: nobody else may connect, the socket is gone.
        await until(() => !fs.existsSync(path.dirname(adopter.path)), 10_000, 'the socket removed once every peer is in');
        expect(a.proc.exitCode).to.equal(null);
        expect(b.proc.exitCode).to.equal(null);
        a.proc.kill();
        b.proc.kill();
        await Promise.all([a.closed, b.closed]);
        adopter.close();
      } finally {
        for (const x of [a, b, other]) x.proc.kill('SIGKILL');
      }
      await until(() => fdCount() === before, 10_000, 'every descriptor closed');
    });

    it('refuses a named peer whose parent is not the one named, and a named peer the second time', async () => {
      const a = peer();
      try {
        const p = parts({ predecessorPid: 1, peers: [a.proc.pid!], parent: 1 });
        const adopter = Adopter.open(p);
        a.connect(adopter.path);
        await a.closed;
        await until(() => p.logs.some((l) => l.includes(`refused pid ${a.proc.pid} (uid ${process.getuid!()}): its parent is pid ${process.pid}; `)), 10_000, 'the refusal');
        adopter.close();
        // Once each: this process, let in, is refused the second time (while the adopter waits for a).
        const q = parts({ predecessorPid: 1, peers: [process.pid, a.proc.pid!], parent: parentOf(process.pid)! });
        const again = Adopter.open(q);
        const first = await HandoffConnection.connect(again.path);
        const second = await HandoffConnection.connect(again.path);
        await second.receive().catch(() => null); // closed on
        await until(() => q.logs.some((l) => l.includes(`refused pid ${process.pid} (uid ${process.getuid!()}): it has connected already; `)), 10_000, 'the second connection refused');
        expect(q.logs.filter((l) => l.includes('refused'))).to.have.length(1);
        expect(fs.existsSync(again.path)).to.equal(true); // a may still come
        first.close();
        second.close();
        again.close();
      } finally {
        a.proc.kill('SIGKILL');
      }
    });
  });
});
