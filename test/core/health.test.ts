/** health.ts: the listener probes of `health --probe-listeners`, against real servers. */
import { expect } from 'chai';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { HEALTH_USAGE, parseHealthArgs, probeListeners } from '../../src/health.js';
import { fdCount, tmpDir, until } from '../helpers.js';

async function listen(server: net.Server, where: number | string): Promise<void> {
  await new Promise<void>((r) => (typeof where === 'string' ? server.listen(where, r) : server.listen(where, '127.0.0.1', r)));
}
const close = (server: net.Server): Promise<void> => new Promise((r) => server.close(() => r()));
const portOf = (server: net.Server): number => (server.address() as net.AddressInfo).port;

describe('health', () => {
  it('parseHealthArgs reads the socket and the options', () => {
    expect(parseHealthArgs(['/run/app.sock'])).to.deep.equal({ socket: '/run/app.sock', probeListeners: false, httpPath: undefined });
    expect(parseHealthArgs(['--probe-listeners', 's'])).to.deep.equal({ socket: 's', probeListeners: true, httpPath: undefined });
    expect(parseHealthArgs(['s', '--http-path', '/healthz'])).to.deep.equal({ socket: 's', probeListeners: true, httpPath: '/healthz' });
    expect(parseHealthArgs(['--http-path=/a?b=1', 's'])).to.deep.equal({ socket: 's', probeListeners: true, httpPath: '/a?b=1' });
  });

  it('parseHealthArgs gives the usage error to print for bad words', () => {
    expect(HEALTH_USAGE).to.equal('usage: graceful-restart health [--probe-listeners] [--http-path </path>] <socket>');
    expect(parseHealthArgs([])).to.equal(`error: "health" needs a control socket: graceful-restart health <socket>\n${HEALTH_USAGE}`);
    expect(parseHealthArgs(['--frob', 's'])).to.equal(`error: health: unknown option --frob\n${HEALTH_USAGE}`);
    expect(parseHealthArgs(['a', 'b'])).to.equal(`error: health takes one socket, got "a b"\n${HEALTH_USAGE}`);
    const pathError = (got: string) => `error: --http-path must be a path that starts with / (printable ASCII, no spaces, up to 2048 bytes), got ${got}\n${HEALTH_USAGE}`;
    expect(parseHealthArgs(['s', '--http-path'])).to.equal(pathError('""'));
    expect(parseHealthArgs(['s', '--http-path', 'healthz'])).to.equal(pathError('"healthz"'));
    expect(parseHealthArgs(['s', '--http-path=/a b'])).to.equal(pathError('"/a b"'));
    expect(parseHealthArgs(['s', `--http-path=/${'x'.repeat(2048)}`])).to.match(/^error: --http-path must be a path/);
  });

  it('probes TCP and UNIX listeners with a connection, HTTP and h2c ones with a GET of the path', async () => {
    const before = fdCount();
    const web = http.createServer((req, res) => {
      res.statusCode = req.url === '/healthz' ? 204 : 503;
      res.end();
    });
    const h2 = http2.createServer((req, res) => res.end('ok'));
    const tcp = net.createServer((s) => s.destroy());
    const sock = path.join(tmpDir(), 'u.sock');
    const unix = net.createServer((s) => s.destroy());
    await listen(web, 0);
    await listen(h2 as unknown as net.Server, 0);
    await listen(tcp, 0);
    await listen(unix, sock);
    const listeners = [
      { name: 'web', protocol: 'http', open: true, family: 'tcp', host: '0.0.0.0', port: portOf(web) },
      { name: 'h2', protocol: 'h2c', open: true, family: 'tcp', host: '127.0.0.1', port: portOf(h2 as unknown as net.Server) },
      { name: 'raw', protocol: 'tcp', open: true, family: 'tcp', host: '127.0.0.1', port: portOf(tcp) },
      { name: 'u', protocol: 'tcp', open: true, family: 'unix', path: sock },
    ];
    expect(await probeListeners(listeners, { timeout: 5000 })).to.deep.equal({ ok: true, lines: [
      `healthy: listener web (http 127.0.0.1:${portOf(web)}) accepts connections`,
      `healthy: listener h2 (h2c 127.0.0.1:${portOf(h2 as unknown as net.Server)}) accepts connections`,
      `healthy: listener raw (tcp 127.0.0.1:${portOf(tcp)}) accepts connections`,
      `healthy: listener u (tcp ${sock}) accepts connections`,
    ] });
    const r = await probeListeners(listeners.slice(0, 2), { httpPath: '/healthz', timeout: 5000 });
    expect(r).to.deep.equal({ ok: true, lines: [
      `healthy: listener web (http 127.0.0.1:${portOf(web)}) answered 204 to GET /healthz`,
      `healthy: listener h2 (h2c 127.0.0.1:${portOf(h2 as unknown as net.Server)}) answered 200 to GET /healthz`,
    ] });
    const bad = await probeListeners(listeners.slice(0, 1), { httpPath: '/other', timeout: 5000 });
    expect(bad).to.deep.equal({ ok: false, lines: [`unhealthy: listener web (http 127.0.0.1:${portOf(web)}) answered 503 to GET /other`] });
    await close(web);
    await close(h2 as unknown as net.Server);
    await close(tcp);
    await close(unix);
    // The probes' sockets close asynchronously (libuv closes a handle on its next turn): wait for the count to come back.
    await until(() => fdCount() === before, 10_000, 'every probe socket closed');
  });

  it('a closed listener or one nobody answers is unhealthy; no listener at all is healthy', async () => {
    const gone = net.createServer();
    await listen(gone, 0);
    const port = portOf(gone);
    await close(gone);
    const r = await probeListeners([
      { name: 'off', protocol: 'http', open: false, family: 'tcp', host: '::', port: 1 },
      { name: 'gone', protocol: 'tcp', open: true, family: 'tcp', host: '127.0.0.1', port },
    ], { timeout: 5000 });
    expect(r.ok).to.equal(false);
    expect(r.lines[0]).to.equal('unhealthy: listener off (http [::1]:1) is closed');
    expect(r.lines[1]).to.match(new RegExp(`^unhealthy: listener gone \\(tcp 127\\.0\\.0\\.1:${port}\\) does not answer: ECONNREFUSED: `));
    expect(await probeListeners([], { timeout: 5000 })).to.deep.equal({ ok: true, lines: ['healthy: no listener to probe'] });
  });
});
