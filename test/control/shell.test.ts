/** The CLI's interactive shell on a real terminal (a pty), and the example server driven through the CLI. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { root, spawnChild, tmpDir, until, type Child, endGenerations } from '../helpers.js';

const cli = path.join(root, 'bin/graceful-restart.js');

describe('the graceful-restart shell and the example server', function () {
  this.timeout(60_000);
  let example: Child | undefined;
  afterEach(async () => {
    await endGenerations(example, /^pid (\d+)/);
    example = undefined;
  });

  async function startExample(dir: string): Promise<{ sock: string; pid: number }> {
    const sock = path.join(dir, 'app.sock');
    example = spawnChild(process.execPath, [path.join(root, 'dist/example/server.js')], {
      cwd: dir,
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', GRACEFUL_SOCKET: sock, LOG_FILE: path.join(dir, 'app.log') },
    });
    const pid = Number(/^pid (\d+)/.exec(await example.next(/^pid \d+/))![1]);
    return { sock, pid };
  }

  it('opens a shell on a terminal: commands, completion of command names, history, quit', async () => {
    const dir = tmpDir();
    const { sock, pid } = await startExample(dir);
    const script = path.join(dir, 'script.json');
    fs.writeFileSync(script, JSON.stringify([
      ['', 'graceful> '],
      ['status\r', 'ok'],
      ['statu', 'statu'], // not 'sta': stats begins so too
      ['\t', 's'], // completed to status, which the next line runs (a tab inside a paste would not complete)
      ['\r', 'redeploy: none'],
      ['\x1b[A\r', 'graceful> '], // history: the previous line again
      ['quit\r', 'ok'],
    ]));
    const shell = spawnChild('python3', [path.join(root, 'test/fixtures/terminal.py'), script, process.execPath, cli, '-s', sock]);
    const { code } = await shell.exited;
    const out = shell.stdout.join('\n');
    expect(code, out + shell.stderr.join('\n')).to.equal(0);
    expect(out.match(new RegExp(`pid: ${pid}`, 'g')), out).to.have.length(3);
  });

  it('drives the example server: status, its streaming command, redeploy, reopen', async () => {
    const dir = tmpDir();
    const { sock, pid } = await startExample(dir);
    const run = (...args: string[]) => {
      const c = spawnChild(process.execPath, [cli, ...args]);
      return c.exited.then(({ code }) => ({ code, out: c.stdout.join('\n') }));
    };
    expect((await run('status', sock)).out).to.include(`pid: ${pid}`);
    const stream = spawnChild(process.execPath, [cli, '-s', sock, 'requests', '50']);
    await until(() => stream.stdout.length >= 3, 10_000, 'three lines of the streaming command');
    expect(stream.stdout[0]).to.match(new RegExp(`^pid ${pid}: \\d+ request\\(s\\)$`));
    stream.kill('SIGINT');
    await stream.exited;
    const redeploy = await run(sock);
    expect(redeploy.code).to.equal(0);
    const newPid = Number(/spawned pid (\d+)/.exec(redeploy.out)![1]);
    expect((await run('health', sock)).out).to.equal(`healthy: pid ${newPid} ready in runlevel 3`);
    fs.renameSync(path.join(dir, 'app.log'), path.join(dir, 'app.log.1'));
    expect((await run('-s', sock, 'reopen')).out).to.equal('reopened:\n  log');
    const log = fs.readFileSync(path.join(dir, 'app.log.1'), 'utf8');
    expect(log).to.include(`pid ${pid} generation 1 ready`).and.include(`pid ${newPid} generation 2 ready`);
    await until(() => fs.existsSync(path.join(dir, 'app.log')), 5000, 'the reopened log file');
  });
});
