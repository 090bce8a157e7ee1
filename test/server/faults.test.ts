/**
 * Faults during a redeploy, with a client looping requests throughout: the
 * service keeps answering, the caller gets a coded error, no process is left
 * behind, and the survivor holds no leaked descriptor.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { ControlClient, receive } from '../../src/index.js';
import { appReady, cli, endGenerations, gone, openFds, root, spawnApp, tmpDir, until, type Child } from '../helpers.js';
import { LoadLoop } from '../load.js';

describe('faults during a redeploy', function () {
  this.timeout(60_000);
  let app: Child | undefined;
  let dir: string;
  let sock: string;
  let failFile: string;

  beforeEach(() => {
    dir = tmpDir();
    sock = path.join(dir, 'c.sock');
    failFile = path.join(dir, 'fail');
  });

  afterEach(async () => {
    await endGenerations(app);
    app = undefined;
  });

  function start(env: Record<string, string> = {}, command?: string[]): Promise<{ pid: number; port: number }> {
    app = spawnApp({ sock, failFile, env, command, cwd: env.CWD });
    return appReady(app);
  }

  /** spawnedPid: the pid of the new instance, from the old one's log line. */
  function spawnedPid(): Promise<number> {
    return until(() => {
      const m = app!.stderr.map((l) => /redeploy: spawned \(pid (\d+)\)/.exec(l)).find(Boolean);
      return m ? Number(m[1]) : 0;
    }, 10_000, 'the spawn');
  }

  async function redeploy(): Promise<Error & { code?: string }> {
    const c = await ControlClient.connect(sock);
    try {
      await c.request('redeploy');
      throw new Error('the redeploy should have failed');
    } catch (err) {
      return err as Error & { code?: string };
    } finally {
      c.close();
    }
  }

  /** failsCleanly: the redeploy fails with a coded error, the old instance served throughout and leaks nothing. */
  async function failsCleanly(mode: string, expected: RegExp): Promise<void> {
    const { pid, port } = await start();
    const baseline = openFds(pid);
    const load = new LoadLoop(port, 2, 2);
    await until(() => load.result.requests > 20, 10_000, 'some load');
    fs.writeFileSync(failFile, mode);
    const err = await redeploy();
    expect(err.code, err.message).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
    expect(err.message).to.match(expected);
    const newPid = Number(/pid (\d+)/.exec(err.message)![1]);
    await until(() => gone(newPid), 10_000, 'the new instance to be gone');
    await until(() => load.result.requests > 60, 10_000, 'more load after the failure');
    const result = await load.stop();
    expect(result.errors).to.deep.equal([]);
    expect(new Set(result.perLoop.flat())).to.deep.equal(new Set([pid]));
    await until(() => openFds(pid).length === baseline.length, 10_000, 'descriptors back to the baseline')
      .catch(() => expect(openFds(pid)).to.deep.equal(baseline));
  }

  it('SIGKILL of the new instance before it connects to the hand-off socket', async () => {
    await failsCleanly('kill-early', /was killed by SIGKILL before it was ready/);
  });

  it('SIGKILL of the new instance after it received the descriptors, before ready', async () => {
    await failsCleanly('kill-after-receive', /was killed by SIGKILL before it was ready/);
  });

  it('the new instance hits its open-file limit while receiving', async () => {
    await failsCleanly('limit-fds', /exited with code 1 before it was ready; its last words: .*(ERR_GRACEFUL_FDS_TRUNCATED|EMFILE)/);
  });

  it('SIGKILL of the new instance right after ready: the draining old instance serves again, and the redeploy fails with the reason', async () => {
    const { pid, port } = await start();
    const load = new LoadLoop(port, 3, 3);
    await until(() => load.result.requests > 30, 10_000, 'some load');
    fs.writeFileSync(failFile, 'kill-after-ready');
    const r = await cli(sock);
    const newPid = Number(/ready: pid (\d+)/.exec(r.stdout)?.[1]);
    expect(r.code, r.stdout + r.stderr).to.equal(1);
    expect(r.stdout).not.to.include('is serving');
    expect(r.stderr).to.match(new RegExp(`^error: the new instance \\(pid ${newPid}\\) was killed by SIGKILL \\d+ ms into the redeploy, after it was ready but within the take-back window: ` +
      'this instance took back its sockets and goes on serving'));
    await app!.next(new RegExp(`^takeback ${pid} from ${newPid}$`));
    const before = load.result.requests;
    await until(() => load.result.requests > before + 100, 10_000, 'requests after the take-back');
    const result = await load.stop();
    // Only requests in flight in the killed process may fail: at most one per client loop.
    expect(result.errors.length, result.errors.join('\n')).to.be.at.most(6);
    for (const e of result.errors) expect(e).to.match(/ECONNRESET|socket hang up|EPIPE/);
    expect(result.perLoop.every((seen) => seen.at(-1) === pid), 'the old pid answers at the end').to.equal(true);
    expect(gone(newPid)).to.equal(true);
    // It is a full instance again: the next redeploy works.
    fs.rmSync(failFile);
    const c2 = await ControlClient.connect(sock);
    const r2 = (await c2.request('redeploy')) as { pid: number };
    c2.close();
    await app!.next(new RegExp(`^ready ${r2.pid} `));
    await until(() => gone(pid), 20_000, 'the old instance to exit after the second redeploy');
  });

  it('SIGTERM to the new instance right after ready: it halts, and the draining old instance does not serve again', async () => {
    const { pid } = await start({ APP_TAKE_BACK_WINDOW: '5000' });
    const c = await ControlClient.connect(sock);
    const r = (await c.request('redeploy')) as { pid: number };
    c.close();
    process.kill(r.pid, 'SIGTERM'); // well inside the old one's take-back window
    await until(() => gone(r.pid) && gone(pid), 30_000, 'both instances to exit');
    expect(app!.stdout.filter((l) => l.startsWith('takeback')), 'no take-back after a halt asked for').to.deep.equal([]);
  });

  it('SIGKILL of the old instance while it drains: the new one serves, only in-flight requests of the old fail', async () => {
    const { pid, port } = await start();
    const load = new LoadLoop(port, 3, 3);
    await until(() => load.result.requests > 30, 10_000, 'some load');
    const c = await ControlClient.connect(sock);
    const r = (await c.request('redeploy')) as { pid: number };
    c.close();
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // it may have finished draining already
    }
    const before = load.result.requests;
    await until(() => load.result.requests > before + 100, 10_000, 'requests after the kill');
    const result = await load.stop();
    expect(result.errors.length, result.errors.join('\n')).to.be.at.most(6);
    for (const e of result.errors) expect(e).to.match(/ECONNRESET|socket hang up|EPIPE/);
    expect(result.perLoop.every((seen) => seen.at(-1) === r.pid)).to.equal(true);
  });

  it('SIGTERM to the old instance while a redeploy is under way: the redeploy is abandoned, the new instance killed', async () => {
    const { pid } = await start();
    fs.writeFileSync(failFile, 'hang');
    const pending = redeploy();
    const newPid = await spawnedPid();
    process.kill(pid, 'SIGTERM');
    const err = await pending;
    expect(err.code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
    expect(err.message).to.include(`the redeploy was abandoned because this instance is stopping; the new instance (pid ${newPid}) was killed`);
    expect((await app!.exited).code).to.equal(0);
    expect(gone(newPid)).to.equal(true);
  });

  it('the program file was deleted', async () => {
    const copy = path.join(dir, 'app-copy.js');
    // A copy of the fixture that imports the library from where the fixture does.
    fs.writeFileSync(copy, fs.readFileSync(path.join(root, 'dist/test/fixtures/app.js'), 'utf8')
      .replaceAll('../../src/', `${path.join(root, 'dist/src')}/`));
    const { pid, port } = await start({}, [process.execPath, copy]);
    const load = new LoadLoop(port, 1, 1);
    await until(() => load.result.requests > 10, 10_000, 'some load');
    fs.rmSync(copy);
    const err = await redeploy();
    expect(err.code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
    expect(err.message, err.message).to.match(/exited with code 1 before it was ready; its last words: .*Cannot find module/);
    const result = await load.stop();
    expect(result.errors).to.deep.equal([]);
    expect(new Set(result.perLoop.flat())).to.deep.equal(new Set([pid]));
  });

  it('the working directory is gone', async () => {
    const cwd = path.join(dir, 'cwd');
    fs.mkdirSync(cwd);
    const { pid, port } = await start({ CWD: cwd }, [process.execPath, path.join(root, 'dist/test/fixtures/app.js')]);
    const load = new LoadLoop(port, 1, 1);
    await until(() => load.result.requests > 10, 10_000, 'some load');
    fs.rmdirSync(cwd);
    const err = await redeploy();
    expect(err.code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
    expect(err.message).to.match(/could not start the new instance: spawn .* ENOENT/);
    const result = await load.stop();
    expect(result.errors).to.deep.equal([]);
    expect(new Set(result.perLoop.flat())).to.deep.equal(new Set([pid]));
  });

  it('two redeploys asked at the same instant from two clients: exactly one runs', async () => {
    await start();
    const [a, b] = await Promise.all([ControlClient.connect(sock), ControlClient.connect(sock)]);
    const results = await Promise.allSettled([a.request('redeploy'), b.request('redeploy')]);
    a.close();
    b.close();
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(ok).to.have.length(1);
    expect(refused.map((r) => (r.reason as { code: string }).code)).to.deep.equal(['ERR_GRACEFUL_UPGRADE_IN_PROGRESS']);
    await app!.next(new RegExp(`^ready ${(ok[0] as PromiseFulfilledResult<{ pid: number }>).value.pid} `));
  });

  it('the hand-off socket serves only the instance it spawned: an intruder gets nothing, and it is logged', async () => {
    const { pid } = await start();
    fs.writeFileSync(failFile, 'hang');
    const pending = redeploy();
    // The new instance's environment names the hand-off socket.
    const newPid = await spawnedPid();
    const handoff = /GRACEFUL_HANDOFF=([^\0]+)/.exec(fs.readFileSync(`/proc/${newPid}/environ`, 'utf8'))![1]!;
    const got: number[] = [];
    const n = await receive(handoff, (fd) => {
      got.push(fd);
      fs.closeSync(fd);
    });
    expect(n).to.equal(0);
    await until(() => app!.stderr.some((l) => l.includes(`hand-off: refused pid ${process.pid} (uid ${process.getuid!()}); only the new instance (pid ${newPid}) may connect`)), 5000, 'the refusal in the log');
    expect((await pending).code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
    void pid;
  });
});
