/** Hooks, signals, tasks, configuration, log rotation and the pid file, with real processes and real signals. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/index.js';
import { Lifecycle } from '../../src/server/lifecycle.js';
import { httpGet, spawnFixture, tmpDir, until, type Child, endGenerations } from '../helpers.js';

describe('lifecycle', function () {
  this.timeout(60_000);
  let app: Child | undefined;

  afterEach(async () => {
    await endGenerations(app);
    app = undefined;
  });

  async function start(env: Record<string, string> = {}): Promise<{ pid: number; port: number }> {
    app = spawnFixture('lifecycle', [], { env: { ...process.env, ...env } });
    const [, pid, port] = (await app.next(/^ready /)).split(' ');
    return { pid: Number(pid), port: Number(port) };
  }

  const linesOf = (pid: number) => app!.stdout.filter((l) => l.endsWith(` ${pid}`)).map((l) => l.slice(0, -(String(pid).length + 1)));

  it('runs start, ready, started, then (SIGTERM) stop and terminate hooks, each kind in registration order', async () => {
    const { pid } = await start();
    expect(app!.stdout.find((l) => l.startsWith('ready '))).to.match(/running=true started=true terminating=false$/);
    process.kill(pid, 'SIGTERM');
    const { code } = await app!.exited;
    expect(code).to.equal(0);
    expect(linesOf(pid)).to.deep.equal([
      'start 1', 'start 2', 'ready-hook 1', 'ready-hook 2', 'started 1', 'started 2',
      'stop 1', 'stop 2', 'terminate 1', 'terminate 2',
    ]);
  });

  it('app.command() before anything else: a duplicate name throws at once, a failed start rejects listen(), nothing is unhandled', async () => {
    const sock = path.join(tmpDir(), 'missing', 'c.sock'); // its directory does not exist: the control socket cannot be bound
    app = spawnFixture('commands', [sock]);
    const { code } = await app.exited;
    expect(app.stdout).to.deep.equal(['hello ERR_GRACEFUL_DUPLICATE_NAME', 'status ERR_GRACEFUL_DUPLICATE_NAME', 'listen ENOENT', 'end']);
    expect(code).to.equal(0);
  });

  it('GRACEFUL_JSON_LOG=1 turns the library\'s log lines into JSON objects', async () => {
    const dir = tmpDir();
    const config = path.join(dir, 'graceful.json');
    fs.writeFileSync(config, JSON.stringify({ sigusr1: 'hello' }));
    const { pid } = await start({ GRACEFUL_JSON_LOG: '1', LC_CONFIG: config });
    process.kill(pid, 'SIGUSR1');
    await until(() => app!.stderr.some((l) => l.includes('"event":"task"')), 5000, 'the task log line');
    process.kill(pid, 'SIGTERM');
    await app!.exited;
    const lines = app!.stderr.filter((l) => l.trim() !== '');
    expect(JSON.parse(lines.find((l) => l.includes('"event":"task"'))!)).to.deep.include({ pid, msg: 'SIGUSR1: task hello: hello', event: 'task', task: 'hello' });
    for (const line of lines) {
      const obj = JSON.parse(line) as { time: string; pid: number; msg: string };
      expect(obj.pid).to.equal(pid);
      expect(Date.parse(obj.time)).to.be.a('number').and.not.NaN;
      expect(obj.msg).to.be.a('string');
    }
  });

  it('a stop hook that overruns the shutdown timeout gets its abort signal and is left behind', async () => {
    const dir = tmpDir();
    const config = path.join(dir, 'graceful.json');
    fs.writeFileSync(config, JSON.stringify({ shutdownTimeout: 400 }));
    const { pid } = await start({ LC_CONFIG: config, LC_STOP_MS: '30000' });
    const t0 = Date.now();
    process.kill(pid, 'SIGTERM');
    const { code } = await app!.exited;
    expect(code).to.equal(0);
    expect(Date.now() - t0, 'exit well before the 30 s hook would end').to.be.lessThan(10_000);
    expect(linesOf(pid).slice(-4)).to.deep.equal(['stop 1', 'stop-aborted', 'terminate 1', 'terminate 2']);
    expect(app!.stderr.join('\n')).to.include('stop hooks still running at the shutdown timeout (400 ms)');
  });

  it('a ready hook that fails in the new instance fails the redeploy; the old one keeps serving', async () => {
    const dir = tmpDir();
    const failFile = path.join(dir, 'fail');
    const sock = path.join(dir, 'c.sock');
    const config = path.join(dir, 'graceful.json');
    fs.writeFileSync(config, JSON.stringify({ controlSocket: sock, upgradeTimeout: 10_000 }));
    const { pid, port } = await start({ LC_CONFIG: config, LC_FAIL_READY_FILE: failFile });
    fs.writeFileSync(failFile, 'x');
    const { ControlClient } = await import('../../src/index.js');
    const client = await ControlClient.connect(sock);
    const err = await client.request('redeploy').then(() => null, (e: Error & { code?: string }) => e);
    client.close();
    expect(err?.code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
    expect(err?.message).to.match(/exited with code 4 before it was ready; its last words: .*ready hook failing on purpose/);
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(pid) });
  });

  it('a second SIGINT forces the exit while the first drains a slow request', async () => {
    const { pid, port } = await start({ LC_SLOW_MS: '20000' });
    const slow = httpGet({ port, path: '/slow' }).catch((e: Error) => e);
    await app!.next(new RegExp(`^slow request ${pid}$`)); // in flight
    process.kill(pid, 'SIGINT');
    // The first SIGINT is handled once the listener is closed; the slow request still drains.
    await until(() => httpGet({ port }).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED'), 10_000, 'the listener to close');
    expect(app!.proc.exitCode).to.equal(null); // still draining
    process.kill(pid, 'SIGINT');
    const { code } = await app!.exited;
    expect(code).to.equal(130);
    expect(app!.stderr.join('\n')).to.include('second SIGINT while stopping: exiting now');
    expect(await slow).to.be.instanceOf(Error);
  });

  it('SIGHUP can stop or be ignored instead of redeploying', async () => {
    const dir = tmpDir();
    for (const [sighup, stops] of [['ignore', false], ['stop', true]] as const) {
      const config = path.join(dir, `${sighup}.json`);
      fs.writeFileSync(config, JSON.stringify({ sighup, sigusr1: 'hello' }));
      const { pid, port } = await start({ LC_CONFIG: config });
      process.kill(pid, 'SIGHUP');
      if (stops) {
        expect((await app!.exited).code).to.equal(0);
      } else {
        // Signals are handled in order: once SIGUSR1's task ran, SIGHUP was handled before it.
        process.kill(pid, 'SIGUSR1');
        await until(() => app!.stderr.some((l) => l.includes('SIGUSR1: task hello')), 5000, 'the SIGUSR1 task');
        expect(app!.stderr.join('\n')).to.not.include('redeploy');
        expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(pid) });
        process.kill(pid, 'SIGTERM');
        await app!.exited;
      }
    }
  });

  it('SIGUSR1 and SIGUSR2 run named tasks; the control socket runs the same tasks with arguments', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'c.sock');
    const config = path.join(dir, 'graceful.json');
    fs.writeFileSync(config, JSON.stringify({ controlSocket: sock, sigusr1: 'hello', sigusr2: 'nosuchtask' }));
    const { pid } = await start({ LC_CONFIG: config });
    process.kill(pid, 'SIGUSR1');
    await app!.next(new RegExp(`^task hello  ${pid}$`));
    process.kill(pid, 'SIGUSR2');
    await until(() => app!.stderr.some((l) => l.includes('SIGUSR2: task nosuchtask failed: no task "nosuchtask": the tasks are hello, reopen, rotate-tickets, write')), 5000, 'the failure line');
    const { ControlClient } = await import('../../src/index.js');
    const client = await ControlClient.connect(sock);
    expect(await client.request('task', ['hello', 'a', 'b'])).to.equal('hello a b');
    expect(await client.request('task')).to.deep.equal({ tasks: ['hello', 'reopen', 'rotate-tickets', 'write'] });
    const err = await client.request('task', ['nope']).then(() => null, (e: Error & { code?: string }) => e);
    expect(err?.code).to.equal('ERR_GRACEFUL_UNKNOWN_TASK');
    client.close();
  });

  it('reads a JSON configuration with {$NAME} placeholders; environment overrides; clear errors', async () => {
    const dir = tmpDir();
    const config = path.join(dir, 'graceful.json');
    fs.writeFileSync(config, JSON.stringify({ pidFile: '{$APP_DIR}/app.pid', shutdownTimeout: '{$STOP_MS}', runlevel: 3 }));
    expect(loadConfig(config, { APP_DIR: '/run/x', STOP_MS: '1500' })).to.deep.equal({ pidFile: '/run/x/app.pid', shutdownTimeout: 1500, runlevel: 3 });
    expect(() => loadConfig(config, { APP_DIR: '/x' })).to.throw(`${config}: shutdownTimeout uses {$STOP_MS}, but STOP_MS is not set in the environment`).with.property('code', 'ERR_GRACEFUL_CONFIG');
    fs.writeFileSync(path.join(dir, 'bad.json'), '{"pidFile": ');
    expect(() => loadConfig(path.join(dir, 'bad.json'))).to.throw(/bad\.json: not valid JSON/).with.property('code', 'ERR_GRACEFUL_CONFIG');
    expect(() => loadConfig(path.join(dir, 'none.json'))).to.throw(/none\.json: cannot read the configuration file \(ENOENT\)/);

    // A real process: the pid file from the placeholder, GRACEFUL_RUNLEVEL=1 from the environment.
    const { pid } = await start({ LC_CONFIG: config, APP_DIR: dir, STOP_MS: '1000', GRACEFUL_RUNLEVEL: '1' });
    expect(fs.readFileSync(path.join(dir, 'app.pid'), 'utf8')).to.equal(`${pid}\n`);
    const port = Number(app!.stdout.find((l) => l.startsWith('ready '))!.split(' ')[2]);
    expect(port).to.equal(0); // runlevel 1: nothing bound
    process.kill(pid, 'SIGTERM');
    await app!.exited;
    expect(fs.existsSync(path.join(dir, 'app.pid'))).to.equal(false);

    // A typo in the file, or a bad environment value, stops the start with a clear message.
    fs.writeFileSync(config, JSON.stringify({ shutdowntimeout: 5 }));
    app = spawnFixture('lifecycle', [], { env: { ...process.env, LC_CONFIG: config } });
    expect((await app.exited).code).to.equal(1);
    expect(app.stderr.join('\n')).to.include('unknown option "shutdowntimeout"');
    app = spawnFixture('lifecycle', [], { env: { ...process.env, GRACEFUL_UPGRADE_TIMEOUT: 'soon' } });
    expect((await app.exited).code).to.equal(1);
    expect(app.stderr.join('\n')).to.include('GRACEFUL_UPGRADE_TIMEOUT must be a positive number of seconds, got "soon"');
  });

  it('a log rotated between two redeploys: every line once, in order, in the right file', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'c.sock');
    const logPath = path.join(dir, 'app.log');
    const config = path.join(dir, 'graceful.json');
    fs.writeFileSync(config, JSON.stringify({ controlSocket: sock, sigusr1: 'reopen' }));
    const first = await start({ LC_CONFIG: config, LC_LOG: logPath, LC_LOG_LINES: '100' });
    const { ControlClient } = await import('../../src/index.js');
    const redeploy = async () => {
      const c = await ControlClient.connect(sock);
      const r = (await c.request('redeploy')) as { pid: number };
      c.close();
      await app!.next(new RegExp(`^ready ${r.pid} `));
      return r.pid;
    };
    const second = await redeploy();
    // Writes are asynchronous: rotate once both generations' lines are on disk.
    const count = (file: string) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
    await until(() => count(logPath) === 200, 5000, 'the first 200 lines on disk');
    // logrotate: move the file, then tell the running instance (SIGUSR1 -> reopen).
    fs.renameSync(logPath, `${logPath}.1`);
    process.kill(second, 'SIGUSR1');
    await until(() => fs.existsSync(logPath), 5000, 'the reopened log');
    const c = await ControlClient.connect(sock);
    expect(await c.request('task', ['write', 'after'])).to.equal('written');
    c.close();
    const third = await redeploy();
    await until(() => count(logPath) === 200, 5000, 'the third generation\'s lines on disk');
    const rotated = fs.readFileSync(`${logPath}.1`, 'utf8').split('\n').filter(Boolean);
    const current = fs.readFileSync(logPath, 'utf8').split('\n').filter(Boolean);
    const expectLines = (lines: string[], tag: string, gen: number, pid: number) =>
      expect(lines.filter((l) => l.startsWith(`${tag} gen ${gen} pid ${pid} `)).map((l) => Number(l.split(' ').pop())), `${tag} ${gen}`)
        .to.deep.equal([...Array(100).keys()]);
    expectLines(rotated, 'ready', 1, first.pid);
    expectLines(rotated, 'ready', 2, second);
    expect(rotated).to.have.length(200);
    expectLines(current, 'after', 2, second);
    expectLines(current, 'ready', 3, third);
    expect(current).to.have.length(200);
    // The same lines never reach both files.
    expect(current.filter((l) => rotated.includes(l))).to.deep.equal([]);
  });
});

describe('Lifecycle: the only holder of lifecycle state', () => {
  const codeOf = async (p: Promise<unknown> | (() => unknown)): Promise<string | undefined> => {
    try {
      await (typeof p === 'function' ? p() : p);
    } catch (err) {
      return (err as { code?: string }).code ?? (err as Error).message;
    }
    return undefined;
  };

  it('enters the runlevels its table allows: 1 and 3 while starting or ready, 0 only once halting', () => {
    const l = new Lifecycle();
    expect(l.level).to.equal(3);
    l.enter(1);
    expect(l.level).to.equal(1);
    expect(() => l.enter(0)).to.throw('no runlevel 0 while starting');
    l.to('ready');
    l.enter(3);
    l.to('handing-over', 7);
    expect(() => l.enter(1)).to.throw('no runlevel 1 while handing-over');
    l.to('draining');
    l.to('halting');
    l.enter(0);
    expect(l.level).to.equal(0);
    l.to('halted');
    expect(() => l.enter(3)).to.throw('no runlevel 3 while halted');
  });

  it('takes the generation once, while starting', () => {
    const l = new Lifecycle();
    expect(l.generation).to.equal(1);
    l.inherit(5);
    expect(l.generation).to.equal(5);
    expect(() => l.inherit(6)).to.throw('the generation is set once, while starting');
    const late = new Lifecycle();
    late.to('ready');
    expect(() => late.inherit(2)).to.throw('the generation is set once, while starting');
    expect(late.generation).to.equal(1);
  });

  it('names the new instance when handing over, and forgets it when it takes back', () => {
    const l = new Lifecycle();
    l.to('ready');
    expect(() => l.to('handing-over')).to.throw('handing-over names the new instance');
    expect(l.state).to.equal('ready');
    l.to('handing-over', 42);
    expect(l.handedOverTo).to.equal(42);
    l.to('taken-back');
    expect(l.handedOverTo).to.equal(42);
    l.to('ready');
    expect(l.handedOverTo).to.equal(null);
  });

  it('holds one change at a time: no scale unless ready, none during a redeploy, no redeploy during a scale', async () => {
    const l = new Lifecycle();
    expect(await codeOf(l.scale(async () => undefined))).to.equal('ERR_GRACEFUL_UPGRADE_IN_PROGRESS');
    l.to('ready');
    const t = l.beginRedeploy();
    expect(l.change).to.equal('redeploy');
    const during = await l.scale(async () => undefined).catch((e: Error) => e);
    expect((during as Error).message).to.equal('scale: a redeploy is under way: scale once it is done (the new version starts with the number it configures)');
    l.endRedeploy(t);
    expect(l.change).to.equal(null);
    let finish!: () => void;
    const scaling = l.scale(() => new Promise<void>((resolve) => (finish = resolve)));
    expect(l.change).to.equal('scale');
    const redeploy = await codeOf(() => l.beginRedeploy());
    expect(redeploy).to.equal('ERR_GRACEFUL_UPGRADE_IN_PROGRESS');
    expect((await l.scale(async () => undefined).catch((e: Error) => e) as Error).message).to.equal('scale: another scale is under way: wait for it (see status)');
    // A halt asked meanwhile is queued behind the scale.
    const seen: string[] = [];
    const halt = l.run(async () => void seen.push('halt'));
    await new Promise((r) => setImmediate(r));
    expect(seen).to.deep.equal([]);
    finish();
    await scaling;
    await halt;
    expect(seen).to.deep.equal(['halt']);
    expect(l.change).to.equal(null);
    l.to('halting');
    expect((await l.scale(async () => undefined).catch((e: Error) => e) as Error).message).to.equal('scale: this instance is halting, not serving: try again once it is ready');
  });

  it('remembers an abandoned start, a failed start step and a halt asked by a signal', async () => {
    const l = new Lifecycle();
    l.checkNotAbandoned(10);
    l.abandonStart();
    const err = await codeOf(() => l.checkNotAbandoned(10));
    expect(err).to.equal('ERR_GRACEFUL_HANDOFF_FAILED');
    expect(l.startStepFailed).to.equal(false);
    l.stepFailed();
    expect(l.startStepFailed).to.equal(true);
    l.resumed();
    expect(l.startStepFailed).to.equal(false);
    expect(l.haltBySignal).to.equal(false);
    l.signalled();
    expect(l.haltBySignal).to.equal(true);
  });
});
