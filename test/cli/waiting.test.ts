/**
 * watchRedeploy (src/cli/waiting.ts): the lines a redeploy's wait reports,
 * when its ticker runs and stops, and Ctrl-C in a real process (the line, the
 * exit status 130, the SIGINT listener let go by stop()).
 */
import { expect } from 'chai';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { watchRedeploy, WAIT_REPORT_MS } from '../../src/cli/waiting.js';
import { root, spawnChild } from '../helpers.js';

/** lines: a sink for watchRedeploy that resolves once it holds n lines. */
function collector() {
  const lines: string[] = [];
  const waiters: { n: number; resolve(): void }[] = [];
  return {
    lines,
    out: (l: string) => {
      lines.push(l);
      for (const w of waiters.splice(0)) {
        if (lines.length >= w.n) w.resolve();
        else waiters.push(w);
      }
    },
    holds: (n: number) => new Promise<void>((resolve) => (lines.length >= n ? resolve() : waiters.push({ n, resolve }))),
  };
}

/** ticks resolves after n periods of a ticker of its own (a measure of time made of the same timers, not a sleep). */
async function ticks(n: number, everyMs: number): Promise<void> {
  const c = collector();
  const w = watchRedeploy(c.out, undefined, everyMs);
  w.event({ event: 'spawned', pid: 1, ms: 0 });
  await c.holds(n);
  w.stop();
}

describe('cli/waiting: watchRedeploy', () => {
  it('reports every 5 s by default', () => {
    expect(WAIT_REPORT_MS).to.equal(5000);
  });

  it('watchRedeploy reports the wait after spawned, with the server\'s timeout, and stops at ready', async () => {
    const lines: string[] = [];
    let two!: () => void;
    const twoLines = new Promise<void>((resolve) => (two = resolve));
    const watch = watchRedeploy((l) => {
      if (lines.push(l) === 2) two();
    }, undefined, 20);
    watch.event({ event: 'spawned', pid: 42, ms: 0, timeoutMs: 60_000 });
    await twoLines;
    watch.event({ event: 'ready', pid: 42, ms: 100 });
    const n = lines.length;
    expect(lines[0]).to.match(/^waiting for pid 42 to be ready: \d+ s so far; the server gives up at 60 s$/);
    // After ready, the ticker is stopped: three periods of a second ticker of the
    // same period, started later, add nothing (the absence of a line is what is
    // tested, so this waits three periods, measured by the same kind of timer).
    await ticks(3, 20);
    expect(lines.length).to.equal(n);
    watch.stop();
  });

  it('counts from the time the spawned event gives, says nothing of a timeout it was not told, and names no pid it was not told', async () => {
    const c = collector();
    const w = watchRedeploy(c.out, undefined, 20);
    w.event({ event: 'spawned', pid: 9, ms: 7000 });
    await c.holds(1);
    expect(c.lines[0]).to.equal('waiting for pid 9 to be ready: 7 s so far');
    w.event({ event: 'spawned', ms: 0, timeoutMs: 1499 }); // a second spawned restarts the count; a pid that is no number reads null
    const from = c.lines.length;
    await c.holds(from + 1);
    expect(c.lines[from]).to.equal('waiting for pid null to be ready: 0 s so far; the server gives up at 1 s');
    w.stop();
  });

  it('reports nothing before spawned, goes on through worker events, and stops at failed and at stop()', async () => {
    const c = collector();
    const w = watchRedeploy(c.out, undefined, 20);
    w.event({ event: 'worker', id: 0, pid: 5 });
    await ticks(3, 20);
    expect(c.lines, 'no line before spawned').to.deep.equal([]);
    w.event({ event: 'spawned', pid: 5, ms: 0 });
    await c.holds(1);
    w.event({ event: 'worker', id: 0, pid: 5, state: 'ready' });
    await c.holds(3); // a worker event does not end the wait
    w.event({ event: 'failed', message: 'x' });
    const n = c.lines.length;
    await ticks(3, 20);
    expect(c.lines.length, 'nothing after failed').to.equal(n);
    w.event({ event: 'spawned', pid: 6, ms: 0 });
    await c.holds(n + 1);
    w.stop();
    const m = c.lines.length;
    await ticks(3, 20);
    expect(c.lines.length, 'nothing after stop()').to.equal(m);
    expect(c.lines.slice(n)).to.deep.equal(Array(m - n).fill('waiting for pid 6 to be ready: 0 s so far'));
  });

  it('listens to SIGINT only with a socket, and stop() lets go of it', () => {
    const before = process.listenerCount('SIGINT');
    const quiet = watchRedeploy(() => undefined);
    expect(process.listenerCount('SIGINT')).to.equal(before);
    quiet.stop();
    const w = watchRedeploy(() => undefined, 'a.sock');
    expect(process.listenerCount('SIGINT')).to.equal(before + 1);
    w.stop();
    expect(process.listenerCount('SIGINT')).to.equal(before);
    w.stop(); // twice: nothing more
    expect(process.listenerCount('SIGINT')).to.equal(before);
  });

  describe('Ctrl-C in a real process', function () {
    this.timeout(30_000);
    const module = pathToFileURL(path.join(root, 'dist/src/cli/waiting.js')).href;
    const run = (events: string) => spawnChild(process.execPath, ['--input-type=module', '-e', [
      `import { watchRedeploy } from ${JSON.stringify(module)};`,
      `const w = watchRedeploy((l) => console.log(l), 'run/app.sock', 60000);`,
      `for (const e of ${events}) w.event(e);`,
      `setInterval(() => undefined, 1000);`,
      `console.log('armed');`,
    ].join('\n')]);

    it('says the redeploy goes on, with the new pid and how to follow it, and exits with 130', async () => {
      const child = run(`[{ event: 'spawned', pid: 4242, ms: 0 }]`);
      await child.next(/^armed$/);
      child.kill('SIGINT');
      expect(await child.exited).to.deep.equal({ code: 130, signal: null });
      expect(child.stdout).to.deep.equal(['armed',
        'interrupted: the redeploy (new instance pid 4242) goes on in the server; follow it with: graceful-restart status run/app.sock']);
      expect(child.stderr).to.deep.equal([]);
    });

    it('before the new instance is spawned, names no pid', async () => {
      const child = run('[]');
      await child.next(/^armed$/);
      child.kill('SIGINT');
      expect(await child.exited).to.deep.equal({ code: 130, signal: null });
      expect(child.stdout).to.deep.equal(['armed', 'interrupted: the redeploy goes on in the server; follow it with: graceful-restart status run/app.sock']);
    });

    it('after stop(), SIGINT is Node\'s again: the process dies of it', async () => {
      const child = spawnChild(process.execPath, ['--input-type=module', '-e', [
        `import { watchRedeploy } from ${JSON.stringify(module)};`,
        `watchRedeploy((l) => console.log(l), 'run/app.sock').stop();`,
        `setInterval(() => undefined, 1000);`,
        `console.log('armed');`,
      ].join('\n')]);
      await child.next(/^armed$/);
      child.kill('SIGINT');
      expect(await child.exited).to.deep.equal({ code: null, signal: 'SIGINT' });
      expect(child.stdout).to.deep.equal(['armed']);
    });
  });
});
