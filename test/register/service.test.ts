/**
 * The register's GracefulServer in real processes across real redeploys: a
 * new instance's server hears 'listening' once (with the address it will
 * have) though it accepts only from ready(); --log sends the program's output
 * to a file that `reopen` re-opens after a rotation.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { REGISTER_URL } from '../../src/cli/run-env.js';
import { cli, freePort, httpGet, root, spawnChild, tmpDir, until, type Child } from '../helpers.js';

const register = fileURLToPath(REGISTER_URL);
const app = path.join(root, 'test/fixtures/unmodified/count.mjs');

describe('register/service', function () {
  this.timeout(60_000);
  let child: Child | undefined;
  let sock = '';
  afterEach(async () => {
    if (sock) await cli('-s', sock, 'telinit', '0');
    if (child) await child.exited;
    child = undefined;
    sock = '';
  });

  it('a new instance: \'listening\' once, address() its port before it accepts, callbacks once; the old one drains', async () => {
    const dir = tmpDir();
    sock = path.join(dir, 'app.sock');
    const port = await freePort();
    child = spawnChild(process.execPath, ['--import', register, app], { env: { ...process.env, PORT: String(port), GRACEFUL_CONTROL_SOCKET: sock, GRACEFUL_SETTLE: '50' } });
    await child.next(/listening/);
    await until(async () => (await cli('health', sock)).code === 0, 10_000, 'healthy');
    for (let i = 0; i < 3; i++) {
      const before = (await httpGet({ port })).body.split(' ')[0];
      const r = await cli(sock);
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      const [pid, count, seen] = (await httpGet({ port })).body.trim().split(' ');
      expect(pid).to.not.equal(before);
      expect(count, 'listening events in the new instance').to.equal('1');
      expect(seen).to.equal(String(port));
    }
    const lines = child.stdout.filter((l) => /^count: pid \d+ listening on/.test(l));
    expect(lines).to.have.length(4);
    for (const l of lines) expect(l).to.match(new RegExp(`listening on ${port}$`));
  });

  it('--log: standard output goes to the file in every generation; reopen after a rename starts a new file', async () => {
    const dir = tmpDir();
    sock = path.join(dir, 'app.sock');
    const log = path.join(dir, 'out.log');
    const port = await freePort();
    child = spawnChild(process.execPath, ['--import', register, app], { env: { ...process.env, PORT: String(port), GRACEFUL_CONTROL_SOCKET: sock, GRACEFUL_LOG_FILE: log, GRACEFUL_SETTLE: '50' } });
    await until(async () => (await cli('health', sock)).code === 0, 10_000, 'healthy');
    await httpGet({ port, path: '/one' });
    expect((await cli(sock)).code).to.equal(0);
    await httpGet({ port, path: '/two' });
    await until(() => /request \/two/.test(fs.readFileSync(log, 'utf8')), 5_000, '/two logged');
    fs.renameSync(log, `${log}.1`);
    const r = await cli('-s', sock, 'reopen');
    expect(r.code, r.stderr).to.equal(0);
    await httpGet({ port, path: '/three' });
    await until(() => fs.existsSync(log) && /request \/three/.test(fs.readFileSync(log, 'utf8')), 5_000, '/three in the new file');
    const old = fs.readFileSync(`${log}.1`, 'utf8');
    expect(old).to.match(/request \/one/).and.to.match(/request \/two/).and.not.match(/request \/three/);
    expect(child.stdout.filter((l) => l.startsWith('request'))).to.deep.equal([]);
  });

  it('--config: the file\'s options (placeholders from the environment) under the flags; an unknown key stops the program with ERR_GRACEFUL_CONFIG', async () => {
    const dir = tmpDir();
    const config = path.join(dir, 'graceful.json');
    fs.writeFileSync(config, JSON.stringify({ controlSocket: '{$DIR}/from-config.sock', pidFile: '{$DIR}/app.pid' }));
    const port = await freePort();
    sock = path.join(dir, 'from-config.sock');
    child = spawnChild(process.execPath, ['--import', register, app], { env: { ...process.env, PORT: String(port), DIR: dir, GRACEFUL_CONFIG: config, GRACEFUL_SETTLE: '50' } });
    await until(async () => (await cli('health', sock)).code === 0, 10_000, 'healthy on the socket the file names');
    expect(fs.readFileSync(path.join(dir, 'app.pid'), 'utf8').trim()).to.equal(String(child.pid));
    await cli('-s', sock, 'telinit', '0');
    await child.exited;
    sock = '';
    fs.writeFileSync(config, JSON.stringify({ wrokers: 2 }));
    child = spawnChild(process.execPath, ['--import', register, app], { env: { ...process.env, PORT: String(port), GRACEFUL_CONFIG: config } });
    expect((await child.exited).code).to.not.equal(0);
    expect(child.stderr.join('\n')).to.match(/ERR_GRACEFUL_CONFIG|unknown option "wrokers"/);
  });
});
