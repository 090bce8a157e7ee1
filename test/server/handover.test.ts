/**
 * The hand-over and its take-back window, as the lifecycle rules them: a
 * take-back only inside the window, never a third instance, a Ctrl-C that
 * reaches only the old instance, and failures reported as failures.
 */
import { expect } from 'chai';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { ControlClient } from '../../src/index.js';
import { appReady, cli, endGenerations, gone, httpGet, spawnApp, tmpDir, until, type Child } from '../helpers.js';

async function request(sock: string, cmd: string): Promise<unknown> {
  const c = await ControlClient.connect(sock);
  try {
    return await c.request(cmd);
  } finally {
    c.close();
  }
}

/** exitOf: how a process we spawned ended (its own exit, not the close of a stdout it shares). */
function exitOf(child: Child): Promise<number | null> {
  if (child.proc.exitCode !== null) return Promise.resolve(child.proc.exitCode);
  return new Promise((resolve) => child.proc.once('exit', (code) => resolve(code)));
}

describe('hand-over and take-back', function () {
  this.timeout(60_000);
  let app: Child | undefined;
  let dir: string;
  let sock: string;
  let failFile: string;

  beforeEach(() => {
    dir = tmpDir();
    sock = path.join(dir, 'c.sock');
    failFile = path.join(dir, 'fail');
  });

  afterEach(async () => {
    await endGenerations(app);
    app = undefined;
  });

  function start(env: Record<string, string> = {}, options: { detached?: boolean } = {}): Promise<{ pid: number; port: number }> {
    app = spawnApp({ sock, failFile, env, ...options });
    return appReady(app);
  }

  it('a new instance that dies after the take-back window, while the old one runs its stop hooks: no take-back, the pid file is not rewritten', async () => {
    const pidFile = path.join(dir, 'app.pid');
    const { pid } = await start({ APP_TAKE_BACK_WINDOW: '200', APP_STOP_HOOK_MS: '2000', APP_PID_FILE: pidFile });
    const r = (await request(sock, 'redeploy')) as { pid: number };
    await app!.next(new RegExp(`^stopping ${pid}$`));
    expect(fs.readFileSync(pidFile, 'utf8')).to.equal(`${r.pid}\n`);
    process.kill(r.pid, 'SIGKILL');
    expect(await exitOf(app!)).to.equal(0);
    expect(app!.stdout.filter((l) => l.startsWith('takeback')), 'no take-back after the window').to.deep.equal([]);
    expect(app!.stderr.filter((l) => l.includes('serving again'))).to.deep.equal([]);
    expect(fs.readFileSync(pidFile, 'utf8'), 'the old instance did not claim the pid file back').to.equal(`${r.pid}\n`);
  });

  it('chained redeploys: a predecessor that does not answer the commit (stopped) is waited for, and takes back when the new one dies: never a third', async () => {
    const { pid, port } = await start({ APP_TAKE_BACK_WINDOW: '20000' });
    const first = request(sock, 'redeploy').catch((err: Error & { code?: string }) => err);
    const gen2 = Number((await app!.next(/^ready \d+ \d+ 2/)).split(' ')[1]);
    // New control clients reach gen2 once gen1 has handed the control socket over.
    const c = (await until(async () => {
      const client = await ControlClient.connect(sock);
      if (((await client.request('status')) as { pid: number }).pid === gen2) return client;
      client.close();
      return null;
    }, 10_000, 'a control connection to gen2'))!;
    // gen1, still in its window, cannot answer gen2's commit: gen2 waits for its exit instead.
    process.kill(pid, 'SIGSTOP');
    const second = c.request('redeploy').catch((err: Error & { code?: string }) => err);
    await until(() => app!.stderr.some((l) => l.includes(`redeploy: the instance this one replaced (pid ${pid}) did not answer a commit within`)), 10_000, 'gen2 to give up on the commit');
    await until(() => app!.stderr.some((l) => l.includes(`redeploy: waiting for the instance this one replaced (pid ${pid}) to exit first`)), 10_000, 'gen2 to wait for gen1');
    process.kill(gen2, 'SIGKILL');
    // gen2 has exited (a zombie until gen1, stopped, reaps it), so its end of the hand-off is closed.
    await until(() => {
      try {
        return fs.readFileSync(`/proc/${gen2}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
      } catch {
        return true;
      }
    }, 10_000, 'gen2 to exit');
    process.kill(pid, 'SIGCONT');
    const err = (await first) as Error & { code?: string };
    expect(err.code, err.message).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
    expect(err.message).to.include(`the new instance (pid ${gen2}) was killed by SIGKILL`);
    await second;
    c.close();
    await app!.next(new RegExp(`^takeback ${pid} from ${gen2}$`));
    for (let i = 0; i < 30; i++) expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(pid) });
    expect(app!.stderr.filter((l) => /redeploy: spawned/.test(l)), 'only gen1 ever spawned').to.have.length(1);
    expect(app!.stdout.filter((l) => / 3 \d$/.test(l) && l.startsWith('ready '))).to.deep.equal([]);
  });

  it('a redeploy asked of a new instance whose predecessor is past its take-back window runs at once, while the predecessor still drains', async () => {
    const { pid, port } = await start({ APP_TAKE_BACK_WINDOW: '100', APP_SHUTDOWN_TIMEOUT: '20000' });
    const slow = httpGet({ port, path: '/slow?ms=8000' }); // keeps gen1 draining through both redeploys
    await until(async () => ((await request(sock, 'status')) as { connections: number }).connections > 0, 10_000, 'the slow request to arrive');
    const r2 = (await request(sock, 'redeploy')) as { pid: number };
    const r3 = (await request(sock, 'redeploy')) as { pid: number };
    // gen1 committed (its window passed): gen3 did not wait for its drain, and gen1 never served again.
    expect(gone(pid), 'gen1 still drains its slow request').to.equal(false);
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(r3.pid) });
    expect(await slow).to.deep.equal({ status: 200, body: String(pid) });
    expect(app!.stdout.filter((l) => l.startsWith(`takeback ${pid}`))).to.deep.equal([]);
    await app!.next(new RegExp(`^ready ${r3.pid} \\d+ 3`));
    await until(() => gone(pid), 20_000, 'gen1 to exit');
    await until(() => gone(r2.pid), 20_000, 'gen2 to exit');
  });

  it('a terminal Ctrl-C while the old instance drains reaches only the old one: its in-flight request is answered, it exits 0, the new one serves on', async () => {
    const { pid, port } = await start({ APP_TAKE_BACK_WINDOW: '100' }, { detached: true });
    const slow = httpGet({ port, path: '/slow?ms=5000' }); // outlasts the redeploy: the old instance still drains at the Ctrl-C
    await until(async () => ((await request(sock, 'status')) as { connections: number }).connections > 0, 10_000, 'the slow request to arrive');
    const r = (await request(sock, 'redeploy')) as { pid: number };
    process.kill(-pid, 'SIGINT'); // what a terminal does: the whole foreground process group
    expect(await slow).to.deep.equal({ status: 200, body: String(pid) });
    expect(await exitOf(app!)).to.equal(0);
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(r.pid) });
    expect(gone(r.pid)).to.equal(false);
  });

  it('the pid file cannot be written by the new instance: the redeploy fails with the reason before the old one stops', async () => {
    const pidFile = path.join(dir, 'app.pid');
    const { pid, port } = await start({ APP_PID_FILE: pidFile });
    fs.rmSync(pidFile);
    fs.mkdirSync(pidFile);
    const r = await cli(sock);
    expect(r.code, r.stdout + r.stderr).to.equal(1);
    expect(r.stdout).not.to.include('is serving');
    expect(r.stderr).to.match(/^error: the new instance \(pid \d+\) exited with code 1 before it was ready; its last words: .*EISDIR/);
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(pid) });
    expect(app!.stdout.filter((l) => l.startsWith('takeback'))).to.deep.equal([]);
  });

  it('ready() in a new instance whose predecessor died meanwhile: it serves alone', async () => {
    const { pid, port } = await start();
    fs.writeFileSync(failFile, 'orphan-ready');
    // The connection that asks goes over to the new instance, which does not answer for the dead one.
    const c = await ControlClient.connect(sock);
    void c.request('redeploy').catch(() => undefined);
    const line = (await until(() => app!.stderr.find((l) => /^waiting \d+$/.test(l)), 10_000, 'the new instance to wait'))!;
    const newPid = Number(line.split(' ')[1]);
    process.kill(pid, 'SIGKILL');
    await app!.next(new RegExp(`^ready ${newPid} ${port} 2`));
    c.close();
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(newPid) });
    expect(await httpGet({ port })).to.deep.equal({ status: 200, body: String(newPid) });
    expect(gone(newPid)).to.equal(false);
  });

  it('a new instance reads no datagram before ready(): one that hangs takes none', async () => {
    const { pid } = await start({ APP_UDP: '1', APP_UPGRADE_TIMEOUT: '4000' });
    const udpPort = Number((app!.stdout.find((l) => l.startsWith('udp ')) ?? '').split(' ')[1]);
    fs.writeFileSync(failFile, 'hang');
    const pending = request(sock, 'redeploy').catch((err: Error & { code?: string }) => err);
    await until(() => app!.stderr.some((l) => l.includes('app: never becoming ready on purpose')), 10_000, 'the new instance to hang');
    const client = dgram.createSocket('udp4');
    const replies: string[] = [];
    client.on('message', (m) => replies.push(m.toString()));
    await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
    try {
      for (let i = 0; i < 100; i++) client.send(`n ${i}`, udpPort, '127.0.0.1');
      await until(() => replies.length >= 100, 10_000, 'an answer to every datagram');
      expect(new Set(replies)).to.deep.equal(new Set([String(pid)]));
    } finally {
      client.close();
    }
    expect(((await pending) as { code?: string }).code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
  });

  it('a listener whose host changed is bound afresh on the new host, not kept on the old one', async () => {
    const hostFile = path.join(dir, 'host');
    fs.writeFileSync(hostFile, '0.0.0.0');
    await start({ APP_HOST_FILE: hostFile });
    const before = (await request(sock, 'status')) as { listeners: { name: string; state: string; host: string }[] };
    expect(before.listeners[0]).to.include({ name: 'http', state: 'open', host: '0.0.0.0' });
    fs.writeFileSync(hostFile, '127.0.0.1');
    const r = (await request(sock, 'redeploy')) as { pid: number };
    await app!.next(new RegExp(`^ready ${r.pid} `));
    const after = (await request(sock, 'status')) as { pid: number; listeners: { name: string; state: string; host: string }[] };
    expect(after.pid).to.equal(r.pid);
    expect(after.listeners[0]).to.include({ name: 'http', state: 'open', host: '127.0.0.1' });
  });
});
