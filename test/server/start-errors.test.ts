/**
 * A start that fails (the port in use, a missing directory, a control socket
 * in use) leaves nothing behind, even when the application never calls
 * telinit(0): the process does not stay alive because of the library, and
 * the control socket file it bound is gone once it exited.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { endGenerations, httpGet, spawnFixture, tmpDir, type Child } from '../helpers.js';

describe('errors at start', function () {
  this.timeout(30_000);
  let holder: net.Server;
  let port: number;
  let left: Child | undefined;
  beforeEach(async () => {
    holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    port = (holder.address() as net.AddressInfo).port;
  });
  afterEach(async () => {
    holder.close();
    await endGenerations(left);
    left = undefined;
  });

  const run = (env: Record<string, string>) => spawnFixture('start-fail', [], { env: { ...process.env, START_PORT: String(port), ...env } });

  it('EADDRINUSE, uncaught: exit 1 with the code, no control socket file left', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'app.sock');
    const c = run({ START_SOCKET: sock, START_CATCH: 'none' });
    expect((await c.exited).code).to.equal(1);
    expect(c.stderr.join('\n')).to.include(`listen("http"): EADDRINUSE: 127.0.0.1:${port} is in use by another process: stop it, or listen on another port`);
    expect(fs.readdirSync(dir)).to.deep.equal([]);
  });

  it('EADDRINUSE, caught without telinit(0): the process ends by itself and its socket file goes', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'app.sock');
    const c = run({ START_SOCKET: sock, START_CATCH: 'log' });
    expect(await c.exited).to.deep.equal({ code: 0, signal: null });
    expect(c.stdout).to.deep.equal(['failed EADDRINUSE']);
    expect(fs.readdirSync(dir)).to.deep.equal([]);
  });

  it('a missing directory and a control socket in use: the process ends by itself, the live socket is left to its owner', async () => {
    const dir = tmpDir();
    const missing = run({ START_SOCKET: path.join(dir, 'no', 'app.sock'), START_CATCH: 'log' });
    expect(await missing.exited).to.deep.equal({ code: 0, signal: null });
    expect(missing.stdout).to.deep.equal(['failed ENOENT']);

    const sock = path.join(dir, 'app.sock');
    left = run({ START_SOCKET: sock, START_CATCH: 'retry' });
    await left.next(/^ready /);
    const inUse = run({ START_SOCKET: sock, START_CATCH: 'log' });
    expect(await inUse.exited).to.deep.equal({ code: 0, signal: null });
    expect(inUse.stdout).to.deep.equal(['failed ERR_GRACEFUL_SOCKET_IN_USE']);
    expect(fs.statSync(sock).isSocket(), 'the owner keeps its socket').to.equal(true);
  });

  it('an application may still try another port: ready() holds the process again', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'app.sock');
    left = run({ START_SOCKET: sock, START_CATCH: 'retry' });
    const [, pid, p] = (await left.next(/^ready /)).split(' ');
    expect(left.stdout[0]).to.equal('failed EADDRINUSE');
    expect((await httpGet({ port: Number(p) })).body).to.equal(`hello from ${pid}\n`);
    expect(fs.statSync(sock).isSocket()).to.equal(true);
    process.kill(Number(pid), 'SIGTERM');
    expect((await left.exited).code).to.equal(0);
    expect(fs.existsSync(sock), 'a halt removes it').to.equal(false);
  });
});
