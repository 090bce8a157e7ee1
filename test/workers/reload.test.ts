/**
 * `reload` with real workers: every worker is replaced by one running the
 * program as it is on disk now, the primary (its pid, its listeners) stays,
 * and pooled keep-alive clients sending all along see no failed request.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { REGISTER_URL } from '../../src/cli/run-env.js';
import { cli, freePort, spawnChild, tmpDir, until, type Child } from '../helpers.js';

const program = (version: string) => `import http from 'node:http';
http.createServer((req, res) => res.end(\`\${process.pid} ${version}\`)).listen(Number(process.env.PORT), '127.0.0.1');
`;

describe('workers: reload', function () {
  this.timeout(90_000);
  let child: Child | undefined;
  let sock = '';
  afterEach(async () => {
    if (sock) await cli('-s', sock, 'telinit', '0');
    await child?.exited;
    child = undefined;
    sock = '';
  });

  it('replaces every worker by the code on disk, keeps the primary, and no pooled keep-alive request fails', async () => {
    const dir = tmpDir();
    const app = path.join(dir, 'app.mjs');
    fs.writeFileSync(app, program('v1'));
    sock = path.join(dir, 'app.sock');
    const port = await freePort();
    child = spawnChild(process.execPath, ['--import', fileURLToPath(REGISTER_URL), app],
      { env: { ...process.env, PORT: String(port), GRACEFUL_WORKERS: '2', GRACEFUL_CONTROL_SOCKET: sock, GRACEFUL_SETTLE: '50' } });
    await until(async () => (await cli('health', sock)).code === 0, 20_000, 'healthy');
    const status = async () => JSON.parse((await cli('-s', sock, '--json', 'status')).stdout).result as { pid: number; workers: { pid: number }[] };
    const first = await status();

    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const answers: string[] = [];
    let failed = 0;
    let running = true;
    const get = () => new Promise<void>((resolve) => {
      http.get({ port, host: '127.0.0.1', agent }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => { body += d.toString(); }).on('end', () => { answers.push(body); resolve(); });
      }).on('error', () => { failed++; resolve(); });
    });
    const loops = Array.from({ length: 8 }, async () => { while (running) await get(); });
    try {
      for (const version of ['v2', 'v3']) {
        fs.writeFileSync(app, program(version));
        const r = await cli('-s', sock, '--json', 'reload');
        expect(r.code, r.stdout + r.stderr).to.equal(0);
        expect(JSON.parse(r.stdout).result).to.deep.equal({ workers: 2, reloaded: 2 });
        const now = await status();
        expect(now.pid, 'the primary stays').to.equal(first.pid);
        for (const w of now.workers) expect(first.workers.map((x) => x.pid)).to.not.include(w.pid);
        const seen = answers.length;
        await until(() => answers.slice(seen).some((a) => a.endsWith(version)), 10_000, `an answer of ${version}`);
      }
    } finally {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    }
    expect(failed).to.equal(0);
    expect(answers.length).to.be.above(50);
  });

  it('without workers: reload is refused with what to use instead', async () => {
    const dir = tmpDir();
    const app = path.join(dir, 'app.mjs');
    fs.writeFileSync(app, program('v1'));
    sock = path.join(dir, 'app.sock');
    child = spawnChild(process.execPath, ['--import', fileURLToPath(REGISTER_URL), app],
      { env: { ...process.env, PORT: String(await freePort()), GRACEFUL_CONTROL_SOCKET: sock, GRACEFUL_SETTLE: '50' } });
    await until(async () => (await cli('health', sock)).code === 0, 20_000, 'healthy');
    const r = await cli('-s', sock, 'reload');
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/reload replaces the workers alone: use redeploy/);
  });
});
