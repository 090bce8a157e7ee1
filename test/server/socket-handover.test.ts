/**
 * Socket hand-over with the application's state: WebSockets (real `ws`
 * clients) and a plain net.Server protocol move to the new instance at a
 * redeploy, real processes on 127.0.0.1. A client whose connection the old
 * instance closed instead of passing would see 'close'.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import { WebSocket } from 'ws';
import { endGenerations, httpGet, spawnFixture, until, type Child } from '../helpers.js';
import { post } from '../load.js';

interface Started {
  child: Child;
  pid: number;
  port: number;
  linePort: number;
}

async function start(env: Record<string, string> = {}): Promise<Started> {
  const child = spawnFixture('ws-chat', [], { env: { ...process.env, ...env } });
  const [, pid, , port, linePort] = /^ready (\d+) (\d+) (\d+) (\d+)$/.exec(await child.next(/^ready /))!.map(Number);
  return { child, pid: pid!, port: port!, linePort: linePort! };
}

/** line waits for a stdout line matching re, wherever it is. */
function line(child: Child, re: RegExp, timeoutMs = 20_000): Promise<string> {
  return until(() => child.stdout.find((l) => re.test(l)), timeoutMs, `a line matching ${re}; stdout: ${child.stdout.join(' | ')}`) as Promise<string>;
}

function lines(child: Child, re: RegExp): string[] {
  return child.stdout.filter((l) => re.test(l));
}

interface Reply { pid: number; n: number; seq: number }

/** Chat: one ws client that sends {"n":k} and collects the answers in order. */
class Chat {
  readonly replies: Reply[] = [];
  closed = false;
  sent = 0;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.replies.push(JSON.parse(String(data)) as Reply);
      for (const w of this.waiters.splice(0)) w();
    });
    ws.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    ws.on('error', () => undefined);
  }

  static open(port: number, user: string, role = 'normal'): Promise<Chat> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/?user=${user}&role=${role}`, { perMessageDeflate: false });
    const chat = new Chat(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(chat));
      ws.once('error', reject);
    });
  }

  /** ask sends the next number and resolves with its answer. */
  async ask(): Promise<Reply> {
    const want = this.replies.length + 1;
    this.ws.send(JSON.stringify({ n: ++this.sent }));
    return this.reply(want);
  }

  /** reply resolves once the count-th answer arrived. */
  reply(count: number): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.replies.length >= count) resolve(this.replies[count - 1]!);
        else if (this.closed) reject(new Error(`closed after ${this.replies.length} answers`));
        else this.waiters.push(check);
      };
      check();
    });
  }

  close(): void {
    this.ws.terminate();
  }
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

/** LineClient: a connection of the line protocol; each answer is "<pid> <count> <k>". */
class LineClient {
  readonly answers: string[] = [];
  closed = false;
  private buf = '';
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      const parts = (this.buf + d).split('\n');
      this.buf = parts.pop()!;
      this.answers.push(...parts);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static open(port: number): Promise<LineClient> {
    return new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(new LineClient(socket)));
    });
  }

  answer(count: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.answers.length >= count) resolve(this.answers[count - 1]!);
        else if (this.closed) reject(new Error(`closed after ${this.answers.length} answers`));
        else this.waiters.push(check);
      };
      check();
    });
  }
}

/** maskedText: a client's masked text frame (RFC 6455 section 5.2), mask all zeros. */
function maskedText(text: string): Buffer {
  const payload = Buffer.from(text);
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
}

async function redeploy(app: Started): Promise<number> {
  const res = await post(app.port, '/redeploy');
  expect(res, JSON.stringify(res)).to.include({ ok: true });
  return Number(res.pid);
}

describe('socket hand-over: WebSockets and a plain TCP protocol move with their state', function () {
  this.timeout(120_000);
  let app: Started | undefined;
  const chats: Chat[] = [];
  const sockets: net.Socket[] = [];
  afterEach(async () => {
    for (const c of chats.splice(0)) c.close();
    for (const s of sockets.splice(0)) s.destroy();
    await endGenerations(app?.child);
    app = undefined;
  });

  it('3 ws clients stay connected through 10 redeploys; messages flow both ways, none lost or doubled; the pid changes each time', async () => {
    app = await start();
    for (const user of ['ann', 'bob', 'cid']) chats.push(await Chat.open(app.port, user));
    let pid = app.pid;
    for (const c of chats) expect((await c.ask()).pid).to.equal(pid);
    for (let round = 1; round <= 10; round++) {
      const next = await redeploy(app);
      expect(next).to.not.equal(pid);
      const done = (await line(app.child, new RegExp(`^done ${pid} `))).split(' ').slice(2).map(Number);
      // The 3 WebSockets were handed over; the redeploy's own HTTP connection drained; none forced.
      expect(done, `round ${round}: handed over, drained, forced`).to.deep.equal([3, 1, 0]);
      for (const c of chats) {
        const r = await c.ask();
        expect(r.pid, `round ${round}`).to.equal(next);
      }
      pid = next;
    }
    for (const c of chats) {
      expect(c.closed).to.equal(false);
      // Every message answered once, in order; the server's sequence went on across instances.
      expect(c.replies.map((r) => r.n)).to.deep.equal([...Array(11).keys()].map((i) => i + 1));
      expect(c.replies.map((r) => r.seq)).to.deep.equal([...Array(11).keys()].map((i) => i + 1));
      expect(new Set(c.replies.map((r) => r.pid)).size).to.equal(11);
    }
    expect(lines(app.child, /^handover-error /)).to.deep.equal([]);
    expect(await statusOf(app.port)).to.deep.equal({ handedOver: 0, drained: 0, forced: 0, adopted: 3 });
  });

  it('a line-protocol connection of a plain net.Server is handed over with its count and its partial line, and answered by the new pid', async () => {
    // The largest state and head that travel: 16 KiB of JSON made of quotes (escaped again in the meta), 16 KiB of partial line.
    app = await start({ APP_LINE_PAD: '8180' });
    const client = await LineClient.open(app.linePort);
    sockets.push(client.socket);
    client.socket.write('1\n');
    expect(await client.answer(1)).to.equal(`${app.pid} 1 1`);
    // "3xxx..." is read but not parsed (no newline yet): it travels as head.
    const partial = `3${'x'.repeat(16 * 1024 - 1)}`;
    client.socket.write(`2\n${partial}`);
    expect(await client.answer(2)).to.equal(`${app.pid} 2 2`);
    const next = await redeploy(app);
    expect((await line(app.child, new RegExp(`^done ${app.pid} `))).split(' ').slice(2).map(Number)).to.deep.equal([1, 1, 0]);
    expect(await line(app.child, new RegExp(`^adopt-socket ${next} line line 1$`))).to.be.a('string');
    client.socket.write('\n4\n');
    expect(await client.answer(3)).to.equal(`${next} 3 ${partial}`);
    expect(await client.answer(4)).to.equal(`${next} 4 4`);
    expect(client.closed).to.equal(false);
  });

  it('no descriptor leak: the old instance keeps only what it did not hand over, the new one closes each with its client', async () => {
    app = await start({ APP_SHUTDOWN_TIMEOUT: '20000' });
    const old = app.pid;
    for (const user of ['a1', 'a2', 'a3', 'a4']) chats.push(await Chat.open(app.port, user));
    const kept = await Chat.open(app.port, 'k1', 'keep'); // never handed over: keeps the old instance draining
    chats.push(kept);
    const client = await LineClient.open(app.linePort);
    sockets.push(client.socket);
    client.socket.write('1\n');
    await client.answer(1);
    for (const c of chats) await c.ask();
    await until(() => tcpConnections(old) === 6, 5_000, 'the 6 connections in the old instance');
    const next = await redeploy(app);
    await until(() => lines(app!.child, new RegExp(`^adopt-socket ${next} `)).length === 5, 5_000, 'the 5 adoptions');
    await until(() => tcpConnections(old) === 1, 5_000, `only the kept WebSocket in the old instance (it has ${tcpConnections(old)})`);
    expect(tcpConnections(next)).to.equal(5);
    for (const c of chats) expect((await c.ask()).pid).to.equal(c === kept ? old : next);
    client.socket.write('2\n');
    expect(await client.answer(2)).to.equal(`${next} 2 2`);
    const before = fs.readdirSync(`/proc/${next}/fd`).length;
    for (const c of chats.filter((x) => x !== kept)) c.close();
    client.socket.destroy();
    await until(() => tcpConnections(next) === 0, 5_000, 'the new instance to close the 5 connections');
    expect(fs.readdirSync(`/proc/${next}/fd`).length).to.equal(before - 5);
    kept.close();
    expect((await line(app.child, new RegExp(`^done ${old} `))).split(' ').slice(2).map(Number)).to.deep.equal([5, 2, 0]);
  });

  it('a new instance killed right after adopting loses only what it adopted (counted); the take-back serves the rest', async () => {
    app = await start({ APP_KILL_GENERATION: '2', APP_KILL_AFTER_ADOPT: '1', APP_TAKE_BACK_WINDOW: '3000' });
    const old = app.pid;
    for (const user of ['b1', 'b2', 'b3', 'b4', 'b5', 'b6']) chats.push(await Chat.open(app.port, user));
    for (const c of chats) await c.ask();
    const res = await post(app.port, '/redeploy');
    expect(res).to.include({ ok: false, code: 'ERR_GRACEFUL_REDEPLOY_FAILED' });
    const [, , killed, lostText] = (await line(app.child, new RegExp(`^takeback ${old} `))).split(' ');
    const lost = Number(lostText);
    expect(lost, 'connections lost').to.be.within(1, 6);
    expect(String(res.message)).to.include(`(the ${lost} connection(s) handed to it are lost)`);
    expect(String(res.message)).to.include(`(pid ${killed}) was killed by SIGKILL`);
    await until(() => chats.filter((c) => c.closed).length === lost, 5_000, `${lost} lost connections to close`);
    const kept = chats.filter((c) => !c.closed);
    expect(kept.length).to.equal(6 - lost);
    for (const c of kept) expect((await c.ask()).pid).to.equal(old);
    const fresh = await Chat.open(app.port, 'b7');
    chats.push(fresh);
    expect((await fresh.ask()).pid).to.equal(old);
    expect(tcpConnections(old)).to.equal(kept.length + 1);
  });

  it('careless hand-overs: mid-frame, unread bytes, twice, destroyed, state not JSON-able or too large: coded errors, no crash, then handed over', async () => {
    app = await start({ APP_SHUTDOWN_TIMEOUT: '20000' });
    const old = app.pid;
    const roles = ['normal', 'twice', 'badstate', 'destroyed', 'paused', 'midframe'];
    const byRole = new Map<string, Chat>();
    for (const role of roles) {
      const c = await Chat.open(app.port, role, role);
      chats.push(c);
      byRole.set(role, c);
      await c.ask();
    }
    const parsing = async (user: string) => JSON.parse((await httpGet({ port: app!.port, path: `/parsing?user=${user}` })).body) as { unread: number; inFrame: boolean };
    // paused: the server pauses it (answering first); what is sent next stays unread in its socket.
    const paused = byRole.get('paused')!;
    paused.ws.send(JSON.stringify({ pause: true }));
    await paused.reply(2);
    paused.ws.send(JSON.stringify({ n: 2 }));
    await until(async () => (await parsing('paused')).unread > 0, 5_000, 'the unread bytes in the paused socket');
    // midframe: half a frame, its header and 2 bytes of its payload.
    const mid = byRole.get('midframe')!;
    const frame = maskedText(JSON.stringify({ n: 2 }));
    (mid.ws as unknown as { _socket: net.Socket })._socket.write(frame.subarray(0, 8));
    await until(async () => (await parsing('midframe')).inFrame, 5_000, 'the server to parse half a frame');
    const next = await redeploy(app);
    await line(app.child, /^handover-error \d+ midframe ERR_GRACEFUL_MID_FRAME$/);
    await line(app.child, /^handover-error \d+ paused ERR_GRACEFUL_UNREAD_BYTES$/);
    // The rest of the frame: answered by the old instance, which then hands it over.
    (mid.ws as unknown as { _socket: net.Socket })._socket.write(frame.subarray(8));
    expect((await mid.reply(2)).pid).to.equal(old);
    expect((await paused.reply(3)).pid).to.equal(old);
    await until(() => lines(app!.child, new RegExp(`^adopt-socket ${next} `)).length === 5, 5_000, `the 5 adoptions: ${app!.child.stdout.join(" | ")}`);
    const errors = lines(app.child, /^handover-error /).map((l) => l.split(' ').slice(2).join(' '));
    expect(errors.sort()).to.deep.equal([
      'badstate ERR_GRACEFUL_INVALID_ARGUMENT', 'badstate ERR_GRACEFUL_INVALID_ARGUMENT', 'badstate ERR_GRACEFUL_INVALID_ARGUMENT', 'badstate ERR_GRACEFUL_META_TOO_LARGE',
      'destroyed ERR_GRACEFUL_CLOSED', 'midframe ERR_GRACEFUL_MID_FRAME', 'paused ERR_GRACEFUL_UNREAD_BYTES', 'twice ERR_GRACEFUL_SOCKET_HANDED_OVER',
    ]);
    for (const role of roles.filter((r) => r !== 'destroyed')) {
      const c = byRole.get(role)!;
      expect((await c.ask()).pid, role).to.equal(next);
      expect(c.closed, role).to.equal(false);
      const seqs = c.replies.map((r) => r.seq);
      expect(seqs, role).to.deep.equal([...Array(seqs.length).keys()].map((i) => i + 1));
    }
    expect(byRole.get('destroyed')!.closed).to.equal(true);
    expect((await line(app.child, new RegExp(`^done ${old} `))).split(' ').slice(2).map(Number)).to.deep.equal([5, 2, 0]);
    expect(tcpConnections(next)).to.equal(5);
  });

  it('an \'adopt-socket\' listener that throws loses only that connection (closed, logged); the new instance serves on', async () => {
    app = await start({ APP_ADOPT_THROW: 'boom' });
    const boom = await Chat.open(app.port, 'boom');
    const fine = await Chat.open(app.port, 'fine');
    chats.push(boom, fine);
    for (const c of chats) await c.ask();
    const next = await redeploy(app);
    await until(() => boom.closed, 5_000, 'the connection the new instance could not rebuild to close');
    expect((await fine.ask()).pid).to.equal(next);
    expect(app.child.stderr.some((l) => l.includes(`the 'adopt-socket' listener threw (cannot rebuild boom): closed the connection of "http"`)), app.child.stderr.join('\n')).to.equal(true);
    expect((await statusOf(app.port)).adopted).to.equal(2);
  });

  it('a new instance with no \'adopt-socket\' listener takes none: handOver() is refused with ERR_GRACEFUL_HANDOVER_FAILED and the WebSocket stays in the old instance', async () => {
    app = await start({ APP_NO_ADOPT: '1', APP_SHUTDOWN_TIMEOUT: '1500' });
    const c = await Chat.open(app.port, 'n1');
    chats.push(c);
    await c.ask();
    await redeploy(app);
    await line(app.child, /^handover-error \d+ n1 ERR_GRACEFUL_HANDOVER_FAILED$/);
    expect((await c.ask()).pid).to.equal(app.pid);
    // Left open by the application: destroyed at the shutdown timeout, counted.
    expect((await line(app.child, new RegExp(`^done ${app.pid} `))).split(' ').slice(2).map(Number)).to.deep.equal([0, 1, 1]);
  });
});

async function statusOf(port: number): Promise<Record<string, number>> {
  return JSON.parse((await httpGet({ port, path: '/status' })).body) as Record<string, number>;
}
