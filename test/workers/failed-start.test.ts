/**
 * A redeploy of a service with 2 workers whose new worker 1 fails at start,
 * the application written with the README's start pattern
 * (`try { listen; ready } catch { telinit(0); exit(1) }`): the serving
 * generation keeps its control socket, the worker's telinit(0) halts it, and
 * the failure reason is one short line naming the worker and its own error.
 * Real processes: test/fixtures/failed-start.ts.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { ControlClient, ControlReplyError } from '../../src/control/client.js';
import { cli, endGenerations, gone, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

/** Service: the fixture's first primary, its control socket and the file that makes worker 1 fail. */
interface Service {
  child: Child;
  sock: string;
  failFile: string;
  primary: number;
}

async function startService(): Promise<Service> {
  const dir = tmpDir();
  const sock = path.join(dir, 'ctl.sock');
  const failFile = path.join(dir, 'fail');
  const child = spawnFixture('failed-start', [], { env: { ...process.env, FS_SOCKET: sock, FS_FAIL_FILE: failFile } });
  const primary = Number((await child.next(/^ready /)).split(' ')[1]);
  await until(() => workersOf(child, 1).length === 2, 10_000, 'the lines of the 2 workers');
  return { child, sock, failFile, primary };
}

/** workersOf: the pids the workers of generation g announced. */
function workersOf(child: Child, g: number): number[] {
  return child.stdout.flatMap((l) => {
    const m = /^worker \d+ (\d+) (\d+)$/.exec(l);
    return m && Number(m[2]) === g ? [Number(m[1])] : [];
  });
}

/** redeploy asks for one through the control socket: the reply, or the error it was refused with. */
async function redeploy(sock: string): Promise<unknown> {
  const c = await ControlClient.connect(sock, 5_000);
  try {
    return await c.request('redeploy', [], undefined, 60_000);
  } catch (err) {
    return err;
  } finally {
    c.close();
  }
}

/** shortReason: the reason is one line of at most 300 characters that names worker 1 with its pid and carries its own error, nothing nested. */
function shortReason(reason: string): void {
  expect(reason, reason).not.to.include('\n');
  expect(reason.length, reason).to.be.at.most(300);
  expect(reason, reason).to.match(/worker 1 of generation 2 \(pid \d+\) exited with code 1 before it was ready: .*cannot open its database \(worker 1, on purpose\)/);
  expect(reason.split('last words').length, reason).to.be.at.most(2);
  expect(reason, reason).not.to.include('closed the hand-off');
  expect(reason, reason).not.to.include('cannot start: worker');
}

describe('workers: a new worker that fails at start', function () {
  this.timeout(120_000);
  let s: Service | undefined;

  afterEach(async () => {
    await endGenerations(s?.child);
    if (s) for (const pid of workersOf(s.child, 1).concat(workersOf(s.child, 2))) if (!gone(pid)) process.kill(pid, 'SIGKILL');
    s = undefined;
  });

  it('keeps the serving generation\'s control socket: the CLI, health and a second redeploy work afterwards', async () => {
    s = await startService();
    const inode = fs.statSync(s.sock).ino;
    fs.writeFileSync(s.failFile, '1 catch');
    const failed = await redeploy(s.sock);
    expect(failed).to.be.instanceOf(ControlReplyError);
    expect((failed as ControlReplyError).code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
    // Everything of generation 2 is gone: its primary halted with telinit(0) and exited.
    const second = Number(/new instance \(pid (\d+)\)/.exec((failed as Error).message)?.[1] ?? s.child.stdout.find((l) => / 2$/.test(l))?.split(' ')[1]);
    if (second) await until(() => gone(second), 10_000, `the new primary (pid ${second}) to be gone`);
    expect(fs.existsSync(s.sock), 'the control socket file').to.equal(true);
    expect(fs.statSync(s.sock).ino).to.equal(inode);
    const status = await cli('status', s.sock);
    expect(status.code, status.stderr).to.equal(0);
    expect(status.stdout).to.include(`pid: ${s.primary}\n`);
    const health = await cli('health', s.sock);
    expect(health, health.stderr).to.deep.include({ code: 0, stdout: `healthy: pid ${s.primary} ready in runlevel 3 with 2 workers\n` });
    fs.rmSync(s.failFile);
    const r = await cli(s.sock);
    expect(r.code, r.stderr).to.equal(0);
    const pid = Number(/^ready: pid (\d+)/m.exec(r.stdout)?.[1]);
    expect(pid).to.be.greaterThan(0);
    await until(() => workersOf(s!.child, 2).length === 2, 10_000, 'the workers of generation 2');
    await until(() => gone(s!.primary), 20_000, 'the first primary to drain and exit');
    const after = await cli('health', s.sock);
    expect(after.stdout).to.equal(`healthy: pid ${pid} ready in runlevel 3 with 2 workers\n`);
  });

  it('the README\'s start pattern works in a worker: its telinit(0) halts it; telinit 1 and 3 still refuse there', async () => {
    s = await startService();
    const probe = await cli('-s', s.sock, 'probe');
    expect(probe.code, probe.stderr).to.equal(0);
    expect(probe.stdout.trim().split('\n').map((l) => l.replace(/\(pid \d+\)/, ''))).to.deep.equal([
      'worker 0 : ERR_GRACEFUL_NOT_PRIMARY ERR_GRACEFUL_NOT_PRIMARY',
      'worker 1 : ERR_GRACEFUL_NOT_PRIMARY ERR_GRACEFUL_NOT_PRIMARY',
    ]);
    fs.writeFileSync(s.failFile, '1 catch');
    const failed = await redeploy(s.sock);
    expect((failed as ControlReplyError).code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
    expect(s.child.stdout).to.include('worker 1 telinit(0) resolved');
    expect(s.child.stdout.filter((l) => l.includes('telinit(0) rejected'))).to.deep.equal([]);
    // Its own error reached the primary: the reason carries it.
    expect((failed as Error).message).to.include('cannot open its database (worker 1, on purpose)');
  });

  for (const how of ['catch', 'uncaught']) {
    it(`the reason is one line of at most 300 characters that names the worker and carries its first error (${how === 'catch' ? 'the application catches it' : 'uncaught'})`, async () => {
      s = await startService();
      fs.writeFileSync(s.failFile, `1 ${how}`);
      const failed = await redeploy(s.sock);
      expect((failed as ControlReplyError).code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
      shortReason((failed as Error).message);
      const r = await cli(s.sock);
      expect(r.code).to.equal(1);
      const line = r.stderr.trim();
      expect(line.startsWith('error: '), line).to.equal(true);
      shortReason(line.slice('error: '.length));
    });
  }
});
