/**
 * The README's hand-off core example: example/handoff-owner.mjs serves HTTP
 * and hands its listening socket and log file to example/handoff-taker.mjs,
 * copied as owner.mjs and taker.mjs into a project. Under a loop of new
 * connections, none is refused or reset; the taker serves on the same port,
 * the owner exits, both append to one log, and neither leaks a descriptor.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { cli, freePort, httpGet, openFds, spawnChild, until, type Child } from '../helpers.js';
import { LoadLoop } from '../load.js';
import { makeProject } from './project.js';

describe('example: the hand-off core (owner.mjs hands over to taker.mjs)', function () {
  this.timeout(60_000);
  const started: Child[] = [];
  afterEach(async () => {
    for (const c of started.splice(0)) {
      c.kill('SIGKILL');
      await c.exited;
    }
  });

  it('the taker serves on the owner\'s socket with no failed request; the owner exits; one log', async () => {
    const project = await makeProject({ 'owner.mjs': 'handoff-owner.mjs', 'taker.mjs': 'handoff-taker.mjs' });
    const port = await freePort();
    const env = { ...process.env, PORT: String(port) };
    const owner = spawnChild(process.execPath, ['owner.mjs'], { cwd: project, env });
    started.push(owner);
    expect(await owner.next(/^owner/)).to.equal(`owner ${owner.pid} serving on port ${port}`);
    expect((await httpGet({ port })).body).to.equal(`owner ${owner.pid}\n`);

    const load = new LoadLoop(port, 0, 2);
    try {
      await until(() => load.result.requests > 20, 10_000, 'some load on the owner');
      const taker = spawnChild(process.execPath, ['taker.mjs'], { cwd: project, env });
      started.push(taker);
      expect(await taker.next(/^taker/)).to.equal(`taker ${taker.pid} serving on port ${port}`);
      expect(await owner.exited, 'the owner exits once it handed over and drained').to.deep.equal({ code: 0, signal: null });
      const before = load.result.requests;
      await until(() => load.result.requests > before + 20, 10_000, 'load on the taker');
      const result = await load.stop();
      expect(result.errors, result.errors.slice(0, 5).join('\n')).to.deep.equal([]);
      expect((await httpGet({ port })).body).to.equal(`taker ${taker.pid}\n`);

      expect(fs.existsSync(path.join(project, 'handoff.sock')), 'the owner removed its hand-off socket').to.equal(false);
      // One file, appended to by both (the owner's last line and the taker's first may come in either order).
      const lines = fs.readFileSync(path.join(project, 'handoff.log'), 'utf8').split('\n');
      expect(lines[0]).to.equal(`owner ${owner.pid} serving`);
      expect(lines.slice(1).sort()).to.deep.equal(['', `owner ${owner.pid} handed over to pid ${taker.pid}`, `taker ${taker.pid} serving`]);
      // The taker holds the log file once: its stream owns the received descriptor.
      const targets = openFds(taker.pid).map((fd) => { try { return fs.readlinkSync(`/proc/${taker.pid}/fd/${fd}`); } catch { return ''; } });
      expect(targets.filter((t) => t === fs.realpathSync(path.join(project, 'handoff.log')))).to.have.length(1);
    } finally {
      await load.stop();
    }
  });

  it('the CLI pointed at handoff.sock says it is a hand-off socket and exits 3; the owner serves on, then hands over to a taker', async () => {
    const project = await makeProject({ 'owner.mjs': 'handoff-owner.mjs', 'taker.mjs': 'handoff-taker.mjs' });
    const port = await freePort();
    const env = { ...process.env, PORT: String(port) };
    const owner = spawnChild(process.execPath, ['owner.mjs'], { cwd: project, env });
    started.push(owner);
    await owner.next(/^owner/);
    const load = new LoadLoop(port, 0, 2);
    try {
      await until(() => load.result.requests > 20, 10_000, 'some load on the owner');
      const sock = path.join(project, 'handoff.sock');
      for (const args of [[sock, 'status'], [sock, '--json', 'status']]) {
        const r = await cli(...args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(3);
        if (args.includes('--json')) expect(JSON.parse(r.stdout.trim().split('\n').pop()!).error.code).to.equal('ERR_GRACEFUL_NOT_CONTROL_SOCKET');
        else expect(r.stderr).to.include(`error: ${sock} is a hand-off socket, not a control socket`);
        expect(await owner.next(/did not confirm/)).to.match(new RegExp(`^owner ${owner.pid}: pid \\d+ did not confirm: serving on$`));
      }
      const before = load.result.requests;
      await until(() => load.result.requests > before + 20, 10_000, 'the owner still serving');
      expect((await httpGet({ port })).body).to.equal(`owner ${owner.pid}\n`);
      const taker = spawnChild(process.execPath, ['taker.mjs'], { cwd: project, env });
      started.push(taker);
      expect(await taker.next(/^taker/)).to.equal(`taker ${taker.pid} serving on port ${port}`);
      expect(await owner.exited).to.deep.equal({ code: 0, signal: null });
      const result = await load.stop();
      expect(result.errors, result.errors.slice(0, 5).join('\n')).to.deep.equal([]);
      expect((await httpGet({ port })).body).to.equal(`taker ${taker.pid}\n`);
    } finally {
      await load.stop();
    }
  });
});
