/**
 * Each connection state through redeploys of a real process, with real
 * clients: pipelined requests, slow headers, an application-handled
 * 100-continue, an idle TLS connection, a WebSocket (the `ws` package).
 */
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import WebSocket from 'ws';
import { until } from '../helpers.js';
import { LoadLoop } from '../load.js';
import { ProtocolsApp } from './protocol-redeploy.js';

interface Response {
  status: number;
  connection: string | undefined;
  body: string;
}

/** responses splits what a raw client read into HTTP/1.1 responses (body by Content-Length). */
function responses(text: string): Response[] {
  const out: Response[] = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return out;
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n');
    const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    const len = Number(headers.get('content-length') ?? 0);
    out.push({ status: Number(statusLine!.split(' ')[1]), connection: headers.get('connection'), body: rest.slice(end + 4, end + 4 + len) });
    rest = rest.slice(end + 4 + len);
  }
}

/** raw opens a connection that keeps what it reads; `ended` resolves when the server closed it. */
async function raw(port: number): Promise<{ socket: net.Socket; text(): string; ended: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (text += d));
  const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
  return { socket, text: () => text, ended };
}

describe('drain: connection states through redeploys', function () {
  this.timeout(60_000);
  let app: ProtocolsApp | undefined;
  afterEach(async () => {
    await app?.stop();
    app = undefined;
  });

  it('pipelined requests on a connection of the old instance, sent as it drains: all answered in order, under load', async () => {
    app = await ProtocolsApp.start();
    const load = new LoadLoop(app.ports.http, 3, 1);
    const old = app.first;
    const conns = await Promise.all([raw(app.ports.http), raw(app.ports.http)]);
    await app.redeploy();
    await until(() => app!.child.stdout.includes(`drain ${old.pid} http upgraded 0`), 10_000, 'the drain');
    // One connection's handlers answer inside the request event, the other's on a later timer.
    conns[0]!.socket.write(['/sync', '/sync', '/sync', '/sync', '/sync'].map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
    conns[1]!.socket.write(['/?ms=30', '/sync', '/?ms=10', '/', '/sync'].map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
    await Promise.all(conns.map((c) => c.ended));
    for (const c of conns) {
      const got = responses(c.text());
      expect(got.map((r) => `${r.status} ${r.body}`)).to.deep.equal(Array(5).fill(`200 ${old.pid}`));
      expect(got.map((r) => r.connection)).to.deep.equal(['keep-alive', 'keep-alive', 'keep-alive', 'keep-alive', 'close']);
    }
    const result = await load.stop();
    expect(result.errors).to.deep.equal([]);
    expect(await app.halted(old.pid)).to.equal(0);
  });

  it('a request whose headers arrive slowly and an upload waiting on the application\'s 100-continue are answered by the old instance', async () => {
    app = await ProtocolsApp.start({ CONTINUE_MS: '1500' });
    const load = new LoadLoop(app.ports.http, 3, 1);
    const old = app.first;
    const slow = await raw(app.ports.http);
    const upload = new Promise<Response>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: app!.ports.http, method: 'POST', path: '/upload', agent: false, headers: { expect: '100-continue', 'content-length': 65_536 } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection, body }));
      });
      req.on('error', reject);
      req.on('continue', () => req.end(Buffer.alloc(65_536, 7)));
      req.flushHeaders();
    });
    const redeployed = app.redeploy();
    // The slowness is the thing under test: a part every 400 ms, 2 s in all, across the redeploy and the grace window.
    for (const part of ['GET /sync HTTP/1.1\r\n', 'Host: x\r\n', 'X-A: 1\r\n', 'X-B: 2\r\n', 'X-C: 3\r\n', '\r\n']) {
      slow.socket.write(part);
      if (part !== '\r\n') await new Promise((r) => setTimeout(r, 400));
    }
    await redeployed;
    await slow.ended;
    expect(responses(slow.text()).map((r) => [r.status, r.body, r.connection])).to.deep.equal([[200, String(old.pid), 'close']]);
    expect(await upload).to.deep.equal({ status: 200, connection: 'close', body: `${old.pid} 65536` });
    const result = await load.stop();
    expect(result.errors).to.deep.equal([]);
    expect(await app.halted(old.pid)).to.equal(0);
  });

  it('an https connection idle after its handshake is closed after the grace window, not at the shutdown timeout', async () => {
    app = await ProtocolsApp.start({ APP_SHUTDOWN_TIMEOUT: '8000' });
    const old = app.first;
    const client = tls.connect({ port: app.ports.https, host: '127.0.0.1', rejectUnauthorized: false });
    await once(client, 'secureConnect');
    client.resume();
    const closed = once(client, 'close');
    await app.redeploy();
    const drainAt = Date.now();
    await closed;
    // The grace window is 300 ms; the shutdown timeout 8 s.
    expect(Date.now() - drainAt).to.be.below(3_000);
    expect(await app.halted(old.pid)).to.equal(0);
  });

  it('a WebSocket is kept through the drain until the application closes it with 1012, then reconnects to the new instance', async () => {
    app = await ProtocolsApp.start({ WS_CLOSE_DELAY: '1500' });
    const old = app.first;
    const ws = new WebSocket(`ws://127.0.0.1:${app.ports.http}/`);
    await once(ws, 'open');
    const echoes: string[] = [];
    ws.on('message', (m) => echoes.push(String(m)));
    let sent = 0;
    const timer = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send(String(++sent)), 50);
    const closed = new Promise<[number, string, number]>((resolve) => ws.once('close', (code, reason) => resolve([code, String(reason), Date.now()])));
    const next = await app.redeploy();
    const readyAt = Date.now();
    const [code, reason, at] = await closed;
    clearInterval(timer);
    expect([code, reason]).to.deep.equal([1012, 'service restart']);
    // Kept well past the grace window (300 ms), until the application's own 1.5 s.
    expect(at - readyAt).to.be.at.least(1_200);
    expect(app.child.stdout).to.include(`drain ${old.pid} http upgraded 1`);
    // Every message sent before the close frame came back, from the old instance.
    expect(echoes.length).to.be.at.least(sent - 1);
    expect(echoes).to.deep.equal(echoes.map((_m, i) => `${old.pid} ${i + 1}`));
    // The client comes back, to the new instance.
    const again = new WebSocket(`ws://127.0.0.1:${app.ports.http}/`);
    await once(again, 'open');
    again.send('hello');
    const [reply] = (await once(again, 'message')) as [Buffer];
    expect(String(reply)).to.equal(`${next.pid} hello`);
    again.close();
    expect(await app.halted(old.pid)).to.equal(0);
  });

  it('a WebSocket the application leaves open outlives the shutdown timeout up to upgradedTimeout, then is closed and counted', async () => {
    app = await ProtocolsApp.start({ WS_CLOSE: 'never', APP_SHUTDOWN_TIMEOUT: '1000', APP_UPGRADED_TIMEOUT: '3000' });
    const old = app.first;
    const ws = new WebSocket(`ws://127.0.0.1:${app.ports.http}/`);
    await once(ws, 'open');
    const closed = new Promise<[number, number]>((resolve) => ws.once('close', (code) => resolve([code, Date.now()])));
    await app.redeploy();
    const readyAt = Date.now();
    await new Promise((r) => setTimeout(r, 2_000)); // past the shutdown timeout (1 s): the connection is still served
    ws.send('late');
    const [reply] = (await once(ws, 'message')) as [Buffer];
    expect(String(reply)).to.equal(`${old.pid} late`);
    const [code, at] = await closed;
    expect(code).to.equal(1006); // destroyed, no close frame
    expect(at - readyAt).to.be.within(2_500, 5_000);
    expect(await app.halted(old.pid)).to.equal(1);
    expect(app.child.stdout).to.include(`stop ${old.pid} live`);
  });
});
