/**
 * The PM2 recipe (example/ecosystem.config.cjs), under a real PM2 installed
 * from the npm registry into a temporary directory, with a PM2_HOME of its
 * own that its own `pm2 kill` ends. PM2 keeps one pid (the supervisor's)
 * across a redeploy, and `pm2 stop` (treekill: false) reaches the app as one
 * SIGINT (PM2 signals the supervisor only): a request in flight is answered
 * and the app exits 0.
 * Skipped, with the reason, when the registry cannot be reached.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { ControlClient } from '../../src/control/client.js';
import { freePort, gone, httpGet, tmpDir, until } from '../helpers.js';
import { testAppProject } from './namespace.js';
import { bin, example, run } from './project.js';

const PM2 = 'pm2@7';

interface Pm2Process {
  name: string;
  pid: number;
  pm2_env: { status: string; restart_time: number; exit_code?: number; _tree_pids?: number[] };
}

describe('recipes: PM2', function () {
  this.timeout(180_000);
  let pm2: { bin: string; env: NodeJS.ProcessEnv } | undefined;
  afterEach(async () => {
    if (pm2) await run(pm2.bin, ['kill'], { env: pm2.env, timeout: 30_000 });
    pm2 = undefined;
  });

  async function status(sock: string): Promise<{ pid: number; ready: boolean; connections?: number }> {
    const c = await ControlClient.connect(sock, 5_000);
    try {
      return await c.request('status', [], undefined, 5_000) as { pid: number; ready: boolean; connections?: number };
    } finally {
      c.close();
    }
  }

  it('one pid across a redeploy; pm2 stop drains a request in flight and the app exits 0', async function () {
    const tmp = tmpDir();
    const install = await run('npm', ['install', '--prefix', path.join(tmp, 'pm2'), '--no-audit', '--no-fund', '--ignore-scripts', PM2], { timeout: 150_000 });
    if (install.code !== 0) {
      console.log(`      skipped: npm install ${PM2} failed (is the registry reachable?): ${install.stderr.trim().split('\n').pop()}`);
      this.skip();
    }
    const project = await testAppProject();
    fs.copyFileSync(example('ecosystem.config.cjs'), path.join(project, 'ecosystem.config.cjs'));
    const port = await freePort();
    pm2 = {
      bin: path.join(tmp, 'pm2/node_modules/.bin/pm2'),
      env: { ...process.env, PM2_HOME: path.join(tmp, 'home'), APP_PORT: String(port), APP_SOCKET: path.join(project, 'app.sock') },
    };
    const pm2run = (...args: string[]) => run(pm2!.bin, args, { cwd: project, env: pm2!.env, timeout: 60_000 });
    const jlist = async (): Promise<Pm2Process> => {
      const r = await pm2run('jlist');
      const app = (JSON.parse(r.stdout) as Pm2Process[]).find((p) => p.name === 'app');
      if (!app) throw new Error(`pm2 jlist has no app: ${r.stdout}`);
      return app;
    };

    const start = await pm2run('start', 'ecosystem.config.cjs');
    expect(start.code, start.stdout + start.stderr).to.equal(0);
    const sock = path.join(project, 'sup.sock');
    const first = (await until(() => status(sock).then((s) => (s.ready ? s : null), () => null), 20_000, 'the app under PM2 to be ready'))!;
    const supervisor = (await jlist()).pid;
    expect(supervisor).to.not.equal(first.pid);
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(first.pid) });

    const redeploy = await run(bin(project), ['sup.sock'], { cwd: project });
    expect(redeploy.code, redeploy.stdout + redeploy.stderr).to.equal(0);
    const second = (await until(() => status(sock).then((s) => (s.ready && s.pid !== first.pid ? s : null)), 10_000, 'the new generation'))!;
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(second.pid) });
    await until(() => gone(first.pid), 15_000, 'the old generation to exit');
    const after = await jlist();
    expect(after.pid, 'PM2 watches the same pid').to.equal(supervisor);
    expect(after.pm2_env).to.include({ status: 'online', restart_time: 0 });

    const slow = httpGet({ port, path: '/slow?ms=1500' });
    await until(() => status(sock).then((s) => (s.connections ?? 0) >= 1), 10_000, 'the slow request to be in flight');
    const stop = await pm2run('stop', 'app');
    expect(stop.code, stop.stdout + stop.stderr).to.equal(0);
    expect(await slow, 'the request in flight is answered').to.deep.equal({ status: 200, body: String(second.pid) });
    await until(() => gone(second.pid) && gone(supervisor), 15_000, 'the app and the supervisor to exit');
    const stopped = await jlist();
    expect(stopped.pm2_env.status).to.equal('stopped');
    // Without treekill: false, PM2 signals every process of the tree, the app too: it gets SIGINT
    // from PM2 and again from the supervisor, and a second SIGINT forces the exit (130) mid-request.
    expect(stopped.pm2_env._tree_pids ?? [], 'PM2 signalled the supervisor only').to.not.include(second.pid);
    const errLog = fs.readFileSync(path.join(pm2.env.PM2_HOME!, 'logs/app-error.log'), 'utf8');
    expect(errLog.match(/SIGINT: forwarding/g), 'one SIGINT, forwarded once').to.have.length(1);
    expect(errLog).to.match(new RegExp(`the current generation \\(pid ${second.pid}\\) exited with code 0`));
  });
});
