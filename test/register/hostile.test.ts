/**
 * graceful-restart/register against programs that do what it cannot keep,
 * or keep only in part (test/fixtures/unmodified/hostile): each gets a coded
 * error, a line on stderr, or the documented behaviour, never silence.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { cli, freePort, httpGet, spawnChild, tmpDir, until, type Child } from '../helpers.js';
import { pidIn, REGISTER, RunApp, stopAll, UNMODIFIED } from './unmodified.js';

const HOSTILE = path.join(UNMODIFIED, 'hostile');

describe('register: hostile and careless programs', function () {
  this.timeout(60_000);
  const started: Child[] = [];
  afterEach(async () => {
    await stopAll();
    for (const c of started.splice(0)) {
      c.kill('SIGKILL');
      await c.exited;
    }
  });

  /** preload runs a hostile fixture as `node --import <register> <fixture>` with a control socket of its own. */
  async function preload(fixture: string, env: Record<string, string> = {}): Promise<{ child: Child; port: number }> {
    const port = await freePort();
    const child = spawnChild(process.execPath, ['--import', REGISTER, path.join(HOSTILE, fixture)], {
      env: { ...process.env, PORT: String(port), GRACEFUL_CONTROL_SOCKET: path.join(tmpDir(), 'app.sock'), ...env },
    });
    started.push(child);
    return { child, port };
  }

  it('two servers listen on one address: the second gets EADDRINUSE as in plain Node (code, syscall, address, port), naming the listener; the first serves', async () => {
    const { child, port } = await preload('listen-twice.mjs');
    expect(await child.next(/^b error/)).to.equal(`b error EADDRINUSE listen 127.0.0.1:${port} listen EADDRINUSE: address already in use 127.0.0.1:${port} `
      + `(graceful-restart/register: this program listens on tcp:127.0.0.1:${port} already; one listener per address is kept across redeploys, so listen on it once)`);
    await child.next(/^a listening/);
    expect((await httpGet({ port })).body).to.equal(`a ${child.pid}\n`);
  });

  it('port 0: a line on stderr says that listener is not kept across redeploys; it serves on its port as in plain Node', async () => {
    const { child } = await preload('port0.mjs');
    const port = Number((await child.next(/^listening on \d+$/)).split(' ')[2]);
    expect((await httpGet({ port })).body).to.equal(`port0 ${child.pid}\n`);
    expect(child.stderr.join('\n')).to.include(`graceful-restart: pid ${child.pid} listens on port 0 (any free port): that listener is not kept across redeploys`);
  });

  it('a worker thread: its listen fails with ERR_GRACEFUL_LISTEN_UNSUPPORTED, saying to listen in the main thread', async () => {
    const { child, port } = await preload('worker-thread.mjs');
    expect(await child.next(/^thread error/)).to.equal(`thread error ERR_GRACEFUL_LISTEN_UNSUPPORTED listen("tcp:127.0.0.1:${port}"): the program listens in a worker thread, `
      + 'whose listeners cannot be handed to a new version: listen in the main thread (and use --workers n, or GRACEFUL_WORKERS, for more processes)');
    expect(await child.exited).to.deep.equal({ code: 0, signal: null });
  });

  it('node:cluster: the worker\'s listen fails with ERR_GRACEFUL_LISTEN_UNSUPPORTED (not an EEXIST from a second control socket), saying to use --workers', async () => {
    const { child, port } = await preload('cluster.mjs');
    expect(await child.next(/^worker error/)).to.equal(`worker error ERR_GRACEFUL_LISTEN_UNSUPPORTED listen("tcp:127.0.0.1:${port}"): the program runs node:cluster itself, `
      + 'whose workers listen through their primary: run it as one process, without cluster.fork(), and use --workers n (or GRACEFUL_WORKERS) for more processes');
    await child.next(/^worker exited with code 3$/);
  });

  it('a UNIX socket path: address() is the path, a stale socket file is replaced, and 3 redeploys keep it, each answered by a new pid', async () => {
    const where = path.join(tmpDir(), 'app.sock');
    const stale = spawnChild('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(where)})`]);
    expect((await stale.exited).code).to.equal(0);
    const app = await RunApp.start('hostile/unix.mjs', { env: { APP_PATH: where }, wait: false });
    await app.sup.next(new RegExp(`listening on ${where.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
    await until(async () => (await app.health()).code === 0, 20_000, 'ready');
    const pids = [pidIn((await httpGet({ socketPath: where })).body)];
    for (let i = 0; i < 3; i++) {
      const r = await app.control('redeploy');
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      pids.push(pidIn((await httpGet({ socketPath: where })).body));
    }
    expect(new Set(pids).size).to.equal(4);
  });

  it('a UNIX socket path the program removes before it listens and at exit: the file is kept (a line says so), 3 redeploys answered through it, and gone after the stop', async () => {
    const where = path.join(tmpDir(), 'app.sock');
    const app = await RunApp.start('hostile/unix.mjs', { env: { APP_PATH: where, APP_UNLINK: '1' }, wait: false });
    await app.sup.next(/listening on/);
    await until(async () => (await app.health()).code === 0, 20_000, 'ready');
    const pids = [pidIn((await httpGet({ socketPath: where })).body)];
    for (let i = 0; i < 3; i++) {
      const r = await app.control('redeploy');
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      pids.push(pidIn((await httpGet({ socketPath: where })).body));
    }
    expect(new Set(pids).size).to.equal(4);
    await until(() => app.sup.stderr.some((l) => l.includes(`kept ${where}: it is the socket file of a listener kept across redeploys`)), 5_000, 'the line');
    expect(await app.stop()).to.deep.equal({ code: 0, signal: null });
    expect(fs.existsSync(where)).to.equal(false);
  });

  it('its own SIGTERM handler that calls process.exit: redeploys work; at SIGTERM a line says the handler runs beside the drain', async () => {
    const app = await RunApp.start('hostile/sigterm-exit.mjs');
    const first = await app.pid();
    expect((await app.control('redeploy')).code).to.equal(0);
    const second = await app.pid();
    expect(second).to.not.equal(first);
    expect(await app.stop()).to.deep.equal({ code: 0, signal: null });
    expect(app.sup.stderr.join('\n')).to.include(`graceful-restart: pid ${second}: SIGTERM: the program has 1 SIGTERM handler(s) of its own, which run beside the drain: `
      + 'one that calls process.exit() ends the requests in flight with it');
    expect(app.sup.stdout).to.include(`pid ${second}: own SIGTERM handler, exit`);
  });
});

describe('register: redeploying a program that is not ready yet', function () {
  this.timeout(30_000);
  it('a redeploy through the supervisor before the first instance said READY=1 is refused, and works once it did', async () => {
    const app = await RunApp.start('plain.mjs', { wait: false, flags: ['--settle', '3000'] });
    try {
      await app.sup.next(/listening on/);
      const early = await app.control('redeploy');
      expect(early.code).to.equal(1);
      expect(early.stderr).to.match(/runs under graceful-restart\/register and is not ready yet, so "redeploy" cannot reach it/);
      await until(async () => (await app.health()).code === 0, 20_000, 'ready');
      const r = await cli('-s', app.sock, 'redeploy');
      expect(r.code, r.stdout + r.stderr).to.equal(0);
    } finally {
      await app.stop();
    }
  });
});
