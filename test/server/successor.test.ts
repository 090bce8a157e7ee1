/**
 * startSuccessor and Predecessor, the two ends of a hand-off, between this
 * process and a real child (the spawn seam runs a small fixture instead of
 * this program). Failures are coded, and leave no directory or descriptor.
 */
import { expect } from 'chai';
import { spawn, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { RedeployFailedError } from '../../src/index.js';
import { startSuccessor, type SpawnFunction } from '../../src/server/successor.js';
import { receiveFrom, sendTo } from '../../src/handoff/client.js';
import { closeAll } from '../../src/handoff/connection.js';
import { fdCount, fixtures, tmpDir, until } from '../helpers.js';

describe('successor and predecessor', function () {
  this.timeout(30_000);
  const savedTmp = process.env.TMPDIR;
  let tmp: string;
  let server: net.Server;
  let spawned: number;

  beforeEach(async () => {
    tmp = tmpDir();
    process.env.TMPDIR = tmp;
    spawned = 0;
    server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  afterEach(async () => {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    await new Promise((r) => server.close(r));
  });

  /** child: the seam, running the fixture with args instead of this program. */
  function child(...args: string[]): { spawn: SpawnFunction; output: () => string[] } {
    const lines: string[] = [];
    return {
      spawn: (_cmd: string, _args: readonly string[], options: SpawnOptions) => {
        spawned++;
        const proc = spawn(process.execPath, [path.join(fixtures, 'successor-child.js'), ...args], { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
        proc.stdout!.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean)));
        return proc;
      },
      output: () => lines,
    };
  }

  const descriptors = () => [{ fd: (server as unknown as { _handle: { fd: number } })._handle.fd, meta: { name: 'http', kind: 'listener' } }];

  it('hands every descriptor and the state to the new instance, which answers ready; the private directory is gone', async () => {
    const c = child();
    const before = fdCount();
    const s = await startSuccessor({ descriptors, state: { runlevel: 3, generation: 4 }, timeoutMs: 10_000, spawn: c.spawn });
    expect(s.pid).to.equal(s.child.pid);
    await until(() => c.output().some((l) => l.startsWith('told ')), 10_000, 'the answer');
    expect(c.output()).to.deep.equal(['got http listener socket', 'state {"runlevel":3,"generation":4} running=true', 'told ok']);
    expect(fs.readdirSync(tmp)).to.deep.equal([]);
    const exited = new Promise((r) => s.child.once('exit', r));
    s.child.kill('SIGKILL');
    await exited;
    await until(() => fdCount() === before, 5000, 'descriptors back to the baseline');
  });

  it('keep: the hand-off stays open after ready; the new instance asks to commit and reads the answer', async () => {
    const c = child('commit');
    const before = fdCount();
    const s = await startSuccessor({ descriptors, state: { generation: 4 }, timeoutMs: 10_000, spawn: c.spawn, keep: true });
    expect(s.link, 'the kept hand-off').to.not.equal(undefined);
    expect(fs.readdirSync(tmp), 'the socket file and its directory are gone').to.deep.equal([]);
    const asked = await receiveFrom(s.link!.connection);
    closeAll([asked!.fd]);
    expect(asked!.meta).to.deep.equal({ graceful: 'commit' });
    expect(c.output().filter((l) => l.startsWith('committed '))).to.deep.equal([]);
    await sendTo(s.link!.connection, 2, { graceful: 'committed' });
    s.link!.release();
    await until(() => c.output().some((l) => l.startsWith('committed ')), 10_000, 'the answer');
    expect(c.output()).to.deep.equal(['got http listener socket', 'state {"generation":4} running=true', 'told ok', 'committed committed']);
    const exited = new Promise((r) => s.child.once('exit', r));
    s.child.kill('SIGKILL');
    await exited;
    await until(() => fdCount() === before, 5000, 'descriptors back to the baseline');
  });

  it('keep: an old instance that releases the hand-off unasked (its window passed) is read as committed', async () => {
    const c = child('commit');
    const s = await startSuccessor({ descriptors, state: {}, timeoutMs: 10_000, spawn: c.spawn, keep: true });
    s.link!.release();
    await until(() => c.output().some((l) => l.startsWith('committed ')), 10_000, 'the answer');
    expect(c.output()).to.include('committed closed');
    s.child.kill('SIGKILL');
  });

  it('no keep (an old instance that does not answer commit): the new instance does not take the closed hand-off for a commit', async () => {
    const c = child('commit');
    const s = await startSuccessor({ descriptors, state: {}, timeoutMs: 10_000, spawn: c.spawn });
    expect(s.link).to.equal(undefined);
    await until(() => c.output().some((l) => l.startsWith('committed ')), 10_000, 'the answer');
    expect(c.output()).to.include('committed null');
    s.child.kill('SIGKILL');
  });

  it('a new instance that exits before ready: ERR_GRACEFUL_REDEPLOY_FAILED with its exit code and last words', async () => {
    const err = await startSuccessor({ descriptors, state: {}, timeoutMs: 10_000, spawn: child('exit').spawn }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(RedeployFailedError);
    const e = err as RedeployFailedError;
    expect(e.code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
    expect(e.failure).to.include({ reason: 'exit', exitCode: 3 });
    expect(e.message).to.match(/exited with code 3 before it was ready; its last words: successor-child: giving up on purpose; this instance goes on serving$/);
    expect(fs.readdirSync(tmp)).to.deep.equal([]);
  });

  it('no private directory can be made (TMPDIR missing): a coded failure, nothing spawned', async () => {
    process.env.TMPDIR = path.join(tmp, 'missing');
    const err = (await startSuccessor({ descriptors, state: {}, timeoutMs: 10_000, spawn: child().spawn }).catch((e: unknown) => e)) as RedeployFailedError;
    expect(err).to.be.instanceOf(RedeployFailedError);
    expect(err.failure.reason).to.equal('handoff');
    expect(err.message).to.match(/^could not make a private directory for the hand-off socket in .*missing \(ENOENT\): make it writable, or point TMPDIR elsewhere/);
    expect(spawned).to.equal(0);
  });

  it('the hand-off socket cannot be opened (its path is too long): a coded failure, the directory removed, nothing spawned', async () => {
    const long = path.join(tmp, 'd'.repeat(100));
    fs.mkdirSync(long);
    process.env.TMPDIR = long;
    const err = (await startSuccessor({ descriptors, state: {}, timeoutMs: 10_000, spawn: child().spawn }).catch((e: unknown) => e)) as RedeployFailedError;
    expect(err).to.be.instanceOf(RedeployFailedError);
    expect(err.failure.reason).to.equal('handoff');
    expect(err.message).to.match(/^could not open the hand-off socket .*handoff\.sock \(ENAMETOOLONG\)/);
    expect(fs.readdirSync(long)).to.deep.equal([]);
    expect(spawned).to.equal(0);
  });

  it('a spawn that fails (no such working directory): ERR_GRACEFUL_REDEPLOY_FAILED, reason spawn', async () => {
    const spawnIn: SpawnFunction = (cmd, args, options) => spawn(cmd, args, { ...options, cwd: path.join(tmp, 'gone') });
    const err = (await startSuccessor({ descriptors, state: {}, timeoutMs: 10_000, spawn: spawnIn }).catch((e: unknown) => e)) as RedeployFailedError;
    expect(err.code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
    expect(err.failure.reason).to.equal('spawn');
    expect(fs.readdirSync(tmp)).to.deep.equal([]);
  });
});
