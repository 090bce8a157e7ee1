/**
 * The Quick start on a real terminal: `npm start` in an interactive bash on a
 * pty (test/fixtures/terminal.py), the README's commands from elsewhere (curl,
 * a redeploy, status), then Ctrl-C in the terminal. The terminal keeps control:
 * Ctrl-C stops every generation before the prompt comes back.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, gone, httpGet, root, spawnChild, tmpDir, until, type Child } from '../helpers.js';
import { run } from './project.js';

describe('example: the Quick start (npm start on a terminal)', function () {
  this.timeout(60_000);
  const pids: number[] = [];
  let terminal: Child | undefined;
  afterEach(async () => {
    for (const pid of pids.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    terminal?.kill('SIGKILL');
    await terminal?.exited;
    terminal = undefined;
  });

  it('npm start, a redeploy, then Ctrl-C: every generation stops and the prompt comes back', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const rc = path.join(dir, 'bashrc');
    fs.writeFileSync(rc, "PS1='prompt> '\n");
    const script = path.join(dir, 'script.json');
    fs.writeFileSync(script, JSON.stringify([
      ['', 'prompt> '],
      ['npm start\r', '(generation 1) serving on'],
      ['', '(generation 2) serving on'],
      ['', 'redeploy: done'], // the first generation drained
      ['', `file:${path.join(dir, 'commands-done')}`], // the Quick start's commands below ran
      ['\x03', 'prompt> '],
      ['echo "status $?"\r', 'status 130'], // npm's code after a Ctrl-C, whatever the app's
      ['exit\r', 'exit'],
    ]));
    const env: NodeJS.ProcessEnv & { PID_FILE: string; GRACEFUL_SOCKET: string; LOG_FILE: string } = {
      ...process.env, PORT: String(port), H2_PORT: '0', GRACEFUL_SOCKET: path.join(dir, 'app.sock'),
      LOG_FILE: path.join(dir, 'app.log'), PID_FILE: path.join(dir, 'app.pid'),
    };
    delete env.HOST;
    terminal = spawnChild('python3', [path.join(root, 'test/fixtures/terminal.py'), script, 'bash', '--noprofile', '--rcfile', rc, '-i'], { cwd: root, env });

    await until(() => fs.existsSync(env.PID_FILE), 20_000, 'the pid file of generation 1');
    const pid = Number(fs.readFileSync(env.PID_FILE, 'utf8'));
    pids.push(pid);
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: `hello from pid ${pid} (generation 1)\n` });

    // The Quick start's commands, as the README gives them (its port and socket path replaced):
    // curl, a redeploy, curl, status. The streaming command and the shell are left to the shell test.
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Quick start\n'), readme.indexOf('## A complete server\n'));
    const block = [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)][1]![1]!;
    const commands = block.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim())
      .filter((l) => /^(curl |node bin\/graceful-restart\.js )/.test(l) && !/ requests |-s app\.sock$/.test(l));
    expect(commands).to.deep.equal(['curl localhost:8080/', 'node bin/graceful-restart.js app.sock', 'curl localhost:8080/', 'node bin/graceful-restart.js -s app.sock status']);
    const outputs: string[] = [];
    for (const c of commands) {
      const r = await run('sh', ['-c', c.replace('8080', String(port)).replace('app.sock', env.GRACEFUL_SOCKET)], { cwd: root });
      expect(r.code, `${c}: ${r.stderr}`).to.equal(0);
      outputs.push(r.stdout);
    }
    const newPid = Number(/^spawned pid (\d+)$/m.exec(outputs[1]!)![1]);
    pids.push(newPid);
    expect(outputs[0]).to.equal(`hello from pid ${pid} (generation 1)\n`);
    expect(outputs[2]).to.equal(`hello from pid ${newPid} (generation 2)\n`);
    expect(outputs[3]).to.include(`pid: ${newPid}`).and.include('generation: 2');
    fs.writeFileSync(path.join(dir, 'commands-done'), ''); // now the terminal may type Ctrl-C

    const { code } = await terminal.exited;
    const out = terminal.stdout.join('\n');
    expect(code, out + terminal.stderr.join('\n')).to.equal(0);
    expect(gone(newPid), 'the second generation stopped with Ctrl-C').to.equal(true);
    expect(gone(pid)).to.equal(true);
    expect(out).to.include(`pid ${pid} (generation 1) serving on http://localhost:${port}/ - Ctrl-C stops it`);
    expect(out).to.include(`supervisor: SIGINT: forwarding to pid ${newPid}`);
    expect(out.match(/SIGINT: forwarding/g), 'one SIGINT reaches the app').to.have.length(1);
    expect(fs.readFileSync(env.LOG_FILE, 'utf8')).to.match(new RegExp(`pid ${newPid} halted\\n$`));
  });
});

describe('example: the server npm start runs (example/server.ts)', function () {
  this.timeout(30_000);
  const server = path.join(root, 'dist/example/server.js');

  it('prints a URL that opens: the host it listens on, or localhost for every address', async () => {
    const dir = tmpDir();
    for (const [host, shown] of [['127.0.0.1', '127.0.0.1'], ['', 'localhost']] as const) {
      const port = await freePort();
      const c = spawnChild(process.execPath, [server], {
        cwd: dir, env: { ...process.env, PORT: String(port), H2_PORT: '0', HOST: host, GRACEFUL_SOCKET: path.join(dir, 'app.sock'), LOG_FILE: path.join(dir, 'app.log') },
      });
      const line = await c.next(/serving on/);
      expect(line).to.equal(`pid ${c.pid} (generation 1) serving on http://${shown}:${port}/ - Ctrl-C stops it, kill -HUP ${c.pid} redeploys`);
      expect((await httpGet({ port })).body).to.equal(`hello from pid ${c.pid} (generation 1)\n`);
      c.kill('SIGINT');
      expect(await c.exited).to.deep.equal({ code: 0, signal: null });
    }
  });

  it('an error at start is one line with the code and what to do, and leaves no control socket', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const env = { ...process.env, PORT: String(port), H2_PORT: '0', HOST: '127.0.0.1', GRACEFUL_SOCKET: path.join(dir, 'app.sock') };
    const missing = spawnChild(process.execPath, [server], { cwd: dir, env: { ...env, LOG_FILE: path.join(dir, 'no/app.log') } });
    expect(await missing.exited).to.deep.equal({ code: 1, signal: null });
    expect(missing.stderr).to.deep.equal([`example: cannot start: ENOENT: no such file or directory, open '${path.join(dir, 'no/app.log')}' (a directory is missing: create it, or set GRACEFUL_SOCKET, LOG_FILE and PID_FILE)`]);
    expect(fs.existsSync(env.GRACEFUL_SOCKET), 'no control socket left behind').to.equal(false);

    const holder = spawnChild('python3', ['-c', `import socket, sys; s = socket.socket(); s.bind(('127.0.0.1', ${port})); s.listen(); print('bound', flush=True); sys.stdin.read()`], { stdio: ['pipe', 'pipe', 'pipe'] });
    await holder.next(/^bound$/);
    const taken = spawnChild(process.execPath, [server], { cwd: dir, env: { ...env, LOG_FILE: path.join(dir, 'app.log') } });
    expect(await taken.exited).to.deep.equal({ code: 1, signal: null });
    expect(taken.stderr).to.deep.equal([`example: cannot start: listen("http"): EADDRINUSE: 127.0.0.1:${port} is in use by another process: stop it, or listen on another port (or set PORT)`]);
    expect(fs.existsSync(env.GRACEFUL_SOCKET), 'no control socket left behind').to.equal(false);
    holder.proc.stdin!.end();
    await holder.exited;

    // A second copy on the same control socket: the variable to set is named.
    const first = spawnChild(process.execPath, [server], { cwd: dir, env: { ...env, LOG_FILE: path.join(dir, 'app.log') } });
    await first.next(/serving on/);
    const second = spawnChild(process.execPath, [server], { cwd: dir, env: { ...env, PORT: '0', LOG_FILE: path.join(dir, 'app2.log') } });
    expect(await second.exited).to.deep.equal({ code: 1, signal: null });
    expect(second.stderr).to.have.length(1);
    expect(second.stderr[0]).to.match(new RegExp(`^example: cannot start: ERR_GRACEFUL_SOCKET_IN_USE: .*app\\.sock is in use by pid ${first.pid}: stop that process or choose another path \\(or set GRACEFUL_SOCKET to another path\\)$`));
    first.kill('SIGINT');
    expect(await first.exited).to.deep.equal({ code: 0, signal: null });
  });
});
