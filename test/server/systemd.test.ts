/** systemd: socket activation with systemd-socket-activate, sd_notify messages across a redeploy, the pid file. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { fixtures, httpGet, notifyReader, spawnChild, tmpDir, until, type Child, freePort } from '../helpers.js';
import { post } from '../load.js';


describe('systemd', function () {
  this.timeout(60_000);
  const started: Child[] = [];
  afterEach(async () => {
    for (const c of started.splice(0)) {
      for (const line of c.stdout) {
        const m = /^ready (\d+)/.exec(line);
        if (m) {
          try {
            process.kill(Number(m[1]), 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
      c.kill('SIGKILL');
      await c.exited;
    }
  });

  it('serves on a socket passed by systemd-socket-activate (LISTEN_FDS, LISTEN_FDNAMES)', async () => {
    const port = await freePort();
    // APP_PORT is deliberately different: the named passed socket wins over binding.
    const child = spawnChild('systemd-socket-activate', ['-l', `127.0.0.1:${port}`, '--fdname=http', '-E', 'APP_PORT=0',
      process.execPath, path.join(fixtures, 'app.js')]);
    started.push(child);
    await until(() => child.stderr.some((l) => l.includes('Listening on')), 10_000, 'systemd-socket-activate to listen');
    // It starts the program on the first connection, which must be answered by it.
    const first = await httpGet({ port });
    const ready = await child.next(/^ready /);
    const pid = Number(ready.split(' ')[1]);
    expect(first).to.deep.equal({ status: 200, body: String(pid) });
    expect(Number(ready.split(' ')[2])).to.equal(port);
    // The passed socket goes on to the next generation like any other.
    const res = await post(port, '/redeploy');
    expect(res).to.include({ ok: true });
    await child.next(new RegExp(`^ready ${res.pid} ${port} 2`));
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(res.pid) });
  });

  it('keeps a socket passed by systemd across every redeploy, though the bind options name another port', async () => {
    const [port, other] = [await freePort(), await freePort()];
    const child = spawnChild('systemd-socket-activate', ['-l', `127.0.0.1:${port}`, '--fdname=http', '-E', `APP_PORT=${other}`,
      process.execPath, path.join(fixtures, 'app.js')]);
    started.push(child);
    await until(() => child.stderr.some((l) => l.includes('Listening on')), 10_000, 'systemd-socket-activate to listen');
    const first = await httpGet({ port });
    expect(first.body).to.equal((await child.next(/^ready /)).split(' ')[1]);
    for (const generation of [2, 3]) {
      const res = await post(port, '/redeploy');
      expect(res, JSON.stringify(res)).to.include({ ok: true });
      await child.next(new RegExp(`^ready ${res.pid} ${port} ${generation}`));
      expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(res.pid) });
    }
    expect(child.stderr.filter((l) => l.includes('bound elsewhere'))).to.deep.equal([]);
  });

  it('tells systemd MAINPID + READY=1, then RELOADING=1, the new MAINPID before the old one drains, and READY=1 across a redeploy; the pid file follows', async () => {
    const dir = tmpDir();
    const pidFile = path.join(dir, 'app.pid');
    const listener = await notifyReader(dir);
    started.push(listener.child);
    const notifySock = listener.path;
    const app = spawnChild(process.execPath, [path.join(fixtures, 'app.js')], {
      env: { ...process.env, NOTIFY_SOCKET: notifySock, APP_PID_FILE: pidFile },
    });
    started.push(app);
    const pid = Number((await app.next(/^ready /)).split(' ')[1]);
    const port = Number((app.stdout.find((l) => l.startsWith('ready ')) ?? '').split(' ')[2]);
    expect(await listener.next()).to.equal(`MAINPID=${pid};READY=1`);
    expect(fs.readFileSync(pidFile, 'utf8')).to.equal(`${pid}\n`);

    const res = await post(port, '/redeploy');
    expect(res).to.include({ ok: true });
    expect(await listener.next()).to.match(/^RELOADING=1;MONOTONIC_USEC=\d+$/);
    expect(await listener.next()).to.equal(`MAINPID=${res.pid}`);
    expect(await listener.next()).to.equal(`MAINPID=${res.pid};READY=1`);
    await app.next(new RegExp(`^ready ${res.pid} `));
    expect(fs.readFileSync(pidFile, 'utf8')).to.equal(`${res.pid}\n`);
    // The old instance exits without touching the pid file, and says nothing more.
    await until(() => { try { process.kill(pid, 0); return false; } catch { return true; } }, 20_000, 'the old instance to exit');
    expect(fs.readFileSync(pidFile, 'utf8')).to.equal(`${res.pid}\n`);

    // A halt (SIGTERM) says STOPPING=1 and removes the pid file.
    process.kill(res.pid as number, 'SIGTERM');
    expect(await listener.next()).to.equal('STOPPING=1');
    await until(() => !fs.existsSync(pidFile), 20_000, 'the pid file to go');
  });
});
