/**
 * Engine (src/server/engine.ts) in this process, with a single instance's
 * role, real listeners and files, and a ControlPort of the test's own that
 * writes down what the engine asks of it: init once, a failed start step
 * that lets go of the loop and ready() that holds it again, the library's
 * tasks, the runlevels and their hooks, the refusals with their codes,
 * status, sd_notify's ready notice, and every descriptor closed at the halt.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { OutgoingFd } from '../../src/handoff/connection.js';
import { CONTROL_FIELD, SUPERVISOR_ENV } from '../../src/protocol.js';
import type { ControlPort } from '../../src/server/control-port.js';
import { Engine } from '../../src/server/engine.js';
import { resolveOptions, type GracefulServerOptions } from '../../src/server/options.js';
import { becomeReady } from '../../src/server/ready.js';
import { SingleRole } from '../../src/server/single-role.js';
import { fdCount, tmpDir } from '../helpers.js';

class RecordingControl implements ControlPort {
  connectionCount = 0;
  constructor(private readonly calls: string[]) {}
  listen(fd?: number, options?: { activated?: boolean }): Promise<void> {
    this.calls.push(`listen ${fd ?? '-'} ${options?.activated ?? '-'}`);
    return Promise.resolve();
  }
  start(): void {
    this.calls.push('start');
  }
  adopt(): void {
    this.calls.push('adopt');
  }
  unref(): void {
    this.calls.push('unref');
  }
  ref(): void {
    this.calls.push('ref');
  }
  handoff(): OutgoingFd[] {
    return [];
  }
  handoffDone(): void {}
  handoffFailed(): void {}
  takeBack(): Promise<void> {
    return Promise.resolve();
  }
  settle(): Promise<void> {
    this.calls.push('settle');
    return Promise.resolve();
  }
  close(release: boolean): void {
    this.calls.push(`close ${release}`);
  }
}

/** failure: how a promise rejected, as message and code. */
async function failure(p: Promise<unknown>): Promise<{ message: string; code?: string }> {
  const err = await p.then(() => null, (e: Error & { code?: string }) => e);
  expect(err, 'rejected').to.be.instanceOf(Error);
  return { message: err!.message, code: err!.code };
}

describe('server/engine: Engine', () => {
  let before: number;
  let engine: Engine;
  let calls: string[];
  let events: string[];
  let logs: string[];

  const make = (options: GracefulServerOptions = {}, control = true) => {
    calls = [];
    events = [];
    logs = [];
    engine = new Engine({
      config: resolveOptions({ signals: false, exitProcess: false, idleGrace: 50, shutdownTimeout: 2000, ...options }),
      log: (msg) => logs.push(msg),
      control: control ? new RecordingControl(calls) : null,
      emit: (name, value) => events.push(value === undefined || name === 'draining' ? name : `${name} ${JSON.stringify(value)}`),
      listenerCount: () => 0,
      redeploy: () => Promise.reject(new Error('no redeploy here')),
      formatResult: String,
      makeRole: (e) => new SingleRole(e),
    });
    return engine;
  };

  const connect = (port: number) => new Promise<void>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve();
    });
    s.once('error', reject);
  });

  beforeEach(() => {
    before = fdCount();
  });

  afterEach(async () => {
    if (engine.lifecycle.state !== 'halted') {
      await engine.telinit(0);
      await engine.halted;
    }
    await new Promise((r) => setImmediate(r));
    expect(fdCount(), 'every descriptor of the engine closed at its halt').to.equal(before);
  });

  it('init runs once: the control socket bound, the start hooks run, runlevel 3', async () => {
    make();
    let starts = 0;
    engine.hooks.add('start', () => {
      starts++;
    });
    expect(engine.started).to.equal(false);
    const first = engine.init();
    expect(engine.started).to.equal(true);
    expect(engine.init()).to.equal(first);
    await first;
    await engine.init();
    expect(starts).to.equal(1);
    expect(calls).to.deep.equal(['listen - -']);
    expect(engine.predecessor).to.equal(null);
    expect(engine.lifecycle.level).to.equal(3);
    expect(engine.lifecycle.state).to.equal('starting');
    await engine.telinit(0);
    expect(calls).to.deep.equal(['listen - -', 'settle', 'close true']);
    expect(events).to.deep.equal(['draining', 'runlevel 0', 'halt {"forced":0,"handedOverTo":null}']);
  });

  it('a start step that fails lets go of the loop (the control socket unref\'d); ready() holds it again and serves', async () => {
    make();
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const server = net.createServer((s) => s.destroy());
      expect(await failure(engine.listen('web', server, { host: '127.0.0.1', port }))).to.include({ code: 'EADDRINUSE' });
      expect(calls).to.deep.equal(['listen - -', 'unref']);
      expect(engine.lifecycle.startStepFailed).to.equal(true);
      const other = net.createServer((s) => s.destroy());
      await engine.listen('web2', other, { host: '127.0.0.1', port: 0 });
      await engine.lifecycle.run(() => becomeReady(engine));
      expect(calls).to.deep.equal(['listen - -', 'unref', 'ref']);
      expect(engine.lifecycle.startStepFailed).to.equal(false);
      expect(engine.lifecycle.state).to.equal('ready');
      await connect((other.address() as net.AddressInfo).port);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  it('runs the library\'s tasks: reopen (the files re-opened) and rotate-tickets; an unknown task is ERR_GRACEFUL_UNKNOWN_TASK', async () => {
    make({}, false);
    expect(await engine.runTask('reopen', [])).to.equal('reopened nothing');
    const file = path.join(tmpDir(), 'app.log');
    const log = await engine.file('log', file, {});
    log.write('before\n');
    fs.renameSync(file, `${file}.1`);
    expect(await engine.runTask('reopen', [])).to.equal('reopened log');
    log.write('after\n');
    await new Promise<void>((resolve) => log.write('', () => resolve()));
    expect(fs.readFileSync(file, 'utf8')).to.equal('after\n');
    expect(fs.readFileSync(`${file}.1`, 'utf8')).to.equal('before\n');
    // The halt leaves the application's files open (it may log to the end): the stream's end closes its descriptor,
    // after 'finish' (the close goes through the thread pool), so wait for 'close' itself.
    await new Promise((resolve) => log.end().once('close', resolve));
    expect(await engine.runTask('rotate-tickets', [])).to.equal('rotated the TLS ticket keys of nothing (no TLS listener)');
    expect(await failure(engine.runTask('nope', []))).to.deep.equal({ message: 'no task "nope": the tasks are reopen, rotate-tickets', code: 'ERR_GRACEFUL_UNKNOWN_TASK' });
  });

  it('telinit: a level that is none, a runlevel before ready; 1 and 3 with their hooks; 0 halts once', async () => {
    make({}, false);
    expect(await failure(engine.telinit(2))).to.deep.equal({
      message: 'runlevel must be 0 (halt), 1 (single user: listeners closed) or 3 (serving), got 2', code: 'ERR_GRACEFUL_INVALID_RUNLEVEL',
    });
    expect(await failure(engine.telinit('x'))).to.have.property('code', 'ERR_GRACEFUL_INVALID_RUNLEVEL');
    expect(() => engine.onRunlevel(4 as 1, () => undefined)).to.throw('runlevel must be 0 (halt), 1 (single user: listeners closed) or 3 (serving), got 4');
    expect(await failure(engine.telinit(1))).to.deep.equal({ message: 'telinit 1: this instance is not ready yet; call ready() first', code: 'ERR_GRACEFUL_NOT_READY' });
    const server = net.createServer((s) => s.destroy());
    await engine.listen('web', server, { host: '127.0.0.1', port: 0 });
    const port = (server.address() as net.AddressInfo).port;
    const levels: string[] = [];
    for (const l of [0, 1, 3] as const) engine.onRunlevel(l, (level) => void levels.push(`${l}:${level}`));
    await engine.lifecycle.run(() => becomeReady(engine));
    await engine.telinit('1');
    expect(await connect(port).catch((e: { code?: string }) => e.code)).to.equal('ECONNREFUSED');
    await engine.telinit(1); // already there: nothing
    await engine.telinit(3);
    await connect(port);
    await Promise.all([engine.telinit(0), engine.stop(false)]); // the second halt finds it halted: nothing
    expect(levels, 'ready() enters runlevel 3 too').to.deep.equal(['3:3', '1:1', '3:3', '0:0']);
    expect(logs).to.deep.equal(['runlevel 1', 'runlevel 3']);
    expect(events).to.deep.equal(['ready', 'runlevel 1', 'runlevel 3', 'draining', 'runlevel 0', 'halt {"forced":0,"handedOverTo":null}']);
    expect(await failure(engine.telinit(0))).to.deep.equal({ message: 'telinit 0: this instance is halting already', code: 'ERR_GRACEFUL_TERMINATING' });
    expect(await failure(engine.listen('late', net.createServer(), { port: 0 }))).to.deep.equal({
      message: 'listen("late"): this instance is halting', code: 'ERR_GRACEFUL_TERMINATING',
    });
  });

  it('status says what the engine holds', async () => {
    make();
    const server = net.createServer((s) => s.destroy());
    await engine.listen('web', server, { host: '127.0.0.1', port: 0 });
    const s = engine.status();
    expect(s).to.deep.include({
      pid: process.pid, ppid: process.ppid, generation: 1, runlevel: 3, ready: false, state: 'starting', connections: 0,
      controlConnections: 0, redeploy: 'none', handover: { ...engine.listeners.moveCounts(), adopted: 0 }, node: process.version,
    });
    expect((s.listeners as { name: string }[]).map((l) => l.name)).to.deep.equal(['web']);
    await engine.lifecycle.run(() => becomeReady(engine));
    expect(engine.status()).to.deep.include({ ready: true, state: 'ready' });
  });

  it('readyNotice: MAINPID and READY=1; for a supervisor, the control socket\'s absolute path too', () => {
    make({ controlSocket: 'run/ctl.sock' }, false);
    const saved = process.env[SUPERVISOR_ENV];
    try {
      delete process.env[SUPERVISOR_ENV];
      expect(engine.readyNotice()).to.equal(`MAINPID=${process.pid}\nREADY=1`);
      process.env[SUPERVISOR_ENV] = '1';
      expect(engine.readyNotice()).to.equal(`MAINPID=${process.pid}\nREADY=1\n${CONTROL_FIELD}=${path.resolve('run/ctl.sock')}`);
    } finally {
      if (saved === undefined) delete process.env[SUPERVISOR_ENV];
      else process.env[SUPERVISOR_ENV] = saved;
    }
  });

  it('startOrDefer starts at once in an instance without a predecessor', async () => {
    make({}, false);
    await engine.init();
    let started = false;
    await engine.startOrDefer(async () => {
      started = true;
    });
    expect(started).to.equal(true);
  });
});
