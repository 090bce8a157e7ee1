/**
 * Back-to-back redeploys: a redeploy asked while the instance before is in
 * its take-back window asks it to commit (end its window at once) and does
 * not wait for its exit. The windows here are 20 s, so a pass proves the wait
 * was cut; the waits are read from the progress events, never timed here.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { endGenerations, gone, httpGet, spawnFixture, tmpDir, until, type Child } from '../helpers.js';
import { LoadLoop } from '../load.js';

const WINDOW = 20_000;

interface Event {
  type: string;
  ms: number;
  pid?: number;
  predecessor?: number;
}

/** events: the redeploy progress events process pid printed ("event <pid> <type> <JSON>"). */
function events(app: Child, pid: number): Event[] {
  return app.stdout.filter((l) => l.startsWith(`event ${pid} `)).map((l) => JSON.parse(l.split(' ').slice(3).join(' ')) as Event);
}

/** readyPids: the pids of the "ready <pid> ..." lines so far, in order. */
function readyPids(app: Child): number[] {
  return app.stdout.filter((l) => l.startsWith('ready ')).map((l) => Number(l.split(' ')[1]));
}

async function nextReady(app: Child, after: number): Promise<number> {
  return until(() => readyPids(app)[after], 30_000, `generation ${after + 1} to be ready`);
}

describe('back-to-back redeploys', function () {
  this.timeout(60_000);
  let app: Child | undefined;

  afterEach(async () => {
    // Workers go with their primary; the worker lines are ended too, by pid.
    for (const line of app?.stdout ?? []) {
      const m = /^worker \d+ (\d+)/.exec(line);
      if (m) try { process.kill(Number(m[1]), 'SIGKILL'); } catch { /* gone */ }
    }
    await endGenerations(app);
    app = undefined;
  });

  it('the second does not wait out the first one\'s window; the first drains its requests and exits', async () => {
    app = spawnFixture('app', [], { env: { ...process.env, APP_TAKE_BACK_WINDOW: String(WINDOW), APP_EVENTS: '1' } });
    const a = await nextReady(app, 0);
    const port = Number((await app.next(/^ready /)).split(' ')[2]);
    const load = new LoadLoop(port, 2, 2);
    await until(() => load.result.requests > 20, 10_000, 'some load');
    const slow = httpGet({ port, path: '/slow?ms=3000' }); // held by a, across both redeploys
    await until(() => load.result.requests > 40, 10_000, 'the slow request to be in');
    process.kill(a, 'SIGHUP');
    const b = await nextReady(app, 1);
    await until(() => events(app!, a).some((e) => e.type === 'draining'), 10_000, 'a to hand over');
    process.kill(b, 'SIGHUP'); // a is in its 20 s window
    const c = await nextReady(app, 2);
    const bEvents = await until(() => (events(app!, b).some((e) => e.type === 'ready') ? events(app!, b) : null), 10_000, 'b\'s events') as Event[];
    expect(bEvents.map((e) => e.type).slice(0, 3)).to.deep.equal(['predecessor-committed', 'spawned', 'ready']);
    expect(bEvents[0]!.predecessor).to.equal(a);
    expect(bEvents[0]!.ms, 'b waited for a to commit').to.be.below(WINDOW / 4);
    expect(bEvents[1]!.ms, 'b spawned c after').to.be.below(WINDOW / 4);
    expect(bEvents[2]!.pid).to.equal(c);
    // a, committed early, still answers what it holds, then exits, well within its own window.
    expect((await slow).body).to.equal(String(a));
    await until(() => events(app!, a).some((e) => e.type === 'done'), WINDOW / 2, 'a to finish its drain');
    await until(() => gone(a), WINDOW / 2, 'a to exit');
    const result = await load.stop();
    expect(result.errors, result.errors.slice(0, 5).join('\n')).to.deep.equal([]);
    expect(app.stdout.filter((l) => l.startsWith('takeback '))).to.deep.equal([]);
  });

  it('the new instance dying right after the commit: the old one does not take back', async () => {
    const failFile = path.join(tmpDir(), 'fail');
    app = spawnFixture('app', [], { env: { ...process.env, APP_TAKE_BACK_WINDOW: String(WINDOW), APP_EVENTS: '1', APP_FAIL_FILE: failFile } });
    const a = await nextReady(app, 0);
    const port = Number((await app.next(/^ready /)).split(' ')[2]);
    process.kill(a, 'SIGHUP');
    const b = await nextReady(app, 1);
    await until(() => events(app!, a).some((e) => e.type === 'draining'), 10_000, 'a to hand over');
    fs.writeFileSync(failFile, 'kill-early'); // the instance b spawns dies at once
    process.kill(b, 'SIGHUP');
    await until(() => events(app!, b).some((e) => e.type === 'predecessor-committed'), 10_000, 'a to commit');
    process.kill(b, 'SIGKILL');
    // a committed: it drains and exits instead of serving its old code again; nobody serves.
    await until(() => gone(a), WINDOW / 2, 'a to exit');
    expect(app.stdout.filter((l) => l.startsWith('takeback '))).to.deep.equal([]);
    expect(readyPids(app)).to.deep.equal([a, b]);
    const answer = await httpGet({ port }).then((r) => r.body, (err: NodeJS.ErrnoException) => err.code);
    // Nobody serves: the port refuses, or resets what the killed instance's queue held.
    expect(['ECONNREFUSED', 'ECONNRESET']).to.include(answer);
  });

  it('with workers: the second redeploy does not wait out the first primary\'s window', async () => {
    app = spawnFixture('workers', [], { env: { ...process.env, APP_WORKERS: '2', APP_SOCKET: path.join(tmpDir(), 'control.sock'), APP_TAKE_BACK_WINDOW: String(WINDOW), APP_EVENTS: '1' } });
    const a = await nextReady(app, 0);
    const port = Number((await app.next(/^ready /)).split(' ')[2]);
    const load = new LoadLoop(port, 2, 2);
    await until(() => load.result.requests > 20, 10_000, 'some load');
    process.kill(a, 'SIGHUP');
    const b = await nextReady(app, 1);
    await until(() => events(app!, a).some((e) => e.type === 'draining'), 10_000, 'a to hand over');
    process.kill(b, 'SIGHUP');
    const c = await nextReady(app, 2);
    const bEvents = await until(() => (events(app!, b).some((e) => e.type === 'ready') ? events(app!, b) : null), 10_000, 'b\'s events') as Event[];
    expect(bEvents[0]).to.include({ type: 'predecessor-committed', predecessor: a });
    expect(bEvents[0]!.ms).to.be.below(WINDOW / 4);
    expect(bEvents.find((e) => e.type === 'ready')!.pid).to.equal(c);
    await until(() => gone(a), WINDOW / 2, 'a to exit');
    const result = await load.stop();
    expect(result.errors, result.errors.slice(0, 5).join('\n')).to.deep.equal([]);
  });
});
