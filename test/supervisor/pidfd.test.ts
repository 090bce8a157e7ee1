/**
 * The supervisor on a kernel without pidfd_open (a seccomp filter answers
 * ENOSYS, as Linux before 5.3 does), and one Supervisor per process.
 */
import { expect } from 'chai';
import { execFile, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fixtures, gone, root, spawnChild, tmpDir, until } from '../helpers.js';

const cli = path.join(root, 'bin/graceful-restart.js');
const nopidfd = path.join(root, 'test/fixtures/nopidfd.py');
const plain = path.join(fixtures, 'sup-plain.js');

describe('supervisor without pidfd_open', function () {
  this.timeout(30_000);

  it('says so, follows the generation by polling, and exits with its code when it exits on its own', async () => {
    const sup = spawnChild('python3', [nopidfd, process.execPath, cli, 'run', '--', process.execPath, plain], {
      env: { ...process.env, SUP_EXIT_AFTER_MS: '2500', SUP_EXIT_CODE: '7' },
    });
    const pid = Number((await sup.next(/^started /)).split(' ')[1]);
    const { code } = await sup.exited;
    expect(sup.stdout).to.include(`exiting ${pid} 7`);
    expect(code, sup.stderr.join('\n')).to.equal(7);
    expect(sup.stderr.join('\n')).to.include(`cannot follow pid ${pid} through a pidfd (pidfd_open ENOSYS`);
  });

  it('forwards SIGTERM to the generation it polls and exits with its code', async () => {
    const sup = spawnChild('python3', [nopidfd, process.execPath, cli, 'run', '--', process.execPath, plain], {
      env: { ...process.env, SUP_TERM_CODE: '4' },
    });
    const pid = Number((await sup.next(/^started /)).split(' ')[1]);
    sup.kill('SIGTERM');
    await sup.next(new RegExp(`^term ${pid}$`));
    expect((await sup.exited).code, sup.stderr.join('\n')).to.equal(4);
  });

  it('follows a generation it adopts through MAINPID= by polling: a redeploy, the old one\'s exit, then SIGTERM exits 0', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'sup.sock');
    const sup = spawnChild('python3', [nopidfd, process.execPath, cli, 'run', '-s', sock, '--', process.execPath, path.join(fixtures, 'app.js')], {
      env: { ...process.env, APP_SOCKET: path.join(dir, 'app.sock') },
    });
    const pids: number[] = [];
    try {
      const first = Number((await sup.next(/^ready \d+ \d+ 1 /)).split(' ')[1]);
      pids.push(first);
      const r = await new Promise<{ code: number; stdout: string }>((resolve) => {
        execFile(process.execPath, [cli, sock], { timeout: 30_000, killSignal: 'SIGKILL' }, (err, stdout) => resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout }));
      });
      expect(r.code, r.stdout).to.equal(0);
      const second = Number((await sup.next(/^ready \d+ \d+ 2 /)).split(' ')[1]);
      pids.push(second);
      await until(() => gone(first), 20_000, 'the first generation to exit');
      expect(sup.proc.exitCode, 'the supervisor goes on with the second generation').to.equal(null);
      await until(() => sup.stderr.some((l) => l.includes(`cannot follow pid ${second} through a pidfd (pidfd_open ENOSYS`)), 5000, 'the fallback for the adopted generation');
      expect(gone(second), 'the adopted generation serves on').to.equal(false);
      sup.kill('SIGTERM');
      expect((await sup.exited).code, sup.stderr.join('\n')).to.equal(0);
      expect(gone(second)).to.equal(true);
    } finally {
      // What this test started, by pid, if it failed half-way.
      for (const pid of pids.filter((p) => !gone(p))) process.kill(pid, 'SIGKILL');
      sup.kill('SIGKILL');
      await sup.exited;
    }
  });
});

describe('Supervisor: one per process', () => {
  it('start() refuses a second Supervisor while one runs, with ERR_GRACEFUL_SUPERVISOR_RUNNING; after the first exits, a new one starts', () => {
    const script = `
      import { Supervisor } from ${JSON.stringify(path.join(root, 'dist/src/index.js'))};
      const command = { command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'], log: () => {} };
      const a = new Supervisor(command);
      await a.start();
      const b = new Supervisor(command);
      const refused = await b.start().then(() => null, (e) => ({ code: e.code, name: e.name, message: e.message }));
      const again = await a.start().then(() => null, (e) => e.code);
      a.forward('SIGTERM');
      const first = await a.exited;
      const c = new Supervisor({ ...command, args: ['-e', 'process.exit(3)'] });
      await c.start();
      console.log(JSON.stringify({ refused, again, first, third: await c.exited }));`;
    // SIGKILL at the timeout: a Supervisor forwards a SIGTERM instead of exiting.
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
    expect(r.status, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout) as { refused: { code: string; name: string; message: string }; again: string; first: number; third: number };
    expect(out.refused).to.include({ code: 'ERR_GRACEFUL_SUPERVISOR_RUNNING', name: 'SupervisorRunningError' });
    expect(out.refused.message).to.match(/^Supervisor\.start\(\): a Supervisor already runs in this process \(pid \d+, command ".*"\); it reaps every child/);
    expect(out.again).to.equal('ERR_GRACEFUL_SUPERVISOR_RUNNING');
    expect(out.first).to.equal(143);
    expect(out.third).to.equal(3);
  });
});
