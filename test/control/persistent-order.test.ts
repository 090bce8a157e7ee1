/**
 * A persistent streaming command across redeploys with a slow reader (the
 * client pauses its socket while each redeploy runs, then resumes): output
 * the old instance had queued and not yet written to the kernel is never
 * written after the new instance's marker line; it is dropped and counted in
 * the marker instead.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { execFileSync } from 'node:child_process';
import { ControlClient } from '../../src/index.js';
import { endGenerations, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

/**
 * peerBlocked: the kernel holds all it will take from the instance writing to raw
 * (ss(8): the peer socket's write memory is at its send buffer), so the instance
 * queues what it writes next in its own process.
 */
function peerBlocked(raw: net.Socket): boolean {
  const fd = (raw as unknown as { _handle: { fd: number } })._handle.fd;
  const inode = /socket:\[(\d+)\]/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`))![1];
  const peer = new RegExp(`\\* ${inode}\\s+skmem:\\([^)]*\\bt(\\d+),tb(\\d+)`).exec(execFileSync('ss', ['-xnmH']).toString());
  return peer !== null && Number(peer[1]) >= Number(peer[2]);
}

describe('persistent stream order across redeploys', function () {
  this.timeout(90_000);
  let app: Child | undefined;
  afterEach(async () => {
    await endGenerations(app);
    app = undefined;
  });

  it('a slow reader through 3 redeploys: after each marker line, no line of an older pid', async () => {
    const sock = path.join(tmpDir(), 'app.sock');
    // The old instance outlives its successor's ready by the take-back window: its queue could drain after the marker.
    app = spawnFixture('app', [], { env: { ...process.env, APP_SOCKET: sock, APP_TAKE_BACK_WINDOW: '3000' } });
    const pids = [Number((await app.next(/^ready /)).split(' ')[1])];
    const raw = net.connect({ path: sock, readableHighWaterMark: 256 } as net.NetConnectOpts);
    raw.write('tail 1\n');
    const got: string[] = [];
    readline.createInterface({ input: raw }).on('line', (l) => got.push(l));
    await until(() => got.length > 10, 10_000, 'the stream to start');
    for (let g = 0; g < 3; g++) {
      raw.pause(); // the slow reader: the kernel's buffers fill, the instance queues the rest
      let slow: NodeJS.Timeout | undefined;
      await until(() => peerBlocked(raw), 10_000, 'the kernel\'s buffers to fill'); // from here the old instance queues lines
      const admin = await ControlClient.connect(sock, 10_000);
      const redeployed = admin.request('redeploy') as Promise<{ pid: number }>;
      await app.next(/^ready /); // the new instance is ready, the old one alive: the reader reads, slowly
      slow = setInterval(() => (raw.isPaused() ? raw.resume() : raw.pause()), 15);
      const done = await redeployed;
      clearInterval(slow);
      raw.resume();
      admin.close();
      pids.push(done.pid);
      await until(() => got.some((l) => l.endsWith(` ${done.pid}`) && l.startsWith('tail ')), 20_000, `the stream to go on from pid ${done.pid}`);
    }
    raw.destroy();
    const markers = got.filter((l) => l.startsWith('-- '));
    expect(markers.map((l) => Number(/pid (\d+)/.exec(l)![1]))).to.deep.equal(pids.slice(1));
    let serving = 0;
    const late: string[] = [];
    for (const l of got) {
      const m = /^-- now served by pid (\d+)/.exec(l);
      if (m) serving = pids.indexOf(Number(m[1]));
      else if (l.startsWith('tail ') && pids.indexOf(Number(l.split(' ')[2])) < serving) late.push(l);
    }
    expect(late.length, `lines of an older pid after its successor's marker: ${late.slice(0, 3).join(' | ')}`).to.equal(0);
    expect(got.filter((l) => !/^(tail \d+ \d+|-- now served by pid .*)$/.test(l)), 'lines neither of the stream nor a marker').to.deep.equal([]);
    for (const m of markers) expect(m).to.match(/^-- now served by pid \d+( \(\d+ line\(s\) of pid \d+ dropped: the client read too slowly\))?$/);
  });

  it('a slow reader and a redeploy that fails: the stream goes on with the old instance, its dropped lines counted, no other pid', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'app.sock');
    const failFile = path.join(dir, 'fail');
    fs.writeFileSync(failFile, 'throw');
    app = spawnFixture('app', [], { env: { ...process.env, APP_SOCKET: sock, APP_FAIL_FILE: failFile } });
    const pid = Number((await app.next(/^ready /)).split(' ')[1]);
    const raw = net.connect({ path: sock, readableHighWaterMark: 256 } as net.NetConnectOpts);
    raw.write('tail 1\n');
    const got: string[] = [];
    readline.createInterface({ input: raw }).on('line', (l) => got.push(l));
    await until(() => got.length > 10, 10_000, 'the stream to start');
    raw.pause();
    await until(() => peerBlocked(raw), 10_000, 'the kernel\'s buffers to fill'); // the slow reader: from here the instance queues lines
    const admin = await ControlClient.connect(sock, 10_000);
    const err = await admin.request('redeploy').then(() => null, (e: Error & { code?: string }) => e);
    admin.close();
    expect(err?.code).to.equal('ERR_GRACEFUL_REDEPLOY_FAILED');
    raw.resume();
    const seen = got.length;
    await until(() => got.length > seen + 200, 20_000, 'the stream to go on');
    raw.destroy();
    expect(got.filter((l) => !/^(tail \d+ \d+|-- now served by pid .*)$/.test(l))).to.deep.equal([]);
    expect(got.filter((l) => l.startsWith('tail ') && Number(l.split(' ')[2]) !== pid)).to.deep.equal([]);
    const markers = got.filter((l) => l.startsWith('-- '));
    expect(markers).to.have.length(1); // the old instance serves its stream again, after the lines it dropped
    for (const m of markers) {
      expect(m).to.match(new RegExp(`^-- now served by pid ${pid} \\(\\d+ line\\(s\\) of pid ${pid} dropped: the client read too slowly\\)$`));
    }
  });
});
