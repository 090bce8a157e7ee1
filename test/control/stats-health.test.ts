/**
 * The stats command (requests and connections per listener, redeploys done,
 * failed and taken back, their timings; totals carried across redeploys) and
 * `graceful-restart health --probe-listeners [--http-path]`, which fails when
 * the control socket answers but the public port does not, or answers a non-2xx.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ControlClient } from '../../src/index.js';
import { endGenerations, httpGet, root, spawnChild, spawnFixture, tmpDir, type Child } from '../helpers.js';
import { post } from '../load.js';

const cli = path.join(root, 'bin/graceful-restart.js');

function graceful(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cli, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    child.stdin!.end('');
  });
}

interface StatsResult {
  pid: number;
  listeners: { name: string; protocol: string; open: boolean; host: string; port: number; requests: number; connections: number; openConnections: number }[];
  redeploys: { done: number; failed: number; takenBack: number };
  last: { pid: number | null; result: string; at: string; readyMs: number | null; reason?: string }[];
}

async function request(sock: string, cmd: string): Promise<unknown> {
  const client = await ControlClient.connect(sock, 10_000);
  try {
    return await client.request(cmd);
  } finally {
    client.close();
  }
}

describe('stats and health --probe-listeners', function () {
  this.timeout(90_000);
  let dir: string;
  let sock: string;
  let failFile: string;
  let app: Child | undefined;
  let port: number;

  beforeEach(async () => {
    dir = tmpDir();
    sock = path.join(dir, 'app.sock');
    failFile = path.join(dir, 'fail');
    app = spawnFixture('app', [], { env: { ...process.env, APP_SOCKET: sock, APP_FAIL_FILE: failFile, APP_UPGRADE_TIMEOUT: '5000' } });
    port = Number((await app.next(/^ready /)).split(' ')[2]);
  });
  afterEach(async () => {
    await endGenerations(app);
    app = undefined;
  });

  it('counts requests and connections per listener, carries the totals over redeploys, and counts done, failed and taken back', async () => {
    for (let i = 0; i < 20; i++) expect((await httpGet({ port })).status).to.equal(200);
    let s = await request(sock, 'stats') as StatsResult;
    expect(s.listeners).to.have.length(1);
    expect(s.listeners[0]).to.include({ name: 'http', protocol: 'http', open: true, host: '127.0.0.1', port, requests: 20, connections: 20 });
    expect(s.redeploys).to.deep.equal({ done: 0, failed: 0, takenBack: 0 });
    expect(s.last).to.deep.equal([]);

    const done = await request(sock, 'redeploy') as { pid: number };
    await app!.next(new RegExp(`^ready ${done.pid} `));
    s = await request(sock, 'stats') as StatsResult;
    expect(s.pid).to.equal(done.pid);
    expect(s.listeners[0]).to.include({ requests: 20, connections: 20 });
    expect(s.redeploys).to.deep.equal({ done: 1, failed: 0, takenBack: 0 });
    expect(s.last).to.have.length(1);
    expect(s.last[0]).to.include({ pid: done.pid, result: 'done' });
    expect(s.last[0]!.readyMs).to.be.a('number').above(0);

    for (let i = 0; i < 5; i++) await httpGet({ port });
    fs.writeFileSync(failFile, 'exit');
    let err = await request(sock, 'redeploy').catch((e: Error) => e);
    expect(err).to.include({ code: 'ERR_GRACEFUL_REDEPLOY_FAILED' });
    fs.writeFileSync(failFile, 'kill-after-ready');
    err = await request(sock, 'redeploy').catch((e: Error) => e);
    expect(err).to.include({ code: 'ERR_GRACEFUL_REDEPLOY_FAILED' });
    s = await request(sock, 'stats') as StatsResult;
    expect(s.pid).to.equal(done.pid);
    expect(s.listeners[0]).to.include({ requests: 25, connections: 25 });
    expect(s.redeploys).to.deep.equal({ done: 1, failed: 2, takenBack: 1 });
    expect(s.last.map((t) => [t.result, t.reason])).to.deep.equal([['done', undefined], ['failed', 'exit'], ['taken-back', 'taken-back']]);
    expect(s.last[1]!.readyMs).to.equal(null);
    expect(s.last[2]!.readyMs).to.be.a('number');

    fs.rmSync(failFile);
    const again = await request(sock, 'redeploy') as { pid: number };
    await app!.next(new RegExp(`^ready ${again.pid} `));
    const text = await graceful(['-s', sock, 'stats']);
    expect(text.code).to.equal(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[0]).to.match(new RegExp(`^pid ${again.pid}, counting since \\d{4}-\\d\\d-\\d\\dT`));
    expect(lines[1]).to.equal(`listener http (http 127.0.0.1:${port}): 25 request(s), 25 connection(s), 0 open`);
    expect(lines[2]).to.equal('redeploys: 2 done, 2 failed (1 taken back)');
    expect(lines.slice(3).map((l) => l.replace(/^ {2}\S+ /, ''))).to.deep.equal([
      `pid ${done.pid} done, ready after ${s.last[0]!.readyMs} ms`,
      `pid ${s.last[1]!.pid ?? '-'} failed (exit)`,
      `pid ${s.last[2]!.pid} taken-back, ready after ${s.last[2]!.readyMs} ms`,
      lines[6]!.replace(/^ {2}\S+ /, ''),
    ]);
    expect(lines[6]).to.match(new RegExp(`^ {2}\\S+ pid ${again.pid} done, ready after \\d+ ms$`));
    expect(lines).to.have.length(7);
  });

  it('health --probe-listeners connects to each listener; --http-path wants a 2xx; a port that refuses fails it', async () => {
    const where = `listener http (http 127.0.0.1:${port})`;
    let r = await graceful(['health', '--probe-listeners', sock]);
    expect(r.stdout.split('\n')[1]).to.equal(`healthy: ${where} accepts connections`);
    expect(r.code).to.equal(0);
    r = await graceful(['health', sock, '--http-path', '/status/204']);
    expect(r.stdout.split('\n')[1]).to.equal(`healthy: ${where} answered 204 to GET /status/204`);
    expect(r.code).to.equal(0);
    r = await graceful(['health', '--http-path=/status/500', sock]);
    expect(r.stdout).to.match(/^healthy: pid \d+ ready in runlevel 3\n/);
    expect(r.stdout.split('\n')[1]).to.equal(`unhealthy: ${where} answered 500 to GET /status/500`);
    expect(r.code).to.equal(1);

    // A listener that accepts but never answers: bounded by --timeout.
    r = await graceful(['--timeout', '500', 'health', '--http-path', '/slow?ms=5000', sock]);
    expect(r.stdout.split('\n')[1]).to.equal(`unhealthy: ${where} does not answer: ETIMEDOUT: no answer within 500 ms`);
    expect(r.code).to.equal(1);

    // Careless inputs: exit 2 with the usage.
    for (const args of [['health', '--http-path', 'healthz', sock], ['health', '--http-path'], ['health', '--bogus', sock], ['health', sock, 'other']]) {
      r = await graceful(args);
      expect(r.code, args.join(' ')).to.equal(2);
      expect(r.stderr).to.match(/^error: /);
      expect(r.stderr).to.include('usage: graceful-restart health [--probe-listeners] [--http-path </path>] <socket>');
    }

    // The control socket answers, the public port does not.
    expect(await post(port, '/break')).to.include({ ok: true, broken: true });
    r = await graceful(['health', sock]);
    expect(r.code).to.equal(0); // the control socket alone says healthy
    r = await graceful(['health', '--probe-listeners', sock]);
    expect(r.stdout.split('\n')[1]).to.match(new RegExp(`^unhealthy: ${where.replace(/[()]/g, '\\$&')} does not answer: ECONNREFUSED: `));
    expect(r.code).to.equal(1);
  });

  it('the example server: its HTTP/2 (h2c) listener counts streams, and health asks it over HTTP/2', async () => {
    await endGenerations(app); // this test runs the example instead of the fixture
    app = undefined;
    const ex = spawnChild(process.execPath, [path.join(root, 'dist/example/server.js')], {
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', GRACEFUL_SOCKET: sock, LOG_FILE: path.join(dir, 'app.log') },
    });
    try {
      await ex.next(/serving/);
      const before = await request(sock, 'stats') as StatsResult;
      const h2 = before.listeners.find((l) => l.protocol === 'h2c')!;
      expect(h2, JSON.stringify(before.listeners)).to.include({ name: 'h2', requests: 0 });
      const r = await graceful(['health', '--http-path', '/', sock]);
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      expect(r.stdout).to.include(`healthy: listener h2 (h2c 127.0.0.1:${h2.port}) answered 200 to GET /\n`);
      const after = await request(sock, 'stats') as StatsResult;
      expect(after.listeners.find((l) => l.name === 'h2')).to.include({ requests: 1, connections: 1 });
    } finally {
      ex.kill('SIGKILL');
      await ex.exited;
    }
  });
});
