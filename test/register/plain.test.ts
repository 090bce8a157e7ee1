/** An unmodified node:http application (test/fixtures/unmodified/plain.mjs) under graceful-restart run. */
import { redeploysUnderLoad, RunApp, stopAll } from './unmodified.js';

describe('register: an unmodified node:http app', function () {
  this.timeout(120_000);
  afterEach(stopAll);

  it('10 redeploys under keep-alive and new-connection load: no request fails, each redeploy answered by a new pid', async () => {
    await redeploysUnderLoad(await RunApp.start('plain.mjs'), 10);
  });

  it('--workers 2: 10 redeploys under keep-alive and new-connection load, no request fails, new pids each time', async () => {
    await redeploysUnderLoad(await RunApp.start('plain.mjs', { flags: ['--workers', '2'] }), 10, 4);
  });
});
