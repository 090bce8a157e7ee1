/**
 * ServiceControl (src/control/service-control.ts): the control socket of a
 * service per role, spoken to over a real socket with the control client: a
 * single instance runs an application's command itself; a primary runs it
 * on every worker through the fan-out it is given (labelled lines, every
 * answer, none ready) and has `scale`; a worker has no socket and keeps its
 * commands for its primary's requests. A ControlTarget and the fan-out are
 * the test's own.
 */
import { expect } from 'chai';
import path from 'node:path';
import { ControlClient, type ControlEvent } from '../../src/control/client.js';
import type { ControlTarget } from '../../src/control/builtins.js';
import type { WorkerAnswer } from '../../src/control/render.js';
import { ServiceControl, type Ask, type ServiceControlOptions } from '../../src/control/service-control.js';
import { fdCount, tmpDir } from '../helpers.js';

const target: ControlTarget = {
  status: () => ({ pid: process.pid }),
  telinit: () => Promise.resolve(),
  redeploy: () => Promise.reject(new Error('no redeploy here')),
  reopen: () => Promise.resolve([]),
  tasks: () => [],
  runTask: () => Promise.resolve(null),
  shellCommands: {},
};

/** failure: how a promise rejected, as message and code. */
async function failure(p: Promise<unknown>): Promise<{ message: string; code?: string }> {
  const err = await p.then(() => null, (e: Error & { code?: string }) => e);
  expect(err, 'rejected').to.be.instanceOf(Error);
  return { message: err!.message, code: err!.code };
}

describe('control/service-control: ServiceControl', () => {
  let control: ServiceControl | undefined;
  let client: ControlClient | undefined;
  let sock: string;
  let before: number;

  beforeEach(() => {
    before = fdCount();
    sock = path.join(tmpDir(), 'ctl.sock');
  });

  afterEach(async () => {
    client?.close();
    client = undefined;
    control?.server?.close(true);
    control = undefined;
    await new Promise((r) => setImmediate(r));
    expect(fdCount(), 'the socket and its connections closed').to.equal(before);
  });

  const open = async (options: Partial<ServiceControlOptions>) => {
    control = new ServiceControl({ socket: sock, role: 'single', log: () => undefined, target, ...options });
    await control.server!.listen();
    client = await ControlClient.connect(sock);
    return client;
  };

  it('a single instance: the built-ins, an application command run here, scale says what it needs', async () => {
    const c = await open({});
    control!.command('hello', { usage: 'hello <who>', minArgs: 1, run: (ctx) => `hello ${ctx.args[0]}` });
    control!.command('here', { usage: 'here', run: () => 'primary side' }, { where: 'primary' });
    expect(await c.request('status')).to.deep.equal({ pid: process.pid });
    expect(await c.request('hello', ['ann'])).to.equal('hello ann');
    expect(await c.request('here')).to.equal('primary side');
    expect(await c.raw('hello bob')).to.deep.equal(['hello bob', 'ok']);
    expect(await failure(c.request('scale', ['2']))).to.deep.equal({
      message: 'scale: this service runs without workers: set the workers option (or GRACEFUL_WORKERS) to scale it', code: 'ERR_GRACEFUL_NOT_CONFIGURED',
    });
  });

  it('refuses a where that is neither workers nor primary, and a command without a control socket', () => {
    const none = new ServiceControl({ role: 'single', log: () => undefined, target });
    expect(none.server).to.equal(null);
    expect(() => none.command('x', { usage: 'x', run: () => 1 })).to.throw('command: there is no control socket: set the controlSocket option')
      .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    expect(() => none.command('x', { usage: 'x', run: () => 1 }, { where: 'all' as 'workers' })).to.throw(
      'command: where must be \'workers\' or \'primary\', got "all"').with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    const worker = new ServiceControl({ socket: sock, role: 'worker', log: () => undefined, target });
    expect(() => worker.command('x', { usage: 'x', run: () => 1 }, { where: 'both' as 'workers' })).to.throw(
      'command: where must be \'workers\' or \'primary\', got "both"').with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
  });

  it('a worker has no socket (whatever the option says) and runs its commands on its primary\'s request; a primary-only command is not its', async () => {
    const worker = new ServiceControl({ socket: sock, role: 'worker', log: () => undefined, target });
    expect(worker.server).to.equal(null);
    const written: string[] = [];
    worker.command('count', { usage: 'count', run: (ctx) => {
      ctx.write(`counting ${ctx.args.join(',')}`);
      return ctx.json ? { n: 3 } : '3';
    } });
    worker.command('held', { usage: 'held', run: () => 'no' }, { where: 'primary' });
    const ctx = {
      name: 'count', args: ['a', 'b'], json: true, signal: new AbortController().signal, peer: undefined as never,
      write: (l: string) => written.push(l) > 0, event: () => true, drain: () => Promise.resolve(), handover: () => undefined,
    };
    expect(await worker.runWorkerCommand('count', ctx)).to.deep.equal({ n: 3 });
    expect(written).to.deep.equal(['counting a,b']);
    expect(await failure(worker.runWorkerCommand('held', { ...ctx, name: 'held' }))).to.deep.equal({
      message: 'unknown command "held": type help for the list', code: 'ERR_GRACEFUL_UNKNOWN_COMMAND',
    });
  });

  describe('a primary', () => {
    let asked: { op: string; fields: Record<string, unknown> }[];
    let answers: WorkerAnswer[];
    let scaled: number[];
    let count: number;
    const ask: Ask = async (op, fields, onLine) => {
      asked.push({ op, fields });
      for (const a of answers) onLine(a.id, `line of ${a.id}`, { pause: () => undefined, resume: () => undefined });
      return answers;
    };
    const scale = {
      run: async (n: number) => {
        scaled.push(n);
        if (!Number.isInteger(n)) throw new Error(`not a number: ${n}`);
        count = n;
      },
      count: () => count,
    };

    beforeEach(() => {
      asked = [];
      answers = [{ id: 0, pid: 100, result: 'zero' }, { id: 1, pid: 101, error: { code: 'ERR_X', message: 'one failed' } }];
      scaled = [];
      count = 2;
    });

    it('runs an application command on every worker: each line labelled, every answer by slot', async () => {
      const c = await open({ role: 'primary', ask, scale });
      control!.command('hello', { usage: 'hello', maxArgs: 2, run: () => 'never here' });
      const events: ControlEvent[] = [];
      expect(await c.request('hello', ['x'], (e) => events.push(e))).to.deep.equal({ workers: answers });
      expect(events).to.deep.equal([{ event: 'output', line: 'worker 0: line of 0' }, { event: 'output', line: 'worker 1: line of 1' }]);
      expect(asked).to.have.length(1);
      expect(asked[0]!.op).to.equal('run');
      expect(asked[0]!.fields).to.deep.include({ name: 'hello', args: ['x'], json: true });
      expect((asked[0]!.fields.peer as { pid: number }).pid, 'the client\'s credentials go along').to.equal(process.pid);
      expect(await c.raw('hello')).to.deep.equal([
        'worker 0: line of 0', 'worker 1: line of 1', 'worker 0 (pid 100): zero', 'worker 1 (pid 101): error ERR_X: one failed', 'ok',
      ]);
    });

    it('with no worker ready: ERR_GRACEFUL_WORKER_FAILED; a command for the primary runs there', async () => {
      const c = await open({ role: 'primary', ask, scale });
      control!.command('hello', { usage: 'hello', run: () => 'never here' });
      control!.command('mine', { usage: 'mine', run: () => 'the primary\'s' }, { where: 'primary' });
      answers = [];
      expect(await failure(c.request('hello'))).to.deep.equal({ message: 'hello: no worker is ready to run it (see status)', code: 'ERR_GRACEFUL_WORKER_FAILED' });
      expect(await c.request('mine')).to.equal('the primary\'s');
      expect(asked.map((a) => a.fields.name)).to.deep.equal(['hello']);
    });

    it('scale n runs the scale and says how many serve; what is no count reaches it as NaN', async () => {
      const c = await open({ role: 'primary', ask, scale });
      expect(await c.request('scale', ['3'])).to.deep.equal({ workers: 3 });
      expect(await c.raw('scale 4')).to.deep.equal(['4 worker(s) serving', 'ok']);
      expect(await failure(c.request('scale', ['-1']))).to.deep.equal({ message: 'not a number: NaN', code: 'ERR_GRACEFUL_COMMAND_FAILED' });
      expect(await failure(c.request('scale', []))).to.deep.equal({ message: 'usage: scale <n>               run n workers: new ones start, then the old ones drain', code: 'ERR_GRACEFUL_USAGE' });
      expect(scaled).to.deep.equal([3, 4, NaN]);
    });

    it('without a scale, the scale command says what it needs (ERR_GRACEFUL_NOT_CONFIGURED)', async () => {
      const c = await open({ role: 'primary', ask });
      expect(await failure(c.request('scale', ['2']))).to.deep.equal({
        message: 'scale: this service runs without workers: set the workers option (or GRACEFUL_WORKERS) to scale it', code: 'ERR_GRACEFUL_NOT_CONFIGURED',
      });
    });

    it('reload scales to the number serving (every worker replaced); it takes no argument', async () => {
      const c = await open({ role: 'primary', ask, scale });
      expect(await c.request('reload')).to.deep.equal({ workers: 2, reloaded: 2 });
      expect(await c.raw('reload')).to.deep.equal(['2 new worker(s) serving', 'ok']);
      expect((await failure(c.request('reload', ['3']))).code).to.equal('ERR_GRACEFUL_USAGE');
      expect(scaled).to.deep.equal([2, 2]);
    });

    it('without workers, reload says to redeploy instead (ERR_GRACEFUL_NOT_CONFIGURED)', async () => {
      const c = await open({ role: 'single' });
      expect(await failure(c.request('reload'))).to.deep.equal({
        message: 'reload: this service runs without workers, and reload replaces the workers alone: use redeploy, which replaces the whole process', code: 'ERR_GRACEFUL_NOT_CONFIGURED',
      });
    });
  });
});
