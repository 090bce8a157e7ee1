/**
 * status counts each listener's connections by drain state, for people and
 * in --json: real clients hold connections in every state of the protocols
 * fixture while it serves, and while it drains after a SIGTERM.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { once } from 'node:events';
import WebSocket from 'ws';
import { ControlClient, type ConnectionStates } from '../../src/index.js';
import { endGenerations, root, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

const cli = path.join(root, 'bin/graceful-restart.js');

function graceful(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cli, ...args], { timeout: 30_000 }, (err, stdout) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout });
    });
    child.stdin!.end();
  });
}

const zero: ConnectionStates = {
  idle: 0, headers: 0, request: 0, pipelined: 0, upgraded: 0, http2: 0, http2Streams: 0, tlsHandshake: 0, tlsBeforeRequest: 0, other: 0, handingOver: 0,
};

/** The connections the test holds, by listener. */
const expected: Record<string, ConnectionStates> = {
  http: { ...zero, idle: 1, headers: 1, request: 1, pipelined: 1, upgraded: 1 },
  https: { ...zero, tlsHandshake: 1, tlsBeforeRequest: 1 },
  h2c: { ...zero, http2: 1, http2Streams: 1 },
  h2: { ...zero },
};

describe('status: connections by drain state', function () {
  this.timeout(60_000);
  let child: Child | undefined;
  const sockets: { destroy(): void }[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await endGenerations(child);
    child = undefined;
  });

  it('counts idle, arriving, in a request, pipelined, upgraded, HTTP/2 and TLS connections per listener, serving and draining', async () => {
    const sock = path.join(tmpDir(), 'app.sock');
    // Long bounds: nothing is closed by the drain while the test looks at it.
    child = spawnFixture('protocols', [], { env: { ...process.env, APP_SOCKET: sock, WS_CLOSE: 'never', APP_IDLE_GRACE: '30000', APP_SHUTDOWN_TIMEOUT: '30000' } });
    const [, pid, , portsJson] = /^ready (\d+) (\d+) (.*)$/.exec(await child.next(/^ready /))!;
    const ports = JSON.parse(portsJson!) as Record<string, number>;
    const connect = async (port: number) => {
      const s = net.connect(port, '127.0.0.1');
      sockets.push(s);
      await once(s, 'connect');
      return s;
    };
    const idle = await connect(ports.http!);
    idle.write('GET /sync HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(idle, 'data');
    (await connect(ports.http!)).write('GET / HTTP/1.1\r\nHost:'); // headers arriving
    (await connect(ports.http!)).write('GET /?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n');
    (await connect(ports.http!)).write('GET /?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\nGET /?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n');
    const ws = new WebSocket(`ws://127.0.0.1:${ports.http}/`);
    sockets.push({ destroy: () => ws.terminate() });
    await once(ws, 'open');
    await connect(ports.https!); // no byte of a handshake yet
    const secure = tls.connect({ port: ports.https!, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    sockets.push(secure);
    await once(secure, 'secureConnect');
    const session = http2.connect(`http://127.0.0.1:${ports.h2c}`);
    sockets.push(session);
    session.request({ ':path': '/?ms=60000' }).on('error', () => undefined).end();

    const client = await ControlClient.connect(sock);
    try {
      const states = async () => ((await client.request('status')) as { connectionStates: Record<string, ConnectionStates> }).connectionStates;
      await until(async () => JSON.stringify(await states()) === JSON.stringify(expected), 10_000, 'every connection in its state');
    } finally {
      client.close();
    }
    const serving = await graceful(['status', sock]);
    expect(serving.code).to.equal(0);
    const lines = serving.stdout.split('\n');
    const listener = (name: string) => lines.find((l) => l.startsWith(`  ${name} `));
    const row = (name: string, state: string, connections: number, words: string) =>
      new RegExp(`^ {2}${name} +${state} +tcp +127\\.0\\.0\\.1 +\\d+ +(\\d+|-) +${connections} +false +${words.replace(/[()/.]/g, '\\$&')}$`);
    expect(lines.find((l) => l.startsWith('  name '))).to.match(/^ {2}name +state +kind +host +port +fd +connections +systemd +states$/);
    expect(listener('http')).to.match(row('http', 'open', 5, '1 idle, 1 receiving request headers, 1 in a request, 1 with pipelined requests, 1 upgraded'));
    expect(listener('https')).to.match(row('https', 'open', 2, '1 in a TLS handshake, 1 TLS with no request yet'));
    expect(listener('h2c')).to.match(row('h2c', 'open', 1, '1 HTTP/2 session(s) with 1 stream(s)'));
    expect(listener('h2')).to.match(row('h2', 'open', 0, '-'));
    expect(serving.stdout, 'the words say it for people').not.to.include('connectionStates');

    // A halt drains: the same connections, each still in its state, on listeners that no longer accept.
    process.kill(Number(pid), 'SIGTERM');
    await until(async () => (await graceful(['status', sock])).stdout.includes('draining'), 10_000, 'the drain');
    const draining = await graceful(['status', sock]);
    const drainingLines = draining.stdout.split('\n');
    expect(drainingLines.find((l) => l.startsWith('  http '))).to.match(row('http', 'draining', 5, '1 idle, 1 receiving request headers, 1 in a request, 1 with pipelined requests, 1 upgraded'));
    expect(drainingLines.find((l) => l.startsWith('  h2c '))).to.match(row('h2c', 'draining', 1, '1 HTTP/2 session(s) with 1 stream(s)'));
    const json = await graceful(['--json', 'status', sock]);
    const result = (JSON.parse(json.stdout.trim()) as { result: { state: string; connections: number; connectionStates: unknown; listeners: { state: string }[] } }).result;
    expect(result.state).to.equal('halting');
    expect(result.connections).to.equal(8);
    expect(result.connectionStates).to.deep.equal(expected);
    expect(result.listeners.filter((l) => l.state === 'draining')).to.have.length(4);
  });
});
