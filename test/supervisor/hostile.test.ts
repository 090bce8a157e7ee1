/**
 * The supervisor's control socket (graceful-restart run -s) against a
 * hostile local user and a careless client: it is a container's PID 1 in
 * many setups, so a crash there ends everything. After each attack the
 * supervisor answers probes, its descriptors are back to the baseline, its
 * RSS stayed under a ceiling and the application it runs serves HTTP. The
 * other uid is 65534 (nobody), through setuid: root only, skipped otherwise.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { ControlClient } from '../../src/control/client.js';
import { fixtures, httpGet, openFds, root, spawnChild, until, type Child } from '../helpers.js';
import { otherUidCase, sharedDir } from '../helpers/other-uid.js';
import { OTHER_UID, attack, connectRaw, graceful, rss } from '../control/attackers.js';

const cli = path.join(root, 'bin/graceful-restart.js');

describe('supervisor control socket under attack', function () {
  this.timeout(40_000);
  let sup: Child | undefined;
  let sock: string;
  let appPid: number;
  let port: number;
  let baseline: number;
  let rss0: number;

  /** supStatus asks the supervisor's status, as a probe does. */
  async function supStatus(): Promise<{ supervisor: number; pid: number; ready: boolean }> {
    const c = await ControlClient.connect(sock, 5_000);
    try {
      return (await c.request('status', [], undefined, 5_000)) as { supervisor: number; pid: number; ready: boolean };
    } finally {
      c.close();
    }
  }

  beforeEach(async () => {
    const dir = sharedDir(0o755); // the other uid reaches the socket (and is refused by its uid check)
    sock = path.join(dir, 'sup.sock');
    sup = spawnChild(process.execPath, [cli, 'run', '-s', sock, '--', process.execPath, path.join(fixtures, 'app.js')],
      { env: { ...process.env, APP_SOCKET: path.join(dir, 'app.sock') } });
    const ready = (await sup.next(/^ready /)).split(' ');
    appPid = Number(ready[1]);
    port = Number(ready[2]);
    await until(() => supStatus().then((s) => s.ready && s.pid === appPid, () => false), 10_000, 'the supervisor to call the app ready');
    // The probes above close asynchronously on the supervisor's side: the
    // baseline is the count once it held still for 10 polls in a row.
    let last = -1;
    let still = 0;
    await until(() => {
      const n = openFds(sup!.pid).length;
      still = n === last ? still + 1 : 0;
      last = n;
      return still >= 10;
    }, 10_000, 'a steady descriptor count');
    baseline = last;
    rss0 = rss(sup.pid);
  });

  afterEach(async () => {
    for (const pid of [appPid, sup?.pid]) {
      try {
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await sup?.exited;
    sup = undefined;
  });

  async function holds(): Promise<void> {
    expect(sup!.proc.exitCode, sup!.stderr.join('\n')).to.equal(null);
    expect((await httpGet({ port })).body).to.equal(String(appPid));
    expect(rss(sup!.pid), 'RSS').to.be.below(rss0 + 48 * 1024 * 1024);
    await until(() => openFds(sup!.pid).length === baseline, 10_000, `the supervisor's descriptors back to ${baseline}`).catch((e) => { console.log(fs.readdirSync(`/proc/${sup!.pid}/fd`).map((f) => `${f}:${fs.readlinkSync(`/proc/${sup!.pid}/fd/${f}`)}`).join(" ")); throw e; });
    expect(await supStatus()).to.include({ supervisor: sup!.pid, pid: appPid, ready: true });
    await until(() => openFds(sup!.pid).length === baseline, 10_000, `the supervisor's descriptors back to ${baseline} after a probe`);
  }

  it('a refused uid that resets its connections, then cycles 500 times: no crash, every refusal coded, no leak', async function () {
    otherUidCase(this);
    fs.chmodSync(sock, 0o666);
    await attack('rst', sock, 200, OTHER_UID);
    await holds();
    const seen = await attack('cycle', sock, 500, OTHER_UID);
    expect(Object.keys(seen).map((k) => (JSON.parse(k) as { error: { code: string } }).error.code)).to.deep.equal(['ERR_GRACEFUL_PERMISSION_DENIED']);
    expect(Object.values(seen)).to.deep.equal([500]);
    await holds();
  });

  it('every slot held: probes still answer, the client past the last slot resets without harm', async () => {
    const held = await Promise.all(Array.from({ length: 64 }, () => connectRaw(sock)));
    expect(await supStatus()).to.include({ pid: appPid });
    expect(await graceful('health', sock)).to.include({ code: 0 });
    held.push(...await Promise.all(Array.from({ length: 4 }, () => connectRaw(sock)))); // the probe slots too
    await attack('rst', sock, 100, 0);
    const seen = await attack('cycle', sock, 10, 0);
    expect(Object.keys(seen).map((k) => (JSON.parse(k) as { error: { code: string } }).error.code)).to.deep.equal(['ERR_GRACEFUL_TOO_MANY_CONNECTIONS']);
    for (const h of held) h.socket.destroy();
    await holds();
  });

  it('a client that pipelines megabytes of commands and never reads is dropped, with a logged reason', async () => {
    const c = await connectRaw(sock);
    c.socket.pause();
    c.socket.write('status\n'.repeat(300_000));
    await until(() => c.closed(), 20_000, 'the supervisor to drop the client');
    expect(sup!.stderr.join('\n')).to.match(/control: closing the connection of pid \d+ \(uid 0\): the client read none of its output for 10000 ms: dropping it/);
    await holds();
  });
});
