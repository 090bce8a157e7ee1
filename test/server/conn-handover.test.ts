/**
 * Connection hand-over: idle HTTP/1.1 keep-alive connections move to the new
 * instance at a redeploy (real processes, real TCP clients on 127.0.0.1).
 * The raw clients here see every byte and every FIN: a connection that the
 * old instance closed instead of passing would show as 'end' on its client.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { listenAndServe } from '../../src/handoff/server.js';
import { Adopter } from '../../src/server/adopt.js';
import { ADOPT_FIELD, ADOPT_LISTENERS_FIELD, connectSender } from '../../src/server/conn-handover.js';
import { endGenerations, fdCount, spawnFixture, tmpDir, until, type Child } from '../helpers.js';
import { pooledClients, post } from '../load.js';

/** RawClient: one TCP connection that sends HTTP/1.1 requests one at a time and parses the answers. */
class RawClient {
  readonly socket: net.Socket;
  localPort = 0;
  /** The server closed the connection (a FIN or a reset). */
  closed = false;
  ended = false;
  private buf = Buffer.alloc(0);
  /** Answers awaited, in request order (pipelining). */
  private waiters: ((r: { head: string; body: string } | Error) => void)[] = [];

  private constructor(port: number, ready: () => void) {
    this.socket = net.connect(port, '127.0.0.1', () => {
      this.localPort = this.socket.localPort!;
      ready();
    });
    this.socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.parse();
    });
    this.socket.on('end', () => (this.ended = true));
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(new Error('connection closed'));
    });
  }

  static open(port: number): Promise<RawClient> {
    return new Promise((resolve) => {
      const c: RawClient = new RawClient(port, () => resolve(c));
    });
  }

  private parse(): void {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0 || this.waiters.length === 0) return;
      const head = this.buf.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
      if (!(length >= 0)) throw new Error(`no Content-Length in ${head}`);
      if (this.buf.length < end + 4 + length) return;
      const body = this.buf.subarray(end + 4, end + 4 + length).toString('utf8');
      this.buf = this.buf.subarray(end + 4 + length);
      this.waiters.shift()!({ head, body });
    }
  }

  /** answer resolves with the head and body of the next answer not yet awaited. */
  answer(): Promise<{ head: string; body: string }> {
    return new Promise((resolve, reject) => {
      this.waiters.push((r) => (r instanceof Error ? reject(r) : resolve(r)));
      this.parse();
    });
  }

  /** send writes raw bytes (part of a request, several requests). */
  send(bytes: string): void {
    this.socket.write(bytes);
  }

  /** get sends one request and resolves with the answer's head and body. */
  get(path = '/'): Promise<{ head: string; body: string }> {
    const answer = this.answer();
    this.send(request(path));
    return answer;
  }

  close(): void {
    this.socket.destroy();
  }
}

function request(path = '/'): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
}

interface Started {
  child: Child;
  pid: number;
  port: number;
}

function parseReady(line: string): { pid: number; port: number } {
  const [, pid, , port] = /^ready (\d+) (\d+) (\d+)$/.exec(line)!;
  return { pid: Number(pid), port: Number(port) };
}

async function start(env: Record<string, string> = {}): Promise<Started> {
  const child = spawnFixture('keepalive', [], { env: { ...process.env, ...env } });
  const { pid, port } = parseReady(await child.next(/^ready /));
  return { child, pid, port };
}

/** line waits for a stdout line matching re, wherever it is. */
function line(child: Child, re: RegExp, timeoutMs = 20_000): Promise<string> {
  return until(() => child.stdout.find((l) => re.test(l)), timeoutMs, `a line matching ${re}; stdout: ${child.stdout.join(' | ')}`) as Promise<string>;
}

/** tcpConnections: the descriptors of pid that are TCP sockets other than listening ones (from /proc). */
function tcpConnections(pid: number): number {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  let n = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const row of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = row.trim().split(/\s+/);
      if (cols.length > 9 && cols[3] !== '0A' && inodes.has(cols[9]!)) n++;
    }
  }
  return n;
}

function fdCountOf(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

describe('connection hand-over: idle keep-alive connections move to the new instance', function () {
  this.timeout(120_000);
  let app: Started | undefined;
  const clients: RawClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await endGenerations(app?.child);
    app = undefined;
  });

  it('10 keep-alive connections are each answered by the new instance on the same connection, over 5 redeploys', async () => {
    app = await start();
    for (let i = 0; i < 10; i++) clients.push(await RawClient.open(app.port));
    const ports = clients.map((c) => c.localPort);
    let pid = app.pid;
    for (const c of clients) expect((await c.get()).body).to.equal(String(pid));
    for (let round = 1; round <= 5; round++) {
      const res = await post(app.port, '/redeploy');
      expect(res, JSON.stringify(res)).to.include({ ok: true });
      const next = Number(res.pid);
      expect(next).to.not.equal(pid);
      const done = (await line(app.child, new RegExp(`^done ${pid} `))).split(' ').map(Number);
      // All 10 were passed; the redeploy's own connection (Connection: close) drained; none forced.
      expect(done.slice(2), `round ${round}: handed over, drained, forced`).to.deep.equal([10, 1, 0]);
      for (const c of clients) {
        const answer = await c.get();
        expect(answer.body, `round ${round}`).to.equal(String(next));
        expect(answer.head).to.match(/\r\nConnection: keep-alive/i);
        expect(answer.head).to.not.match(/\r\nConnection: close/i);
      }
      expect(await line(app.child, new RegExp(`^halt ${pid} forced 0$`))).to.be.a('string');
      // status counts them in the instance that adopted them.
      expect(JSON.parse((await clients[0]!.get('/status')).body)).to.deep.equal({ handedOver: 0, drained: 0, forced: 0, adopted: 10 });
      pid = next;
    }
    expect(clients.map((c) => c.localPort)).to.deep.equal(ports);
    expect(clients.filter((c) => c.ended || c.closed), 'connections the server closed').to.deep.equal([]);
  });

  it('no descriptor leak: the old instance keeps none of the connections it passed, the new one closes each with its client; a busy one moves once answered', async () => {
    app = await start({ APP_SHUTDOWN_TIMEOUT: '20000' });
    const old = app.pid;
    for (let i = 0; i < 10; i++) clients.push(await RawClient.open(app.port));
    for (const c of clients) await c.get();
    const busy = await RawClient.open(app.port); // keeps the old instance draining while we look
    const slow = busy.get('/?ms=4000');
    await until(() => tcpConnections(old) === 11, 5_000, 'the 11 connections in the old instance');
    const res = await post(app.port, '/redeploy');
    expect(res, JSON.stringify(res)).to.include({ ok: true });
    const next = Number(res.pid);
    await until(() => app!.child.stdout.filter((l) => l.startsWith(`adopt ${next} `)).length === 10, 5_000, 'the 10 adoptions');
    // The old instance holds only the busy connection; the new one the 10 it adopted.
    await until(() => tcpConnections(old) === 1, 5_000, `only the busy connection in the old instance (it has ${tcpConnections(old)})`);
    expect(tcpConnections(next)).to.equal(10);
    for (const c of clients) expect((await c.get()).body).to.equal(String(next));
    const before = fdCountOf(next);
    for (const c of clients.splice(0)) c.close();
    await until(() => tcpConnections(next) === 0, 5_000, 'the new instance to close the 10 connections');
    expect(fdCountOf(next)).to.equal(before - 10);
    // The busy one is answered by the old instance, then passed at that request boundary.
    expect((await slow).body).to.equal(String(old));
    expect((await line(app.child, new RegExp(`^done ${old} `))).split(' ').slice(2).map(Number)).to.deep.equal([11, 1, 0]);
    expect((await busy.get()).body).to.equal(String(next));
    expect(busy.ended || busy.closed).to.equal(false);
    busy.close();
  });

  it('a new instance killed right after adopting loses only what it adopted (counted); the take-back serves the rest', async () => {
    app = await start({ APP_KILL_GENERATION: '2', APP_KILL_AFTER_ADOPT: '1', APP_TAKE_BACK_WINDOW: '3000' });
    const old = app.pid;
    const idle: RawClient[] = [];
    for (let i = 0; i < 6; i++) idle.push(await RawClient.open(app.port));
    for (const c of idle) await c.get();
    const busy: RawClient[] = [];
    for (let i = 0; i < 4; i++) busy.push(await RawClient.open(app.port));
    clients.push(...idle, ...busy);
    // Busy with a request while the hand-over starts: they are passed only once answered.
    const pending = busy.map((c) => c.get('/?ms=1500'));
    const res = await post(app.port, '/redeploy');
    expect(res).to.include({ ok: false, code: 'ERR_GRACEFUL_REDEPLOY_FAILED' });
    const [, , killed, lostText] = (await line(app.child, new RegExp(`^takeback ${old} `))).split(' ');
    const lost = Number(lostText);
    expect(lost, 'connections lost').to.be.within(1, 6);
    expect(String(res.message)).to.include(`(the ${lost} connection(s) handed to it are lost)`);
    expect(String(res.message)).to.include(`(pid ${killed}) was killed by SIGKILL`);
    // Exactly those the dead instance held are closed; the busy ones were never passed.
    await until(() => idle.filter((c) => c.closed).length === lost, 5_000, `${lost} lost connections to close`);
    for (const answer of await Promise.all(pending)) expect(answer.body).to.equal(String(old));
    const kept = clients.filter((c) => !c.closed);
    expect(kept.length).to.equal(10 - lost);
    for (const c of kept) expect((await c.get()).body).to.equal(String(old));
    // New connections too: the old instance took its listener back.
    const fresh = await RawClient.open(app.port);
    clients.push(fresh);
    expect((await fresh.get()).body).to.equal(String(old));
    expect(tcpConnections(old)).to.equal(kept.length + 1);
  });

  it('with handOver off, idle connections are closed by the drain as before', async () => {
    app = await start({ APP_HANDOVER: '0' });
    for (let i = 0; i < 3; i++) clients.push(await RawClient.open(app.port));
    for (const c of clients) await c.get();
    const res = await post(app.port, '/redeploy');
    expect(res).to.include({ ok: true });
    await until(() => clients.every((c) => c.ended), 5_000, 'the idle connections to be closed');
    expect((await line(app.child, new RegExp(`^done ${app.pid} `))).split(' ').slice(2).map(Number)).to.deep.equal([0, 4, 0]);
    const fresh = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: app!.port, agent: false }, (r) => {
        let body = '';
        r.on('data', (d: Buffer) => (body += d));
        r.on('end', () => resolve(body));
      }).on('error', reject);
    });
    expect(fresh).to.equal(String(res.pid));
  });

  it('400 pooled keep-alive clients pausing up to 800 ms (past the 300 ms grace window), 10 redeploys: no reset, no failed request, no reconnect', async () => {
    app = await start({ APP_IDLE_GRACE: '300' });
    const load = pooledClients(app.port, 400, 800);
    const pids = [app.pid];
    for (let i = 0; i < 10; i++) {
      // Load between redeploys, until every client made a request on the instance now serving.
      await load.servedBy(pids.at(-1)!);
      const res = await post(app.port, '/redeploy');
      expect(res, JSON.stringify(res)).to.include({ ok: true });
      pids.push(Number(res.pid));
    }
    await load.servedBy(pids.at(-1)!);
    const result = await load.stop();
    const done = await Promise.all(pids.slice(0, -1).map(async (pid) => (await line(app!.child, new RegExp(`^done ${pid} `))).split(' ').slice(2).map(Number)));
    const handedOver = done.reduce((n, d) => n + d[0]!, 0);
    console.log(`      ${result.requests} requests, ${result.errors.length} failed, ${result.reopened} reconnects, ${handedOver} connections handed over`);
    expect(result.errors).to.deep.equal([]);
    expect(result.reopened, 'connections the clients had to open again').to.equal(0);
    expect(result.requests).to.be.greaterThan(3_000);
    for (const [i, d] of done.entries()) expect(d[2], `forced in ${pids[i]}`).to.equal(0);
    expect(handedOver).to.be.at.least(10 * 390);
  });

  it('careless clients: a head half sent, requests pipelined, a body slower than its answer: each answered whole, then moved', async () => {
    app = await start({ APP_SHUTDOWN_TIMEOUT: '20000' });
    const old = app.pid;
    const [partial, pipelined, body] = [await RawClient.open(app.port), await RawClient.open(app.port), await RawClient.open(app.port)];
    clients.push(partial, pipelined, body);
    for (const c of clients) await c.get();
    // In the old instance's hands when its drain starts: half a head; two requests in one write, the
    // first slow; a POST answered at once whose body is still coming.
    const partialAnswer = partial.answer();
    partial.send('GET /?ms=0 HTTP/1.1\r\nHo');
    const pipelinedAnswers = [pipelined.answer(), pipelined.answer()];
    pipelined.send(request('/?ms=2500') + request('/'));
    const bodyAnswer = body.answer();
    body.send('POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n12345');
    const res = post(app.port, '/redeploy');
    const next = parseReady(await app.child.next(/^ready /)).pid;
    expect(next).to.not.equal(old);
    partial.send('st: 127.0.0.1\r\n\r\n');
    body.send('67890');
    for (const a of [await partialAnswer, ...(await Promise.all(pipelinedAnswers)), await bodyAnswer]) {
      expect(a.body).to.equal(String(old));
      expect(a.head).to.not.match(/\r\nConnection: close/i);
    }
    expect(await res).to.include({ ok: true, pid: next });
    expect((await line(app.child, new RegExp(`^done ${old} `))).split(' ').slice(2).map(Number)).to.deep.equal([3, 1, 0]);
    for (const c of clients) expect((await c.get()).body).to.equal(String(next));
    expect(clients.filter((c) => c.ended || c.closed)).to.deep.equal([]);
  });
});

describe('connectSender: it passes nothing before the new instance let it in', function () {
  this.timeout(20_000);
  const answer = (where: string) => ({ [ADOPT_FIELD]: where, [ADOPT_LISTENERS_FIELD]: 'web' });

  it('a refusal (the adopter lets in another pid only) is no sender, logged as ERR_GRACEFUL_PEER_REFUSED: the connections drain', async () => {
    const before = fdCount();
    const logs: string[] = [];
    const adopter = Adopter.open({ predecessorPid: 1, target: () => null, adopted: () => undefined, socketTarget: () => null, adoptedSocket: () => undefined, log: (m) => logs.push(m) });
    const fields: Record<string, unknown>[] = [];
    const sender = await connectSender(answer(adopter.path), process.pid, ['web'], (m, f) => fields.push({ m, ...f }));
    expect(sender).to.equal(null);
    expect(fields).to.have.length(1);
    expect(fields[0]).to.include({ event: 'redeploy.handover-unreachable', code: 'ERR_GRACEFUL_HANDOVER_FAILED' });
    expect(String(fields[0]!.m)).to.match(/could not reach the new instance \(pid \d+\) to hand connections over \(ERR_GRACEFUL_PEER_REFUSED\): they drain here instead/);
    await until(() => logs.some((l) => l.includes('not a process that hands connections over to this one')), 5_000, 'the refusal in the new instance\'s log');
    adopter.close();
    await until(() => fdCount() === before, 5_000, 'every descriptor closed');
  });

  it('a socket that accepts and says nothing is no sender after the wait (ERR_GRACEFUL_TIMEOUT); one let in is', async () => {
    const before = fdCount();
    const dir = tmpDir();
    const held: (() => void)[] = [];
    // The handler never answers, and holds the connection open until released.
    const silent = listenAndServe(path.join(dir, 'silent.sock'), () => new Promise<void>((release) => held.push(release)));
    const fields: Record<string, unknown>[] = [];
    expect(await connectSender(answer(path.join(dir, 'silent.sock')), process.pid, ['web'], (m, f) => fields.push({ m, ...f }))).to.equal(null);
    expect(String(fields[0]?.m)).to.include('(ERR_GRACEFUL_TIMEOUT)');
    for (const release of held) release();
    await silent.close();
    const adopter = Adopter.open({ predecessorPid: process.pid, target: () => null, adopted: () => undefined, socketTarget: () => null, adoptedSocket: () => undefined, log: () => undefined });
    const sender = await connectSender(answer(adopter.path), process.pid, ['web'], () => undefined);
    expect(sender).to.not.equal(null);
    sender!.close();
    adopter.close();
    await until(() => fdCount() === before, 5_000, 'every descriptor closed');
  });
});
