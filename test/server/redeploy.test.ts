/** Redeploys of a real graceful server under real load: zero errors, rollback, the log file, runlevels. */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { openFds, spawnFixture, tmpDir, until, type Child, gone } from '../helpers.js';
import { LoadLoop, post } from '../load.js';


interface Ready {
  pid: number;
  port: number;
  generation: number;
  runlevel: number;
}

function parseReady(line: string): Ready {
  const [, pid, port, generation, runlevel] = line.split(' ').map(Number);
  return { pid: pid!, port: port!, generation: generation!, runlevel: runlevel! };
}

describe('redeploy', function () {
  this.timeout(120_000);
  let app: Child | undefined;
  let pids: number[] = [];

  afterEach(async () => {
    // End every generation this test started (only those, by pid).
    for (const line of app?.stdout ?? []) if (line.startsWith('ready ')) pids.push(parseReady(line).pid);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await app?.exited;
    app = undefined;
    pids = [];
  });

  async function start(env: Record<string, string> = {}): Promise<Ready> {
    app = spawnFixture('app', [], { env: { ...process.env, ...env } });
    const ready = parseReady(await app.next(/^ready /));
    pids.push(ready.pid);
    return ready;
  }

  async function redeploy(port: number): Promise<Ready> {
    const res = await post(port, '/redeploy');
    expect(res, JSON.stringify(res)).to.include({ ok: true });
    const ready = parseReady(await app!.next(new RegExp(`^ready ${res.pid} `)));
    pids.push(ready.pid);
    return ready;
  }

  it('20 redeploys under keep-alive and fresh-connection load: no error, successive pids, old ones gone', async () => {
    const first = await start();
    const load = new LoadLoop(first.port, 3, 3);
    await until(() => load.result.requests > 50, 10_000, 'some load');
    const generations = [first];
    for (let i = 0; i < 20; i++) generations.push(await redeploy(first.port));
    await until(() => load.result.requests > 50 * 21, 20_000, 'load on the last instance');
    const result = await load.stop();
    expect(result.errors, result.errors.slice(0, 5).join('\n')).to.deep.equal([]);
    const order = generations.map((g) => g.pid);
    expect(new Set(order).size).to.equal(21);
    for (const seen of result.perLoop) {
      // Each loop moves forward through the generations. While a new instance
      // and its predecessor both accept (until the predecessor closes its
      // copies), the predecessor may answer once more: one back, never two.
      const idx = seen.map((pid) => order.indexOf(pid));
      expect(idx.every((v) => v >= 0), `unknown pid in ${seen}`).to.equal(true);
      let highest = -1;
      const back = idx.filter((v) => {
        highest = Math.max(highest, v);
        return v < highest - 1;
      });
      expect(back, `answers from two or more generations back, in ${idx.join(' ')}`).to.deep.equal([]);
    }
    expect(generations.map((g) => g.generation)).to.deep.equal([...Array(21).keys()].map((i) => i + 1));
    await until(() => order.slice(0, -1).every(gone), 30_000, 'old instances to exit');
  });

  it('a log file handed across 5 redeploys holds every line of every generation', async () => {
    const dir = tmpDir();
    const logPath = path.join(dir, 'app.log');
    const first = await start({ APP_LOG: logPath, APP_LOG_LINES: '200' });
    const gens = [first];
    for (let i = 0; i < 5; i++) gens.push(await redeploy(first.port));
    await until(() => gens.slice(0, -1).every((g) => gone(g.pid)), 30_000, 'old instances to exit');
    const lines = fs.readFileSync(logPath, 'utf8').split('\n').filter(Boolean);
    for (const g of gens) {
      const mine = lines.filter((l) => l.startsWith(`gen ${g.generation} pid ${g.pid} line `));
      expect(mine.map((l) => Number(l.split(' ').pop())), `generation ${g.generation}`).to.deep.equal([...Array(200).keys()]);
    }
    // Each old generation logged its halt after its own lines, through the same open file.
    for (const g of gens.slice(0, -1)) {
      const halt = lines.indexOf(`gen ${g.generation} pid ${g.pid} halt`);
      expect(halt, `halt of generation ${g.generation}`).to.be.greaterThan(lines.indexOf(`gen ${g.generation} pid ${g.pid} line 199`));
    }
    expect(lines).to.have.length(6 * 200 + 5);
  });

  for (const [mode, reason, words] of [
    ['exit', 'exit', 'exiting at start on purpose'],
    ['throw', 'exit', 'failing before ready on purpose'],
    ['hang', 'timeout', 'never becoming ready on purpose'],
  ] as const) {
    it(`rollback when the new instance ${mode === 'exit' ? 'exits at start' : mode === 'throw' ? 'throws before ready' : 'never becomes ready'}: the old one keeps serving, no leak`, async () => {
      const dir = tmpDir();
      const failFile = path.join(dir, 'fail');
      const first = await start({ APP_FAIL_FILE: failFile, APP_UPGRADE_TIMEOUT: '2000' });
      const fdsBefore = openFds(first.pid);
      const load = new LoadLoop(first.port, 2, 2);
      await until(() => load.result.requests > 20, 10_000, 'some load');
      fs.writeFileSync(failFile, mode);
      const res = await post(first.port, '/redeploy');
      expect(res).to.include({ ok: false, code: 'ERR_GRACEFUL_REDEPLOY_FAILED' });
      const failure = res.failure as { reason: string; exitCode?: number; signal?: string; stderr: string[]; pid: number };
      expect(failure.reason).to.equal(reason);
      expect(failure.stderr.join('\n')).to.include(words);
      if (mode === 'exit') expect(failure.exitCode).to.equal(3);
      if (mode === 'throw') expect(failure.exitCode).to.equal(1);
      if (mode === 'hang') expect(failure.signal).to.equal('SIGKILL');
      expect(res.message).to.match(new RegExp(`pid ${failure.pid}`));
      await until(() => gone(failure.pid), 10_000, 'the failed instance to be gone');
      const result = await load.stop();
      expect(result.errors).to.deep.equal([]);
      expect(result.perLoop.flat().every((pid) => pid === first.pid)).to.equal(true);
      // Once the clients' connections are closed, the old instance holds what it held before.
      await until(() => openFds(first.pid).length === fdsBefore.length, 5000, 'descriptors of the old instance')
        .catch(() => expect(openFds(first.pid), 'descriptors of the old instance').to.deep.equal(fdsBefore));
      // It is not broken: the next redeploy works.
      fs.rmSync(failFile);
      const next = await redeploy(first.port);
      expect(next.generation).to.equal(2);
    });
  }

  it('refuses a second redeploy while one is under way', async () => {
    const dir = tmpDir();
    const failFile = path.join(dir, 'fail');
    fs.writeFileSync(failFile, 'hang');
    const first = await start({ APP_FAIL_FILE: failFile, APP_UPGRADE_TIMEOUT: '3000' });
    const one = post(first.port, '/redeploy');
    await app!.next(/^$/, 500).catch(() => undefined); // give the first one time to spawn
    const two = await post(first.port, '/redeploy');
    expect(two).to.include({ ok: false, code: 'ERR_GRACEFUL_UPGRADE_IN_PROGRESS' });
    expect(two.message).to.match(/refused while another redeploy is under way \(new instance pid \d+, started \d+ ms ago\)/);
    expect(await one).to.include({ ok: false, code: 'ERR_GRACEFUL_REDEPLOY_FAILED' });
  });

  it('runlevel 1 frees the port for another process, 3 takes it again, and the runlevel survives a redeploy', async () => {
    const first = await start();
    process.kill(first.pid, 'SIGUSR1');
    await app!.next(new RegExp(`^runlevel 1 ${first.pid}`));
    // Another process can bind the port now.
    const other = net.createServer();
    await new Promise<void>((resolve, reject) => {
      other.once('error', reject);
      other.listen(first.port, '127.0.0.1', resolve);
    });
    await new Promise((r) => other.close(r));
    // A redeploy (SIGHUP: the HTTP listener is closed) keeps runlevel 1.
    process.kill(first.pid, 'SIGHUP');
    const second = parseReady(await app!.next(/^ready /));
    pids.push(second.pid);
    expect(second.runlevel).to.equal(1);
    await until(() => gone(first.pid), 20_000, 'the old instance to exit');
    process.kill(second.pid, 'SIGUSR2');
    await app!.next(new RegExp(`^runlevel 3 ${second.pid}`));
    const load = new LoadLoop(first.port, 1, 1);
    await until(() => load.result.requests > 10, 10_000, 'requests on the rebound port');
    const result = await load.stop();
    expect(result.errors).to.deep.equal([]);
    expect(new Set(result.perLoop.flat())).to.deep.equal(new Set([second.pid]));
  });
});
