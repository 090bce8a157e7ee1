/** An unmodified Koa application (test/fixtures/unmodified/koa.mjs: app.listen(port), every address) under graceful-restart run. */
import { expect } from 'chai';
import { gone, openFds, tmpDir, until } from '../helpers.js';
import { drainsOnSigterm, failedVersionRollsBack, markers, redeploysUnderLoad, RunApp, stopAll } from './unmodified.js';

describe('register: an unmodified Koa app', function () {
  this.timeout(120_000);
  afterEach(stopAll);

  it('10 redeploys under keep-alive and new-connection load: no request fails, each redeploy answered by a new pid', async () => {
    await redeploysUnderLoad(await RunApp.start('koa.mjs'), 10);
  });

  it('--workers 2: 10 redeploys under keep-alive and new-connection load, no request fails, new pids each time', async () => {
    await redeploysUnderLoad(await RunApp.start('koa.mjs', { flags: ['--workers', '2'] }), 10, 4);
  });

  it('a new version that throws at start rolls back: the redeploy names the crash, the old pid serves on', async () => {
    const m = markers(tmpDir());
    await failedVersionRollsBack(await RunApp.start('koa.mjs', { env: m.env }), m.crash, /koa app: cannot start, the marker file says so/);
  });

  it('a new version that never listens rolls back after GRACEFUL_UPGRADE_TIMEOUT=3: "has not listened", the old pid serves on', async () => {
    const m = markers(tmpDir());
    const app = await RunApp.start('koa.mjs', { env: { ...m.env, GRACEFUL_UPGRADE_TIMEOUT: '3' } });
    await failedVersionRollsBack(app, m.noListen, /has not listened within 2 s/);
  });

  it('SIGTERM to the supervisor: a request in flight gets its whole answer, the supervisor exits 0', async () => {
    await drainsOnSigterm(await RunApp.start('koa.mjs'));
  });

  it('5 redeploys: the descriptors of the serving instance do not grow (/proc/<pid>/fd)', async () => {
    const app = await RunApp.start('koa.mjs');
    // A few requests first, so that what a first request opens (once) is there from the first count on.
    const count = async () => {
      for (let k = 0; k < 3; k++) await app.get();
      return openFds(await app.pid()).length;
    };
    const first = await count();
    const counts = [first];
    for (let i = 0; i < 5; i++) {
      const old = await app.pid();
      expect((await app.control('redeploy')).code).to.equal(0);
      await until(() => gone(old), 10_000, `pid ${old} to exit`);
      // The link to the old instance ends when it exits: the new one closes its end on the EOF, a moment later.
      counts.push(await until(async () => {
        const n = await count();
        return n <= first ? n : 0;
      }, 5_000, `descriptors back to ${first} (so far: ${counts.join(', ')})`));
    }
    expect(counts.length).to.equal(6);
  });
});
