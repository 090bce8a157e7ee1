/** An unmodified Fastify application (test/fixtures/unmodified/fastify.mjs: listen({ port, host })) under graceful-restart run. */
import { tmpDir } from '../helpers.js';
import { drainsOnSigterm, failedVersionRollsBack, markers, redeploysUnderLoad, RunApp, stopAll } from './unmodified.js';

describe('register: an unmodified Fastify app', function () {
  this.timeout(120_000);
  afterEach(stopAll);

  it('10 redeploys under keep-alive and new-connection load: no request fails, each redeploy answered by a new pid', async () => {
    await redeploysUnderLoad(await RunApp.start('fastify.mjs'), 10);
  });

  it('--workers 2: 10 redeploys under keep-alive and new-connection load, no request fails, new pids each time', async () => {
    await redeploysUnderLoad(await RunApp.start('fastify.mjs', { flags: ['--workers', '2'] }), 10, 4);
  });

  it('listen({ port }), on Fastify\'s default host (localhost): 3 redeploys under load, each answered by a new pid', async () => {
    await redeploysUnderLoad(await RunApp.start('fastify.mjs', { env: { APP_DEFAULT_HOST: '1' } }), 3);
  });

  it('a new version that throws at start rolls back: the redeploy names the crash, the old pid serves on', async () => {
    const m = markers(tmpDir());
    await failedVersionRollsBack(await RunApp.start('fastify.mjs', { env: m.env }), m.crash, /fastify app: cannot start, the marker file says so/);
  });

  it('a new version that never listens rolls back after GRACEFUL_UPGRADE_TIMEOUT=3: "has not listened", the old pid serves on', async () => {
    const m = markers(tmpDir());
    const app = await RunApp.start('fastify.mjs', { env: { ...m.env, GRACEFUL_UPGRADE_TIMEOUT: '3' } });
    await failedVersionRollsBack(app, m.noListen, /has not listened within 2 s/);
  });

  it('SIGTERM to the supervisor: a request in flight gets its whole answer, the supervisor exits 0', async () => {
    await drainsOnSigterm(await RunApp.start('fastify.mjs'));
  });

  it('--ready http:/health: 3 redeploys under load; a new version that never answers /health rolls back naming it', async () => {
    const m = markers(tmpDir());
    const app = await RunApp.start('fastify.mjs', { flags: ['--ready', 'http:/health'], env: { ...m.env, GRACEFUL_UPGRADE_TIMEOUT: '3' } });
    await redeploysUnderLoad(app, 3);
    await failedVersionRollsBack(app, m.noListen, /has not listened and answered 2xx on \/health within 2 s/);
  });
});
