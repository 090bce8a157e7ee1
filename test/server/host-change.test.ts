/**
 * A redeploy that moves a listener to another host on the same port
 * (127.0.0.1:P to 0.0.0.0:P, and back). What Linux allows: a socket cannot
 * bind an address overlapping a listening one on the same port (EADDRINUSE),
 * even with SO_REUSEADDR, unless both sockets have SO_REUSEPORT and the same
 * uid; the old socket's flag is read at the time of the new bind, so setting
 * it on the copy the new instance received is enough. A connection goes to
 * the socket bound to its very address before a wildcard one. Checked here
 * with real sockets first, then with a real redeploy under load on
 * 127.0.0.1, the address served before and after: no connection refused.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { addon } from '../../src/native.js';
import { endGenerations, freePort, gone, spawnFixture, tmpDir, until, type Child } from '../helpers.js';
import { LoadLoop } from '../load.js';

/** listening: the IPv4 hosts with a TCP socket listening on port (/proc/net/tcp), sorted. */
function listening(port: number): string[] {
  const hosts: string[] = [];
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== '0A') continue;
    const [hex, p] = f[1]!.split(':');
    if (parseInt(p!, 16) !== port) continue;
    hosts.push([3, 2, 1, 0].map((i) => parseInt(hex!.slice(i * 2, i * 2 + 2), 16)).join('.'));
  }
  return hosts.sort();
}

function listenOn(host: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host, port }, () => resolve(s));
  });
}

function post(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method: 'POST', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('a listener moved to another host on the same port', function () {
  this.timeout(60_000);

  describe('what the kernel allows', () => {
    for (const [from, to] of [['127.0.0.1', '0.0.0.0'], ['0.0.0.0', '127.0.0.1']] as const) {
      it(`${from} to ${to}: EADDRINUSE beside a socket listening as Node binds it; allowed once both have SO_REUSEPORT, set on the old one after its listen`, async () => {
        const port = await freePort();
        const old = await listenOn(from, port);
        try {
          const err = await listenOn(to, port).then((s) => { s.close(); return null; }, (e: NodeJS.ErrnoException) => e);
          expect(err?.code).to.equal('EADDRINUSE');
          expect(() => addon.listenReusePort(to, port, 16, false), 'SO_REUSEPORT on the new socket only').to.throw().with.property('code', 'EADDRINUSE');
          addon.setReusePort((old as unknown as { _handle: { fd: number } })._handle.fd);
          const beside = addon.listenReusePort(to, port, 16, false);
          addon.close(beside.fd);
        } finally {
          old.close();
        }
      });
    }
  });

  describe('in a redeploy under load on 127.0.0.1', () => {
    let app: Child | undefined;
    let load: LoadLoop | undefined;
    afterEach(async () => {
      await load?.stop();
      load = undefined;
      await endGenerations(app);
      app = undefined;
    });

    for (const [from, to] of [['127.0.0.1', '0.0.0.0'], ['0.0.0.0', '127.0.0.1']] as const) {
      it(`${from} to ${to}: the new instance serves on the new bind, nothing refused`, async () => {
        const port = await freePort();
        const hostFile = path.join(tmpDir(), 'host');
        fs.writeFileSync(hostFile, from);
        app = spawnFixture('app', [], { env: { ...process.env, APP_PORT: String(port), APP_HOST_FILE: hostFile, APP_TAKE_BACK_WINDOW: '500' } });
        const a = Number((await app.next(/^ready /)).split(' ')[1]);
        expect(listening(port)).to.deep.equal([from]);
        load = new LoadLoop(port, 2, 4);
        await until(() => load!.result.requests > 50, 10_000, 'some load');
        fs.writeFileSync(hostFile, to);
        const answer = await post(port, '/redeploy');
        expect(answer.status, answer.body).to.equal(200);
        expect(JSON.parse(answer.body), 'the redeploy succeeded').to.include({ ok: true });
        const b = Number((await app.next(/^ready /)).split(' ')[1]);
        expect(b).to.not.equal(a);
        await until(() => gone(a), 30_000, 'the old instance to exit');
        await until(() => load!.result.perLoop.every((seen) => seen.includes(b)), 10_000, 'every loop served by the new instance');
        const served = load.result.requests;
        await until(() => load!.result.requests > served + 50, 10_000, 'more load');
        const result = await load.stop();
        const refused = result.errors.filter((e) => e.includes('ECONNREFUSED'));
        expect(refused, 'refused').to.deep.equal([]);
        expect(result.errors, result.errors.slice(0, 5).join('\n')).to.deep.equal([]);
        // Once the old instance is gone, only the new bind listens.
        await until(() => listening(port).join() === to, 10_000, `only ${to}:${port} to listen`);
        expect(app.stderr.join('\n')).to.include(`listener "http" moves from ${from}:${port} to ${to}:${port}`);
      });
    }
  });
});
