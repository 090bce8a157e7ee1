/** The CLI's interactive shell on a real terminal (a pty), and the example server driven through the CLI. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { openFds, root, spawnChild, tmpDir, until, type Child, endGenerations } from '../helpers.js';

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

  /** terminal runs the shell on a pty, types the script ([typed, awaited] steps) and resolves with its exit code and output. */
  async function terminal(sock: string, steps: [string, string][], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string }> {
    const script = path.join(tmpDir(), 'script.json');
    fs.writeFileSync(script, JSON.stringify(steps));
    const shell = spawnChild('python3', [path.join(root, 'test/fixtures/terminal.py'), script, process.execPath, cli, '-s', sock], { env: { ...process.env, ...env } });
    const { code } = await shell.exited;
    // The terminal's line ends and readline's redraws (go to column n, clear below) are not what the test reads.
    // eslint-disable-next-line no-control-regex
    const out = shell.stdout.join('\n').replace(/\r/g, '').replace(/\x1b\[\d*[GJK]/g, '');
    return { code, out: `${out}${shell.stderr.join('\n')}` };
  }

  it('opens a shell on a terminal: the prompt names pid and generation, completion of arguments, history kept between sessions', async () => {
    const dir = tmpDir();
    const { sock, pid } = await startExample(dir);
    const state = path.join(dir, 'state');
    const first = await terminal(sock, [
      ['', `graceful pid ${pid} gen 1> `],
      ['status\r', 'gen 1> '],
      ['help tel', 'tel'],
      ['\t', 'init'], // completed to help telinit: a command name as help's argument
      ['\r', '3 binds the listeners again'],
      ['quit\r', ''],
    ], { XDG_STATE_HOME: state });
    expect(first.code, first.out).to.equal(0);
    expect(first.out).to.include(`pid: ${pid}`).and.match(/help telinit\n+telinit 0\|1\|3/);
    const file = path.join(state, 'graceful-restart', 'history');
    expect(fs.readFileSync(file, 'utf8')).to.equal('status\nhelp telinit\nquit\n');
    expect(fs.statSync(file).mode & 0o777).to.equal(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).to.equal(0o700);

    // A second session finds the first one's lines (up arrow), and Ctrl-D on an empty line leaves.
    const second = await terminal(sock, [
      ['', `gen 1> `],
      ['\x1b[A\x1b[A', 'help telinit'],
      ['\r', '3 binds the listeners again'],
      ['\x04', ''],
    ], { XDG_STATE_HOME: state });
    expect(second.code, second.out).to.equal(0);
    expect(fs.readFileSync(file, 'utf8')).to.equal('status\nquit\nhelp telinit\n');
  });

  it('Ctrl-C stops a streaming command and the shell stays; at the prompt it drops the line; twice on an empty line it leaves', async () => {
    const dir = tmpDir();
    const { sock, pid } = await startExample(dir);
    const fdsBefore = openFds(pid).length;
    const { code, out } = await terminal(sock, [
      ['', `graceful pid ${pid} gen 1> `],
      ['requests 20\r', 'request(s)'],
      ['\x03', `gen 1> `],
      ['status\r', 'gen 1> '],
      ['stat', 'stat'],
      ['\x03', `gen 1> `],
      ['us\r', 'gen 1> '], // "stat" was dropped: only "us" ran
      ["telinit '3\r", 'gen 1> '], // careless input: said, and the shell goes on
      ['\x03', 'To leave'],
      ['help\r', 'close this connection'], // a command in between: the next Ctrl-C warns again
      ['\x03', 'To leave'],
      ['\x03', ''],
    ], { XDG_STATE_HOME: path.join(dir, 'state') });
    expect(code, out).to.equal(0);
    const afterStop = out.slice(out.indexOf('^C'));
    // The stream's connection is gone in the server: the shell's new one is the only one.
    expect(afterStop).to.include('controlConnections: 1');
    expect(afterStop.slice(afterStop.indexOf('redeploy: none'))).not.to.include('request(s)');
    expect(out).to.include('stat^C\n').and.include('error: unknown command "us": type help for the list')
      .and.include('error: unterminated single quote: close it, or escape it with \\');
    expect(out.match(/\(To leave, press Ctrl-C again or Ctrl-D, or type quit\)/g)).to.have.length(2);
    // Every connection the shell opened (the stopped one, its replacement) is closed in the server once it left.
    await until(() => openFds(pid).length === fdsBefore, 5000, `the server back to ${fdsBefore} descriptors`);
  });

  it('a redeploy in the shell prints what the CLI prints, and the prompt follows it; Ctrl-C during one says it goes on', async () => {
    const dir = tmpDir();
    const { sock, pid } = await startExample(dir);
    const { code, out } = await terminal(sock, [
      ['', `graceful pid ${pid} gen 1> `],
      ['redeploy\r', 'is serving'],
      ['', ' gen 2> '],
      ['quit\r', ''],
    ], { XDG_STATE_HOME: path.join(dir, 'state') });
    expect(code, out).to.equal(0);
    const m = /> redeploy\n+spawned pid (\d+)\nready: pid (\d+) after \d+ ms\ndraining \d+ connection\(s\)\ndone: pid (\d+) is serving\ngraceful pid (\d+) gen 2> /.exec(out);
    expect(m, out).not.to.equal(null);
    expect(new Set(m!.slice(1)), 'one new pid in every line and in the prompt').to.have.property('size', 1);
    // The CLI prints the same lines for a redeploy.
    const cliRun = spawnChild(process.execPath, [cli, sock]);
    expect((await cliRun.exited).code, cliRun.stderr.join('\n')).to.equal(0);
    expect(cliRun.stdout).to.have.length(4);
    expect(cliRun.stdout[0]).to.match(/^spawned pid \d+$/);
    expect(cliRun.stdout[1]).to.match(/^ready: pid \d+ after \d+ ms$/);
    expect(cliRun.stdout[2]).to.match(/^draining \d+ connection\(s\)$/);
    expect(cliRun.stdout[3]).to.match(/^done: pid \d+ is serving$/);
    const third = Number(/^spawned pid (\d+)$/.exec(cliRun.stdout[0]!)![1]);

    // Ctrl-C during a redeploy stops the shell's wait, not the redeploy: the shell says so.
    const stopped = await terminal(sock, [
      ['', ` gen 3> `],
      ['redeploy\r', 'spawned pid'],
      ['\x03', 'goes on in the server'],
      ['', '> '],
      ['quit\r', ''],
    ], { XDG_STATE_HOME: path.join(dir, 'state') });
    expect(stopped.code, stopped.out).to.equal(0);
    expect(stopped.out).to.include(`graceful pid ${third} gen 3> `).and.include('^C\n(the redeploy goes on in the server: status shows how it ends)');
  });

  it('says so and exits 1 when the server halts', async () => {
    const dir = tmpDir();
    const { sock, pid } = await startExample(dir);
    const { code, out } = await terminal(sock, [
      ['', `graceful pid ${pid} gen 1> `],
      ['telinit 0\r', 'leaving the shell'],
    ], { XDG_STATE_HOME: path.join(dir, 'state') });
    expect(code, out).to.equal(1);
    expect(out).to.include(`error: the server (pid ${pid}) went away (it halted or exited): nothing answers at ${sock} (`);
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
