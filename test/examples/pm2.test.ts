/**
 * The PM2 recipe (example/ecosystem.config.cjs), under a real PM2 installed
 * from the npm registry into a temporary directory, with a PM2_HOME of its
 * own that its own `pm2 kill` ends.
 * - PM2 keeps one pid (the supervisor's) across a redeploy; `pm2 ls` measures
 *   the application's memory (the supervisor names its pid to PM2), and
 *   `graceful-restart -s sup.sock status` shows the application's pid and rss.
 * - `pm2 trigger app redeploy` redeploys with none of 200 sequential requests
 *   failed; `pm2 reload`, typed by habit, says in PM2's error log what to
 *   type instead.
 * - Information goes to PM2's out log, only warnings to its error log.
 * - `pm2 stop` (treekill: false) reaches the app as one SIGINT (PM2 signals
 *   the supervisor only): a request in flight is answered and the app exits 0.
 * Skipped, with the reason, when the registry cannot be reached.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { ControlClient } from '../../src/control/client.js';
import { rssOf } from '../../src/supervisor/procfs.js';
import { freePort, gone, httpGet, tmpDir, until } from '../helpers.js';
import { testAppProject } from './namespace.js';
import { bin, example, run } from './project.js';

const PM2 = 'pm2@7';

interface Pm2Process {
  name: string;
  pid: number;
  monit?: { memory: number; cpu: number };
  pm2_env: { status: string; restart_time: number; exit_code?: number; _tree_pids?: number[]; axm_options?: { pid?: number }; axm_actions?: { action_name: string }[] };
}

describe('recipes: PM2', function () {
  this.timeout(240_000);
  let pm2: { bin: string; env: NodeJS.ProcessEnv } | undefined;
  afterEach(async () => {
    if (pm2) await run(pm2.bin, ['kill'], { env: pm2.env, timeout: 30_000 });
    pm2 = undefined;
  });

  async function status(sock: string): Promise<{ pid: number; ready: boolean; connections?: number; rss?: number }> {
    const c = await ControlClient.connect(sock, 5_000);
    try {
      return await c.request('status', [], undefined, 5_000) as { pid: number; ready: boolean; connections?: number; rss?: number };
    } finally {
      c.close();
    }
  }

  /** load sends requests one after another, each on a new connection, until stop() is called and at least `least` were sent. */
  function load(port: number, least: number): { stop(): Promise<{ sent: number; failed: string[] }> } {
    let stopping = false;
    const failed: string[] = [];
    let sent = 0;
    const done = (async () => {
      while (!stopping || sent < least) {
        sent++;
        await httpGet({ port }).then((r) => {
          if (r.status !== 200) failed.push(`status ${r.status}`);
        }, (err: Error) => failed.push(err.message));
      }
    })();
    return { stop: async () => {
      stopping = true;
      await done;
      return { sent, failed };
    } };
  }

  it('pm2 trigger app redeploy: one pid, no request failed; pm2 ls measures the app; logs by level; pm2 reload says what to type; pm2 stop drains', async function () {
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
    const logs = { out: path.join(pm2.env.PM2_HOME!, 'logs/app-out.log'), err: path.join(pm2.env.PM2_HOME!, 'logs/app-error.log') };
    const read = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
    const pm2run = (...args: string[]) => run(pm2!.bin, args, { cwd: project, env: pm2!.env, timeout: 90_000 });
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

    // pm2 ls: the pid column is the supervisor's, memory and CPU are the application's.
    const listed = (await until(async () => {
      const p = await jlist();
      return p.pm2_env.axm_options?.pid === first.pid && (p.monit?.memory ?? 0) > 0 ? p : null;
    }, 10_000, 'PM2 to monitor the application\'s pid'))!;
    const appRss = rssOf(first.pid)!;
    expect(listed.monit!.memory, 'pm2 ls memory is the application\'s').to.be.within(appRss * 0.7, appRss * 1.3);
    expect(listed.pm2_env.axm_actions?.map((a) => a.action_name)).to.include('redeploy');
    const st = await run(bin(project), ['-s', 'sup.sock', 'status'], { cwd: project });
    expect(st.code, st.stdout + st.stderr).to.equal(0);
    expect(st.stdout).to.match(new RegExp(`^pid: ${first.pid}$`, 'm'));
    expect(st.stdout).to.match(/^rss: \d+\.\d MiB$/m);
    expect(st.stdout).to.match(new RegExp(`^supervisor: ${supervisor}$`, 'm'));

    // pm2 trigger app redeploy, under 200 sequential requests: none fails.
    const requests = load(port, 200);
    const trigger = await pm2run('trigger', 'app', 'redeploy');
    const { sent, failed } = await requests.stop();
    expect(trigger.code, trigger.stdout + trigger.stderr).to.equal(0);
    expect(trigger.stdout).to.match(/\[app:0:default\]=\{"ok":true,"pid":\d+/);
    expect(failed, `${failed.length} of ${sent} requests failed`).to.deep.equal([]);
    expect(sent).to.be.at.least(200);
    const second = (await until(() => status(sock).then((s) => (s.ready && s.pid !== first.pid ? s : null)), 10_000, 'the new generation'))!;
    expect(trigger.stdout).to.include(`"ok":true,"pid":${second.pid}`);
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(second.pid) });
    await until(() => gone(first.pid), 15_000, 'the old generation to exit');
    const after = (await until(async () => {
      const p = await jlist();
      return p.pm2_env.axm_options?.pid === second.pid ? p : null;
    }, 10_000, 'PM2 to monitor the new generation'))!;
    expect(after.pid, 'PM2 watches the same pid').to.equal(supervisor);
    expect(after.pm2_env).to.include({ status: 'online', restart_time: 0 });

    // Information in the out log, nothing of the library in the error log.
    expect(read(logs.out)).to.match(new RegExp(`supervisor: pid ${second.pid} is the current generation`));
    expect(read(logs.out)).to.match(/graceful\[\d+\]: redeploy: done/);
    expect(read(logs.err).split('\n').filter((l) => /graceful\[\d+\]/.test(l)), 'the error log after a redeploy').to.deep.equal([]);

    // pm2 reload, typed by habit: a restart in fork mode; the error log says what to type instead.
    const reload = await pm2run('reload', 'app');
    expect(reload.code, reload.stdout + reload.stderr).to.equal(0);
    await until(() => read(logs.err).includes('type `pm2 trigger app redeploy`'), 15_000, 'the hint in the error log');
    expect(read(logs.err)).to.match(/supervisor: pm2 reload: PM2's fork mode has no reload, it stops the application and starts it again/);
    await until(() => gone(supervisor) && gone(second.pid), 15_000, 'the reloaded supervisor and app to exit');
    const third = (await until(() => status(sock).then((s) => (s.ready ? s : null), () => null), 20_000, 'the app under PM2 to be ready again'))!;
    const supervisor2 = (await jlist()).pid;

    // pm2 stop: one SIGINT reaches the app; a request in flight is answered.
    const slow = httpGet({ port, path: '/slow?ms=1500' });
    await until(() => status(sock).then((s) => (s.connections ?? 0) >= 1), 10_000, 'the slow request to be in flight');
    const outBefore = read(logs.out).length;
    const stop = await pm2run('stop', 'app');
    expect(stop.code, stop.stdout + stop.stderr).to.equal(0);
    expect(await slow, 'the request in flight is answered').to.deep.equal({ status: 200, body: String(third.pid) });
    await until(() => gone(third.pid) && gone(supervisor2), 15_000, 'the app and the supervisor to exit');
    const stopped = await jlist();
    expect(stopped.pm2_env.status).to.equal('stopped');
    // Without treekill: false, PM2 signals every process of the tree, the app too: it gets SIGINT
    // from PM2 and again from the supervisor, and a second SIGINT forces the exit (130) mid-request.
    expect(stopped.pm2_env._tree_pids ?? [], 'PM2 signalled the supervisor only').to.not.include(third.pid);
    const outLog = read(logs.out).slice(outBefore);
    expect(outLog.match(/SIGINT: forwarding/g), 'one SIGINT, forwarded once').to.have.length(1);
    expect(outLog).to.match(new RegExp(`the current generation \\(pid ${third.pid}\\) exited with code 0`));
    expect(read(logs.err).match(/pm2 reload: /g), 'a stop is no reload').to.have.length(1);
  });
});
