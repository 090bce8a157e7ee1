/**
 * spawn-worker.ts: a worker started through the hand-off core (the fixture
 * as the worker program) gets its descriptors, its link and its slot, and
 * the primary keeps the other end of the link; a failure is told as the
 * worker's own, with nothing left open; of workers started together, the one
 * that failed by itself is reported, not one aborted because of it.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RedeployFailedError, WorkerFailedError } from '../../src/errors.js';
import { firstFailure, spawnWorker, workerFailure } from '../../src/workers/spawn-worker.js';
import { fixtures, openFds, until } from '../helpers.js';

/** fixture: the spawn seam, running the hand-off fixture with args; its output lines land in lines. */
function fixture(lines: string[], ...args: string[]) {
  return (_cmd: string, _args: readonly string[], options: SpawnOptions): ChildProcess => {
    const proc = spawn(process.execPath, [path.join(fixtures, 'successor-child.js'), ...args], { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean)));
    return proc;
  };
}

const exited = (child: ChildProcess) => new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));

describe('workers/spawn-worker', function () {
  this.timeout(30_000);

  it('spawnWorker: the worker gets its descriptors, its link and its slot; the primary keeps the link\'s other end', async () => {
    const lines: string[] = [];
    const { child, link } = await spawnWorker({ id: 2, count: 4, generation: () => 5, descriptors: () => [], state: { runlevel: 3 }, timeoutMs: 20_000, spawn: fixture(lines) });
    try {
      await until(() => lines.some((l) => l.startsWith('told ')), 10_000, 'the worker\'s answer');
      expect(lines).to.deep.equal(['got graceful:link fd socket', 'state {"runlevel":3,"workerId":2} running=true', 'told ok']);
      expect(link.meta.name).to.equal('graceful:link');
      expect(fs.readlinkSync(`/proc/self/fd/${link.fd}`)).to.match(/^socket:/);
    } finally {
      link.close();
      child.kill('SIGKILL');
      await exited(child);
    }
  });

  it('spawnWorker: a worker that fails is named, with its own last words; nothing stays open', async () => {
    const before = openFds().length;
    const err = await spawnWorker({ id: 1, count: 2, generation: () => 9, descriptors: () => [], state: {}, timeoutMs: 20_000, spawn: fixture([], 'exit') }).then(() => null, (e: Error) => e);
    expect(err).to.be.instanceOf(WorkerFailedError);
    expect(err!.message).to.match(/^worker 1 of generation 9 \(pid \d+\) exited with code 3 before it was ready: successor-child: giving up on purpose$/);
    expect(err!.cause).to.be.instanceOf(RedeployFailedError);
    expect(openFds().length).to.equal(before);
  });

  it('workerFailure rewords a redeploy\'s failure for a worker', () => {
    expect(workerFailure(new Error('the new instance (pid 4) exited with code 1 before it was ready; it was killed (SIGKILL) and this instance goes on serving')))
      .to.equal(' (pid 4) exited with code 1 before it was ready');
    expect(workerFailure(new Error('could not spawn; this instance goes on serving'))).to.equal(': could not spawn');
    expect(workerFailure('odd')).to.equal(': odd');
  });

  it('firstFailure: the start that failed by itself, not one aborted because of it; else the first; none when all started', () => {
    const aborted = new WorkerFailedError('worker 0 aborted', { cause: new RedeployFailedError('aborted', { reason: 'aborted', stderr: [] }) });
    const own = new WorkerFailedError('worker 1 exited');
    const r = (reason: unknown): PromiseSettledResult<unknown> => ({ status: 'rejected', reason });
    const ok: PromiseSettledResult<unknown> = { status: 'fulfilled', value: undefined };
    expect(firstFailure([r(aborted), ok, r(own)])?.reason).to.equal(own);
    expect(firstFailure([ok, r(aborted)])?.reason).to.equal(aborted);
    expect(firstFailure([ok, ok])).to.equal(undefined);
  });
});
