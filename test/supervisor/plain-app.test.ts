/**
 * The supervisor with a plain program (python's http.server, which knows
 * nothing of this package): health says ready without a runlevel, and a
 * redeploy says what works instead of advising a signal that would kill it.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { root, spawnChild, tmpDir, httpGet, type Child } from '../helpers.js';

const cli = path.join(root, 'bin/graceful-restart.js');

function graceful(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('the supervisor with a plain app', function () {
  this.timeout(60_000);
  let sup: Child | undefined;
  afterEach(async () => {
    if (!sup) return;
    sup.kill('SIGTERM'); // forwarded to the app, which ends; then the supervisor exits
    await sup.exited;
    sup = undefined;
  });

  /** supervise runs python's http.server on a free port under `graceful-restart run`; resolves with its port. */
  async function supervise(sock: string, flags: string[]): Promise<number> {
    sup = spawnChild(process.execPath, [cli, 'run', '-s', sock, ...flags, '--', 'python3', '-u', '-m', 'http.server', '0', '--bind', '127.0.0.1']);
    // The supervisor listens on its control socket before it starts the app.
    const line = await sup.next(/^Serving HTTP on 127\.0\.0\.1 port \d+/);
    return Number(/port (\d+)/.exec(line)![1]);
  }

  it('--no-notify: health says ready with no runlevel; a redeploy is refused without advising SIGHUP, and the app serves on', async () => {
    const sock = path.join(tmpDir(), 'sup.sock');
    const port = await supervise(sock, ['--no-notify']);
    const { pid } = await status(sock);
    const health = await graceful(['health', sock]);
    expect(health).to.deep.include({ code: 0, stdout: `healthy: pid ${String(pid)} ready\n` });
    expect(health.stdout).not.to.include('undefined');

    const redeploy = await graceful([sock]);
    expect(redeploy.code).to.equal(1);
    expect(redeploy.stderr).to.match(/^error: the application \(pid \d+\) is not a GracefulServer \(it never spoke sd_notify\), so "redeploy" cannot reach it: a plain program has no control socket and cannot be redeployed; /);
    expect(redeploy.stderr).to.include('signal SIGTERM').and.include('--restart always').and.not.include('SIGHUP');
    const json = await graceful(['--json', sock]);
    expect(JSON.parse(json.stdout.trim())).to.nested.include({ ok: false, 'error.code': 'ERR_GRACEFUL_NOT_CONFIGURED' });

    expect((await httpGet({ port, path: '/' })).status).to.equal(200);
    const other = await graceful(['-s', sock, 'hello']);
    expect(other.code).to.equal(1);
    expect(other.stderr).to.include('only the supervisor\'s own commands work (help lists them)');
  });

  it('without --no-notify: health says the program never said READY=1 and names the flag', async () => {
    const sock = path.join(tmpDir(), 'sup.sock');
    await supervise(sock, []);
    const s = await status(sock);
    expect(s).to.include({ ready: false, notified: false });
    const health = await graceful(['health', sock]);
    expect(health).to.deep.include({
      code: 1,
      stdout: `unhealthy: pid ${String(s.pid)} not ready (it never said READY=1 by sd_notify: a program that does not speak it needs \`graceful-restart run --no-notify\`)\n`,
    });
  });
});

describe('the supervisor at start', () => {
  it('a missing socket directory: exit 1, one line naming the directory and what to do', async () => {
    const dir = path.join(tmpDir(), 'no');
    const r = await graceful(['run', '-s', path.join(dir, 'sup.sock'), '--', 'true']);
    expect(r).to.deep.equal({
      code: 1,
      stdout: '',
      stderr: `error: cannot start the supervisor: controlSocket: ENOENT: cannot bind ${path.join(dir, 'sup.sock')}: the directory ${dir} does not exist: create it (mkdir -p), or choose a path in one that does\n`,
    });
  });
});

async function status(sock: string): Promise<Record<string, unknown>> {
  const r = await graceful(['--json', '-s', sock, 'status']);
  return (JSON.parse(r.stdout.trim()) as { result: Record<string, unknown> }).result;
}
