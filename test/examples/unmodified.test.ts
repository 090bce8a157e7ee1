/**
 * docs/unmodified.md, as a user runs it: example/unmodified-server.mjs (which
 * does not import the package) under `graceful-restart run -s app.sock`; a
 * redeploy by the CLI and by SIGHUP to run's pid, each answered by a new pid;
 * status and stats through run's socket; SIGUSR1 re-opens the --log file
 * (and starts no inspector); after SIGTERM run exits 0 (draining a request
 * in flight is tested in test/register/); --no-notify runs the program as it is.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { cli, freePort, httpGet, root, spawnChild, tmpDir, until, type Child } from '../helpers.js';

const bin = path.join(root, 'bin/graceful-restart.js');
const example = path.join(root, 'example/unmodified-server.mjs');

describe('docs/unmodified.md: an unmodified server under graceful-restart run', function () {
  this.timeout(60_000);
  let run: Child | undefined;
  afterEach(async () => {
    run?.kill('SIGTERM');
    await run?.exited;
    run = undefined;
  });

  async function pidOf(port: number): Promise<string> {
    return (await httpGet({ port })).body.trim().split(' ').pop()!;
  }

  it('redeploys by the CLI and by SIGHUP; status, stats and reopen through run\'s socket; SIGTERM ends it, run exits 0 and the program\'s socket is gone', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'app.sock');
    const log = path.join(dir, 'app.log');
    const port = await freePort();
    run = spawnChild(process.execPath, [bin, 'run', '-s', sock, '--log', log, '--settle', '100', '--', 'node', example], { env: { ...process.env, PORT: String(port) }, cwd: dir });
    await until(async () => (await cli('health', sock)).code === 0, 15_000, 'healthy');
    const first = await pidOf(port);
    const r = await cli(sock);
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    const second = await pidOf(port);
    expect(second).to.not.equal(first);
    process.kill(run.pid, 'SIGHUP');
    const third = await until(async () => { const p = await pidOf(port); return p !== second ? p : null; }, 15_000, 'a third pid');
    await until(async () => (await cli('health', sock)).code === 0, 15_000, 'healthy again');
    const status = JSON.parse((await cli('-s', sock, '--json', 'status')).stdout) as { result: { pid: number; listeners: { name: string }[] } };
    expect(String(status.result.pid)).to.equal(third);
    expect(status.result.listeners.map((l) => l.name)).to.deep.equal([`tcp:*:${port}`]);
    const stats = await cli('-s', sock, 'stats');
    expect(stats.code, stats.stderr).to.equal(0);
    expect(fs.readFileSync(log, 'utf8')).to.match(new RegExp(`server: pid ${third} listening on ${port}`));
    fs.renameSync(log, `${log}.1`);
    process.kill(run.pid, 'SIGUSR1');
    await until(() => fs.existsSync(log), 10_000, 'the log re-opened');
    expect(run.stderr.join('\n')).to.not.match(/Debugger listening/);
    expect((await httpGet({ port })).body).to.equal(`hello from ${third}\n`);
    run.kill('SIGTERM');
    expect((await run.exited).code).to.equal(0);
    run = undefined;
    expect(fs.existsSync(`${sock}.app`)).to.equal(false);
  });

  it('--no-notify: the program runs as it is (no register), and a register flag beside it is a usage error', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const bad = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawnChild(process.execPath, [bin, 'run', '--no-notify', '--workers', '2', '--', 'node', example]);
      void c.exited.then((e) => resolve({ code: e.code, stderr: c.stderr.join('\n') }));
    });
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.match(/--workers is for a program run under graceful-restart\/register/);
    run = spawnChild(process.execPath, [bin, 'run', '-s', path.join(dir, 's.sock'), '--no-notify', '--', 'node', example], { env: { ...process.env, PORT: String(port) } });
    await run.next(/listening/);
    expect(fs.existsSync(path.join(dir, 's.sock.app'))).to.equal(false);
    expect((await httpGet({ port })).status).to.equal(200);
  });
});
