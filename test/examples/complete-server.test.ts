/**
 * The README's "A complete server" (example/complete-server.mjs), copied as
 * app.mjs into a project made by `npm init -y`: it serves, redeploys with the
 * project's own bin, keeps one log file across generations, and says why it
 * cannot start in one line with the code (leaving no socket file behind).
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, endGenerations, gone, httpGet, spawnChild, until, type Child } from '../helpers.js';
import { bin, makeProject, run } from './project.js';

describe('example: a complete server (app.mjs in an `npm init -y` project)', function () {
  this.timeout(60_000);
  const started: Child[] = [];
  const pids: number[] = [];
  afterEach(async () => {
    for (const pid of pids.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const c of started.splice(0)) await endGenerations(c);
  });

  function start(project: string, env: Record<string, string>): Child {
    const c = spawnChild(process.execPath, ['app.mjs'], { cwd: project, env: { ...process.env, ...env } });
    started.push(c);
    return c;
  }
  const pidIn = (file: string) => Number(fs.readFileSync(file, 'utf8').trim());
  /** exitCode: how the process itself ended (its pipes may live on in the generations it spawned). */
  const exitCode = (c: Child) => c.proc.exitCode !== null ? Promise.resolve(c.proc.exitCode)
    : new Promise<number | null>((resolve) => c.proc.once('exit', (code) => resolve(code)));

  it('serves, redeploys with node_modules/.bin/graceful-restart, one log across generations, SIGTERM exits 0', async () => {
    const project = await makeProject({ 'app.mjs': 'complete-server.mjs' });
    expect(JSON.parse(fs.readFileSync(path.join(project, 'package.json'), 'utf8')).type ?? 'commonjs').to.equal('commonjs');
    const port = await freePort();
    const state = path.join(project, 'state');
    const first = start(project, { PORT: String(port) });
    await until(() => fs.existsSync(path.join(state, 'app.pid')), 15_000, 'the pid file');
    const pid = pidIn(path.join(state, 'app.pid'));
    pids.push(pid);
    expect(pid).to.equal(first.pid);
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: `hello from ${pid}\n` });
    // It says that it serves, where, and how to redeploy it.
    await until(() => first.stdout.length > 0, 15_000, 'the line that says it serves');
    expect(first.stdout[0]).to.equal(`app: pid ${pid} serving on http://localhost:${port}/; redeploy with: node_modules/.bin/graceful-restart state/app.sock`);

    const redeploy = await run(bin(project), ['state/app.sock'], { cwd: project });
    expect(redeploy.code, redeploy.stderr).to.equal(0);
    const newPid = Number(/spawned pid (\d+)/.exec(redeploy.stdout)![1]);
    pids.push(newPid);
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: `hello from ${newPid}\n` });
    expect(await exitCode(first), 'the old instance exits 0 once drained').to.equal(0);
    expect(pidIn(path.join(state, 'app.pid'))).to.equal(newPid);
    expect(fs.readFileSync(path.join(state, 'app.log'), 'utf8')).to.equal(`pid ${pid} ready\npid ${newPid} ready\n`);

    process.kill(newPid, 'SIGTERM');
    await until(() => gone(newPid), 15_000, 'the new instance to halt');
    expect(fs.existsSync(path.join(state, 'app.sock')), 'control socket removed at halt').to.equal(false);
    expect(fs.existsSync(path.join(state, 'app.pid')), 'pid file removed at halt').to.equal(false);
    expect(first.stderr.filter((l) => !l.startsWith('graceful[')), 'nothing but the library\'s log lines').to.deep.equal([]);
  });

  it('an error at start is one line with the code and what to do: socket in use, port in use, not a directory', async () => {
    const project = await makeProject({ 'app.mjs': 'complete-server.mjs' });
    const port = await freePort();
    const first = start(project, { PORT: String(port) });
    await until(() => fs.existsSync(path.join(project, 'state/app.pid')), 15_000, 'the pid file');
    pids.push(first.pid);

    const oneLine = async (env: Record<string, string>) => {
      const c = start(project, env);
      const { code } = await c.exited;
      expect(code, c.stderr.join('\n')).to.equal(1);
      expect(c.stdout).to.deep.equal([]);
      expect(c.stderr, 'exactly one line').to.have.length(1);
      return c.stderr[0]!;
    };
    // The same STATE_DIR: the control socket is live.
    expect(await oneLine({ PORT: String(port) })).to.match(
      new RegExp(`^app: cannot start: ERR_GRACEFUL_SOCKET_IN_USE: .*app\\.sock is in use by pid ${first.pid}: stop that process or choose another path \\(or set STATE_DIR to another directory\\)$`));
    expect((await httpGet({ port })).body, 'the first instance serves on').to.equal(`hello from ${first.pid}\n`);

    // Another STATE_DIR, the same port: EADDRINUSE, and the control socket it opened is gone again.
    const other = path.join(project, 'other');
    expect(await oneLine({ PORT: String(port), STATE_DIR: other })).to.equal(
      `app: cannot start: listen("http"): EADDRINUSE: [::]:${port} is in use by another process: stop it, or listen on another port (or set PORT)`);
    expect(fs.readdirSync(other), 'no socket file left behind').to.deep.equal(['app.log']);

    // A STATE_DIR below a regular file.
    fs.writeFileSync(path.join(project, 'file'), '');
    expect(await oneLine({ PORT: String(port), STATE_DIR: path.join(project, 'file/state') })).to.match(
      /^app: cannot start: ENOTDIR: not a directory, mkdir '.*\/file\/state' \(STATE_DIR must be a directory\)$/);
    // A STATE_DIR that is a regular file: the code once, and what to do.
    expect(await oneLine({ PORT: String(port), STATE_DIR: path.join(project, 'file') })).to.match(
      /^app: cannot start: EEXIST: file already exists, mkdir '.*\/file' \(STATE_DIR names a file: it must be a directory\)$/);
  });
});
