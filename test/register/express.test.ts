/** An unmodified Express application (test/fixtures/unmodified/express.mjs, and express.cjs) under graceful-restart run. */
import { expect } from 'chai';
import path from 'node:path';
import { cli, freePort, httpGet, spawnChild, tmpDir, until } from '../helpers.js';
import { drainsOnSigterm, failedVersionRollsBack, markers, pidIn, redeploysUnderLoad, REGISTER, RunApp, stopAll, UNMODIFIED } from './unmodified.js';

describe('register: an unmodified Express app', function () {
  this.timeout(120_000);
  let app: RunApp;
  afterEach(stopAll);

  it('10 redeploys under keep-alive and new-connection load: no request fails, each redeploy answered by a new pid', async () => {
    app = await RunApp.start('express.mjs');
    await redeploysUnderLoad(app, 10);
  });

  it('--workers 2: 10 redeploys under keep-alive and new-connection load, no request fails, new pids each time', async () => {
    app = await RunApp.start('express.mjs', { flags: ['--workers', '2'] });
    await redeploysUnderLoad(app, 10, 4);
  });

  it('a new version that throws at start rolls back: the redeploy names the crash, the old pid serves on', async () => {
    const m = markers(tmpDir());
    app = await RunApp.start('express.mjs', { env: m.env });
    await failedVersionRollsBack(app, m.crash, /express app: cannot start, the marker file says so/);
  });

  it('a new version that never listens rolls back after GRACEFUL_UPGRADE_TIMEOUT=3: "has not listened", the old pid serves on', async () => {
    const m = markers(tmpDir());
    app = await RunApp.start('express.mjs', { env: { ...m.env, GRACEFUL_UPGRADE_TIMEOUT: '3' } });
    await failedVersionRollsBack(app, m.noListen, /has not listened within 2 s/);
  });

  it('SIGTERM to the supervisor: a request in flight gets its whole answer, the supervisor exits 0', async () => {
    app = await RunApp.start('express.mjs');
    await drainsOnSigterm(app);
  });

  it('--ready message: the new version is ready when it says process.send(\'ready\'); 3 redeploys under load', async () => {
    app = await RunApp.start('express.mjs', { flags: ['--ready', 'message'], env: { APP_READY_MESSAGE: '1' } });
    await redeploysUnderLoad(app, 3);
  });

  it('--ready message, a new version that never says process.send(\'ready\'): the redeploy fails naming it, the old pid serves on', async () => {
    const m = markers(tmpDir());
    app = await RunApp.start('express.mjs', { flags: ['--ready', 'message'], env: { ...m.env, APP_READY_MESSAGE: '1', GRACEFUL_UPGRADE_TIMEOUT: '3' } });
    await failedVersionRollsBack(app, m.noListen, /has not sent process\.send\('ready'\) within 2 s/);
  });

  it('CommonJS: node -r graceful-restart/register app.cjs redeploys through the supervisor\'s control socket; a version that throws rolls back', async () => {
    const dir = tmpDir();
    const m = markers(dir);
    app = await RunApp.start('express.cjs', {
      flags: ['--no-register'],
      command: [process.execPath, '-r', REGISTER, path.join(UNMODIFIED, 'express.cjs')],
      env: { ...m.env, GRACEFUL_CONTROL_SOCKET: path.join(dir, 'app.sock'), GRACEFUL_UPGRADE_TIMEOUT: '5' },
    });
    const first = await app.pid();
    const r = await app.control('redeploy');
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    const second = await app.pid();
    expect(second).to.not.equal(first);
    await failedVersionRollsBack(app, m.crash, /express cjs app: cannot start, the marker file says so/);
  });
});

describe('register: node -r with no supervisor', function () {
  this.timeout(60_000);
  it('SIGHUP redeploys a CommonJS Express app started as node -r <register> app.cjs', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const child = spawnChild(process.execPath, ['-r', REGISTER, path.join(UNMODIFIED, 'express.cjs')], {
      env: { ...process.env, PORT: String(port), GRACEFUL_CONTROL_SOCKET: path.join(dir, 'app.sock') },
    });
    try {
      await child.next(/listening on/);
      const first = pidIn((await httpGet({ port })).body);
      await until(async () => (await cli('health', path.join(dir, 'app.sock'))).code === 0, 20_000, 'ready');
      process.kill(first, 'SIGHUP');
      const second = await until(async () => {
        const pid = pidIn((await httpGet({ port })).body);
        return pid !== first ? pid : 0;
      }, 20_000, 'a new pid');
      expect(second).to.be.a('number');
      process.kill(second, 'SIGTERM');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
