/**
 * The slow cases of the control-socket attacks, apart so that they can run in
 * parallel with the rest: ten thousand refused connections of another uid
 * (the open-file limit was reached at this scale), and a thousand clients at
 * once. The server serves HTTP throughout, and its descriptors come back to
 * the baseline.
 */
import { expect } from 'chai';
import path from 'node:path';
import { endGenerations, httpGet, openFds, spawnFixture, until, type Child } from '../helpers.js';
import { otherUidCase, sharedDir } from '../helpers/other-uid.js';
import { OTHER_UID, attack, connectRaw, probe, rss } from './attackers.js';

describe('control socket under load from hostile clients', function () {
  this.timeout(120_000);
  let app: Child | undefined;
  let sock: string;
  let pid: number;
  let port: number;
  let baseline: number;
  let rss0: number;

  beforeEach(async () => {
    const dir = sharedDir(0o755); // the other uid reaches the socket
    sock = path.join(dir, 'app.sock');
    app = spawnFixture('app', [], { env: { ...process.env, APP_SOCKET: sock, APP_SOCKET_MODE: '666' } });
    const ready = (await app.next(/^ready /)).split(' ');
    pid = Number(ready[1]);
    port = Number(ready[2]);
    baseline = openFds(pid).length;
    rss0 = rss(pid);
  });

  afterEach(async () => {
    await endGenerations(app);
    app = undefined;
  });

  async function holds(): Promise<void> {
    expect((await httpGet({ port })).body).to.equal(String(pid));
    expect(rss(pid), 'RSS').to.be.below(rss0 + 48 * 1024 * 1024);
    await until(() => openFds(pid).length === baseline, 10_000, `the descriptors back to ${baseline}`);
    expect(await probe(sock)).to.equal(pid);
  }

  it('10,000 refused connections of another uid, while HTTP is asked throughout', async function () {
    otherUidCase(this);
    let httpOk = 0;
    let stop = false;
    const asking = (async () => {
      while (!stop) {
        expect((await httpGet({ port })).body).to.equal(String(pid));
        httpOk++;
        expect(openFds(pid).length, 'descriptors during the attack').to.be.below(baseline + 40);
      }
    })();
    try {
      const seen = await attack('cycle', sock, 10_000, OTHER_UID);
      expect(Object.values(seen)).to.deep.equal([10_000]);
    } finally {
      stop = true;
      await asking;
    }
    expect(httpOk).to.be.above(10);
    await holds();
  });

  it('1,000 clients at once, each `oneshot status`: each answered or refused, none leaked', async () => {
    // A full backlog refuses a UNIX connect with EAGAIN: a client tries again, as any would.
    const connect = async (): Promise<Awaited<ReturnType<typeof connectRaw>>> => {
      for (let i = 0; ; i++) {
        try {
          return await connectRaw(sock);
        } catch (err) {
          if ((err as { code?: string }).code !== 'EAGAIN' || i > 500) throw err;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    const clients = await Promise.all(Array.from({ length: 1_000 }, async () => {
      const c = await connect();
      c.socket.write('oneshot status\n');
      return c;
    }));
    await until(() => clients.every((c) => c.closed()), 60_000, 'every client closed by the server');
    const answered = clients.filter((c) => c.lines[0] === `pid: ${pid}` && c.lines.at(-1) === 'ok').length;
    const refused = clients.filter((c) => c.lines.join() === 'error: too many connections (64): try again later' || c.lines.length === 0).length;
    expect(answered + refused).to.equal(1_000);
    expect(answered).to.be.at.least(64);
    await holds();
  });
});
