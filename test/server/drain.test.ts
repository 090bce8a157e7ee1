/**
 * The drain's connection states, in process: real servers, real clients,
 * real sockets; a ConnectionTracker drains while a client is in each state.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { once } from 'node:events';
import { ConnectionTracker, type DrainEvent, type DrainOptions } from '../../src/server/drain.js';
import { fdCount, root, until } from '../helpers.js';

const tlsFiles = { key: fs.readFileSync(path.join(root, 'test/fixtures/tls/key.pem')), cert: fs.readFileSync(path.join(root, 'test/fixtures/tls/cert.pem')) };

interface Served<S extends net.Server> {
  server: S;
  tracker: ConnectionTracker;
  port: number;
  /** drain stops accepting (as a listener does) and drains. */
  drain(graceMs: number, timeoutMs: number): Promise<number>;
}

const open: net.Server[] = [];
afterEach(() => {
  for (const s of open.splice(0)) if (s.listening) net.Server.prototype.close.call(s);
});

async function serve<S extends net.Server>(server: S, options: DrainOptions = {}): Promise<Served<S>> {
  const tracker = new ConnectionTracker(server, options, 'test');
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  open.push(server);
  const port = (server.address() as net.AddressInfo).port;
  return {
    server,
    tracker,
    port,
    drain(graceMs, timeoutMs) {
      net.Server.prototype.close.call(server);
      return tracker.drain(graceMs, Date.now() + timeoutMs);
    },
  };
}

/** rawClient: a socket that keeps everything it reads and notes when the server closed it. */
async function rawClient(port: number): Promise<{ socket: net.Socket; text: () => string; ended: Promise<number> }> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (text += d));
  const ended = new Promise<number>((resolve) => socket.once('end', () => resolve(Date.now())));
  return { socket, text: () => text, ended };
}

/** responses splits what a raw client read into HTTP/1.1 responses (status line, headers, body by Content-Length). */
function responses(text: string): { status: number; headers: Record<string, string>; body: string }[] {
  const out = [];
  let rest = text;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
    const len = Number(headers['content-length'] ?? 0);
    out.push({ status: Number(statusLine!.split(' ')[1]), headers, body: rest.slice(end + 4, end + 4 + len) });
    rest = rest.slice(end + 4 + len);
  }
  return out;
}

const pipeline = (n: number) => [...Array(n).keys()].map((i) => `GET /${i + 1} HTTP/1.1\r\nHost: x\r\n\r\n`).join('');

describe('drain: connection states', function () {
  this.timeout(20_000);

  for (const mode of ['synchronously', 'later'] as const) {
    it(`5 pipelined requests (answered ${mode}) during a drain: all answered in order, only the last says close`, async () => {
      const s = await serve(http.createServer((req, res) => {
        if (mode === 'synchronously') res.end(req.url);
        else setTimeout(() => res.end(req.url), 5 * (6 - Number(req.url!.slice(1)))); // finish in reverse order
      }));
      const c = await rawClient(s.port);
      const drained = s.drain(2_000, 5_000);
      c.socket.write(pipeline(5));
      await c.ended;
      const got = responses(c.text());
      expect(got.map((r) => r.body)).to.deep.equal(['/1', '/2', '/3', '/4', '/5']);
      expect(got.map((r) => r.headers.connection)).to.deep.equal(['keep-alive', 'keep-alive', 'keep-alive', 'keep-alive', 'close']);
      expect(await drained).to.equal(0);
    });
  }

  it('a request arriving on an idle connection during the drain is answered with Connection: close', async () => {
    const s = await serve(http.createServer((req, res) => res.end(req.url)));
    const c = await rawClient(s.port);
    c.socket.write(pipeline(1));
    await new Promise<void>((resolve) => c.socket.on('data', () => responses(c.text()).length === 1 && resolve()));
    const drained = s.drain(1_000, 5_000);
    c.socket.write('GET /again HTTP/1.1\r\nHost: x\r\n\r\n');
    const endedAt = await c.ended;
    expect(responses(c.text()).map((r) => [r.body, r.headers.connection])).to.deep.equal([['/1', 'keep-alive'], ['/again', 'close']]);
    expect(await drained).to.equal(0);
    expect(endedAt).to.be.greaterThan(0);
  });

  it('request headers arriving slowly over the grace window are answered, not closed as idle', async () => {
    const s = await serve(http.createServer((req, res) => res.end(`${req.url} ${req.headers['x-slow']}`)));
    const c = await rawClient(s.port);
    const started = Date.now();
    const drained = s.drain(100, 5_000);
    const parts = ['GET /slow HTTP/1.1\r\n', 'Host: x\r\n', 'X-Slow: yes\r\n', '\r\n'];
    for (const part of parts) {
      c.socket.write(part);
      // The slowness is the thing under test: each part comes 3 grace windows after the previous one.
      await new Promise((r) => setTimeout(r, 300));
    }
    await c.ended;
    expect(Date.now() - started).to.be.greaterThan(900);
    expect(responses(c.text()).map((r) => [r.body, r.headers.connection])).to.deep.equal([['/slow yes', 'close']]);
    expect(await drained).to.equal(0);
  });

  it('an application-handled 100-continue (checkContinue) pending at the drain is answered', async () => {
    const server = http.createServer();
    server.on('checkContinue', (req, res) => {
      // The application decides slowly (an authorisation check) whether it wants the body.
      setTimeout(() => {
        res.writeContinue();
        let n = 0;
        req.on('data', (d: Buffer) => (n += d.length));
        req.on('end', () => res.end(`got ${n}`));
      }, 400);
    });
    const s = await serve(server);
    const req = http.request({ host: '127.0.0.1', port: s.port, method: 'POST', path: '/upload', agent: false, headers: { expect: '100-continue', 'content-length': 100_000 } });
    const answer = new Promise<{ status: number; body: string; connection: string | undefined }>((resolve, reject) => {
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body, connection: res.headers.connection }));
      });
      req.on('error', reject);
    });
    req.on('continue', () => req.end(Buffer.alloc(100_000, 1)));
    req.flushHeaders();
    await once(server, 'checkContinue');
    const drained = s.drain(50, 5_000);
    expect(await answer).to.deep.equal({ status: 200, body: 'got 100000', connection: 'close' });
    expect(await drained).to.equal(0);
  });

  it('without a checkContinue listener Node still answers 100 itself (the drain does not change that)', async () => {
    const s = await serve(http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    }));
    const req = http.request({ host: '127.0.0.1', port: s.port, method: 'POST', agent: false, headers: { expect: '100-continue', 'content-length': 3 } });
    req.on('continue', () => req.end('abc'));
    req.flushHeaders();
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    expect(res.statusCode).to.equal(200);
    res.resume();
  });

  it('an https connection idle after its handshake is closed after the grace window, not held to the timeout', async () => {
    const s = await serve(https.createServer(tlsFiles, (_req, res) => res.end('ok')));
    const client = tls.connect({ port: s.port, host: '127.0.0.1', rejectUnauthorized: false });
    await once(client, 'secureConnect');
    client.resume();
    const started = Date.now();
    const closed = once(client, 'close');
    const forced = await s.drain(300, 5_000);
    await closed;
    const ms = Date.now() - started;
    expect(forced).to.equal(0);
    expect(ms).to.be.within(290, 2_000);
  });

  it('a request on a pooled https connection during the drain is answered with Connection: close', async () => {
    const s = await serve(https.createServer(tlsFiles, (req, res) => setTimeout(() => res.end(req.url), 200)));
    const agent = new https.Agent({ keepAlive: true, rejectUnauthorized: false });
    const get = (p: string) => new Promise<[string, string | undefined]>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: s.port, path: p, agent }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d));
        res.on('end', () => resolve([b, res.headers.connection]));
      }).on('error', reject);
    });
    const first = get('/1');
    await until(() => s.tracker.count === 1);
    const drained = s.drain(100, 5_000);
    expect(await first).to.deep.equal(['/1', 'close']);
    expect(await drained).to.equal(0);
    agent.destroy();
  });

  it('an upgraded connection is the application\'s: told at the drain, kept past the grace window until it ends it', async () => {
    const server = http.createServer((_req, res) => res.end('plain'));
    const sockets: net.Socket[] = [];
    server.on('upgrade', (_req, socket: net.Socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (d) => socket.write(d));
      sockets.push(socket);
    });
    const events: DrainEvent[] = [];
    const s = await serve(server, { onDrain: (e) => events.push(e) });
    const c = await rawClient(s.port);
    c.socket.write('GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    await until(() => c.text().includes('\r\n\r\n'));
    const drained = s.drain(50, 5_000);
    expect(events).to.have.length(1);
    expect(events[0]!.listener).to.equal('test');
    expect(events[0]!.upgraded).to.deep.equal(sockets);
    // Ten grace windows later the connection still carries data both ways.
    await new Promise((r) => setTimeout(r, 500));
    c.socket.write('still here');
    await until(() => c.text().endsWith('still here'));
    // The application ends it its own way; the drain is then done, nothing forced.
    sockets[0]!.end('bye');
    await c.ended;
    expect(await drained).to.equal(0);
  });

  it('an upgraded connection outlives the shutdown timeout up to upgradedTimeout, then is destroyed and counted', async () => {
    const server = http.createServer();
    server.on('upgrade', (_req, socket: net.Socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (d) => socket.write(d));
    });
    const s = await serve(server, { upgradedTimeout: 900 });
    const c = await rawClient(s.port);
    c.socket.on('error', () => undefined);
    c.socket.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    await until(() => c.text().includes('\r\n\r\n'));
    const started = Date.now();
    const drained = s.drain(50, 300);
    await new Promise((r) => setTimeout(r, 500)); // past the shutdown timeout (300 ms)
    c.socket.write('after the timeout');
    await until(() => c.text().endsWith('after the timeout'));
    expect(await drained).to.equal(1);
    expect(Date.now() - started).to.be.within(880, 1_500);
    await once(c.socket, 'close');
  });

  it('a connection upgraded while the drain runs is given to onDrain too', async () => {
    const server = http.createServer((_req, res) => res.end('plain'));
    server.on('upgrade', (_req, socket: net.Socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    });
    const events: DrainEvent[] = [];
    const s = await serve(server, { onDrain: (e) => events.push(e) });
    const c = await rawClient(s.port);
    const drained = s.drain(200, 5_000);
    c.socket.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    await until(() => events.length === 2);
    expect(events.map((e) => e.upgraded.length)).to.deep.equal([0, 1]);
    events[1]!.upgraded[0]!.end();
    await c.ended;
    expect(await drained).to.equal(0);
  });

  it('a client that never finishes its request headers is held only to the shutdown timeout, and counted', async () => {
    const s = await serve(http.createServer((_req, res) => res.end('never')));
    const c = await rawClient(s.port);
    c.socket.on('error', () => undefined);
    c.socket.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow');
    await until(() => s.tracker.states().headers === 1);
    const started = Date.now();
    expect(await s.drain(50, 500)).to.equal(1);
    expect(Date.now() - started).to.be.within(490, 1_200);
  });

  it('without an upgrade listener an Upgrade request is an ordinary request (the drain does not change that)', async () => {
    const s = await serve(http.createServer((_req, res) => res.end('plain')));
    const c = await rawClient(s.port);
    c.socket.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    await until(() => responses(c.text()).length === 1);
    expect(responses(c.text())[0]!.body).to.equal('plain');
    c.socket.destroy();
  });

  it('a request never answered is destroyed at the shutdown timeout and counted', async () => {
    const s = await serve(http.createServer(() => undefined));
    const c = await rawClient(s.port);
    c.socket.on('error', () => undefined);
    c.socket.write(pipeline(1));
    await until(() => s.tracker.states().request === 1);
    const started = Date.now();
    expect(await s.drain(50, 400)).to.equal(1);
    expect(Date.now() - started).to.be.within(390, 1_000);
  });

  it('other protocols on a net.Server are given to the application at the drain and destroyed at the timeout', async () => {
    const events: DrainEvent[] = [];
    const s = await serve(net.createServer((socket) => socket.on('data', (d) => socket.write(d))), { onDrain: (e) => events.push(e) });
    const c = await rawClient(s.port);
    c.socket.on('error', () => undefined);
    await until(() => s.tracker.count === 1);
    expect(await s.drain(50, 300)).to.equal(1);
    expect(events.map((e) => [e.upgraded.length, e.connections.length])).to.deep.equal([[0, 1]]);
  });

  it('leaves no descriptor behind: 30 plain, 10 TLS and 10 HTTP/2 connections drained', async () => {
    const before = fdCount();
    const plain = await serve(http.createServer((_req, res) => res.end('ok')));
    const secure = await serve(https.createServer(tlsFiles, (_req, res) => res.end('ok')));
    const h2 = await serve(http2.createServer((_req, res) => res.end('ok')));
    const clients: net.Socket[] = [];
    for (let i = 0; i < 30; i++) clients.push((await rawClient(plain.port)).socket);
    for (let i = 0; i < 10; i++) {
      const c = tls.connect({ port: secure.port, host: '127.0.0.1', rejectUnauthorized: false });
      await once(c, 'secureConnect');
      c.resume();
      clients.push(c);
    }
    const sessions = await Promise.all([...Array(10).keys()].map(async () => {
      const session = http2.connect(`http://127.0.0.1:${h2.port}`);
      await once(session, 'connect');
      return session;
    }));
    await until(() => plain.tracker.count === 30 && secure.tracker.count === 10 && h2.tracker.count === 10);
    const forced = await Promise.all([plain.drain(50, 5_000), secure.drain(50, 5_000), h2.drain(50, 5_000)]);
    expect(forced).to.deep.equal([0, 0, 0]);
    await Promise.all([...clients.map((c) => (c.destroyed ? null : once(c, 'close'))), ...sessions.map((s) => (s.destroyed ? null : once(s, 'close')))]);
    await until(() => fdCount() === before, 5_000, 'the descriptors to be closed');
  });

  for (const secure of [false, true]) {
    it(`HTTP/2${secure ? ' over TLS' : ' (h2c)'}: every stream a client sends until it reads the GOAWAY is answered, none refused by the server`, async () => {
      const server = secure ? http2.createSecureServer(tlsFiles) : http2.createServer();
      let received = 0;
      server.on('stream', (stream) => (received++, setTimeout(() => {
        stream.respond({ ':status': 200 });
        stream.end('ok');
      }, 20)));
      const s = await serve(server);
      const session = http2.connect(`${secure ? 'https' : 'http'}://127.0.0.1:${s.port}`, { rejectUnauthorized: false });
      await once(session, 'connect');
      const goaways: number[] = [];
      session.on('goaway', (_code: number, last: number) => goaways.push(last));
      const results: string[] = [];
      const streams: Promise<void>[] = [];
      let drained: Promise<number> | null = null;
      // Ten streams at a time, each opening the next as it ends, as a busy
      // client does, until it knows the session is going away.
      await new Promise<void>((resolve) => {
        let slots = 10;
        const open = () => {
          if (session.closed || session.destroyed) {
            if (--slots === 0) resolve();
            return;
          }
          const req = session.request({ ':path': '/' });
          streams.push(new Promise<void>((done) => {
            req.on('response', (h) => results.push(String(h[':status'])));
            req.on('error', (err: Error & { code?: string }) => results.push(err.code ?? err.message));
            req.on('close', () => {
              if (req.rstCode) results.push(`rst ${req.rstCode}`);
              done();
              open();
            });
            req.resume();
          }));
          // Drain once the client wrote its latest streams and before the server read them.
          if (streams.length === 30) setImmediate(() => (drained = s.drain(100, 5_000)));
        };
        for (let i = 0; i < 10; i++) open();
      });
      await Promise.all(streams);
      expect(streams.length).to.be.at.least(30);
      // Node's client itself refuses, now and then, streams it had queued but not sent when the
      // first GOAWAY came (see docs/redeploy.md's drain section), as REFUSED_STREAM (rst 7): over
      // TLS a client whose write waits for the one before sends a batch in several writes, and a
      // client busy elsewhere reads a response after the GOAWAY was sent. How often is measured
      // over thousands of streams in http2-redeploy.test.ts; here, what the server controls: it
      // answered every stream it received, refused none, and the client's refusals are only of
      // streams that never reached it (safe to retry).
      const refused = results.filter((r) => r !== '200');
      expect(refused.filter((r) => r !== 'ERR_HTTP2_STREAM_ERROR' && r !== 'rst 7'), `of ${results.length}`).to.deep.equal([]);
      const answered = results.filter((r) => r === '200').length;
      expect(answered, `of ${results.length}: ${refused.join(', ')}`).to.equal(received);
      expect(answered + refused.filter((r) => r === 'rst 7').length).to.equal(streams.length);
      // The first GOAWAY refused nothing (the client, told to go away, closes the session itself
      // once its streams are done, often before the final one).
      expect(goaways[0]).to.equal(2 ** 31 - 1);
      expect(await drained!).to.equal(0);
      session.destroy();
    });
  }
});

