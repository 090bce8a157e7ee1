/**
 * Persistent commands (after gone/daemon/ctrl): a streaming command
 * registered with `persistent: true` goes on across redeploys on the same
 * client connection, with one marker line naming the pid that now serves,
 * instead of an EOF; in plain mode through the CLI, and in JSON mode.
 */
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { ControlClient } from '../../src/index.js';
import { endGenerations, root, spawnChild, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

/** lines collects the lines a readable stream delivers. */
function lines(input: NodeJS.ReadableStream): string[] {
  const got: string[] = [];
  readline.createInterface({ input }).on('line', (l) => got.push(l));
  return got;
}

describe('persistent control commands across redeploys', function () {
  this.timeout(90_000);
  let app: Child | undefined;
  afterEach(async () => {
    await endGenerations(app);
    app = undefined;
  });

  it('a persistent stream goes on through 3 redeploys, with one marker line per new pid (the CLI, a plain-mode client, a JSON client)', async () => {
    const sock = path.join(tmpDir(), 'app.sock');
    app = spawnFixture('app', [], { env: { ...process.env, APP_SOCKET: sock } });
    const pids = [Number((await app.next(/^ready /)).split(' ')[1])];

    // The CLI streams in plain mode; a raw socket streams in JSON mode, with an id.
    const cli = spawn(process.execPath, [path.join(root, 'bin/graceful-restart.js'), '-s', sock, 'tail', '20'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const text = lines(cli.stdout);
    const cliEnded = new Promise<number | null>((resolve) => cli.once('exit', (code) => resolve(code)));
    const raw = net.connect(sock);
    raw.write(`${JSON.stringify({ cmd: 'tail', args: ['20'], id: 7 })}\n`);
    const json = lines(raw);
    let closed = false;
    raw.on('close', () => (closed = true));
    const nc = net.connect(sock); // a person in nc -U: plain mode
    nc.write('tail 20\n');
    const plain = lines(nc);
    await until(() => text.length > 2 && json.length > 2 && plain.length > 2, 10_000, 'the streams to start');

    for (let g = 0; g < 3; g++) {
      const admin = await ControlClient.connect(sock, 10_000);
      const done = await admin.request('redeploy') as { pid: number };
      admin.close();
      pids.push(done.pid);
      await until(() => text.some((l) => l.startsWith(`tail 2 ${done.pid}`)) && json.some((l) => l.includes(`"line":"tail 2 ${done.pid}"`)),
        20_000, `both streams to go on from pid ${done.pid}`);
    }
    await until(() => plain.some((l) => l.startsWith(`tail 2 ${pids[3]}`)), 20_000, 'the plain stream to go on');
    const cliLines = [...text];
    const plainLines = [...plain];
    nc.destroy();
    const jsonLines = json.map((l) => JSON.parse(l) as { id: number; event: string; pid?: number; line?: string });
    cli.kill('SIGINT'); // the client leaves
    raw.destroy();
    await cliEnded;

    // Plain: tail lines of each pid in order, one marker before each new pid, never ok or an error.
    const markers = cliLines.filter((l) => l.startsWith('-- '));
    expect(markers).to.deep.equal(pids.slice(1).map((p) => `-- now served by pid ${p}`));
    const servers = cliLines.filter((l) => l.startsWith('tail ') || l.startsWith('-- ')).map((l) => Number(l.split(' ').pop()));
    expect([...new Set(servers)]).to.deep.equal(pids);
    for (const p of pids) {
      const ns = cliLines.filter((l) => l.endsWith(` ${p}`) && l.startsWith('tail ')).map((l) => Number(l.split(' ')[1]));
      expect(ns.slice(0, 2), `pid ${p}`).to.deep.equal([1, 2]);
    }
    expect(cliLines.filter((l) => !/^(tail \d+ \d+|-- now served by pid \d+)$/.test(l))).to.deep.equal([]);

    expect(plainLines.filter((l) => l.startsWith('-- '))).to.deep.equal(pids.slice(1).map((p) => `-- now served by pid ${p}`));
    expect(plainLines.filter((l) => !/^(tail \d+ \d+|-- now served by pid \d+)$/.test(l))).to.deep.equal([]);

    // JSON: every line keeps the id; one served event per new pid.
    expect(jsonLines.every((l) => l.id === 7)).to.equal(true);
    expect(jsonLines.filter((l) => l.event === 'served').map((l) => l.pid)).to.deep.equal(pids.slice(1));
    expect(jsonLines.filter((l) => l.event !== 'served' && l.event !== 'output')).to.deep.equal([]);
    expect(closed).to.equal(true); // closed by us, not before
  });

  it('a redeploy that fails leaves the stream with the old instance: no marker, nothing doubled', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'app.sock');
    const failFile = path.join(dir, 'fail');
    fs.writeFileSync(failFile, 'exit');
    app = spawnFixture('app', [], { env: { ...process.env, APP_SOCKET: sock, APP_FAIL_FILE: failFile, APP_UPGRADE_TIMEOUT: '5000' } });
    const pid = Number((await app.next(/^ready /)).split(' ')[1]);
    const nc = net.connect(sock);
    nc.write('tail 20\n');
    const plain = lines(nc);
    await until(() => plain.length > 2, 10_000, 'the stream to start');
    const admin = await ControlClient.connect(sock, 10_000);
    const err = await admin.request('redeploy').catch((e: Error) => e);
    admin.close();
    expect(err).to.include({ code: 'ERR_GRACEFUL_REDEPLOY_FAILED' });
    const after = plain.length;
    await until(() => plain.length > after + 3, 10_000, 'the stream to go on');
    nc.destroy();
    const ns = plain.map((l) => /^tail (\d+) (\d+)$/.exec(l)).map((m) => [Number(m?.[1]), Number(m?.[2])]);
    expect(ns.every(([, p]) => p === pid)).to.equal(true);
    // Lines written while the hand-off was under way were dropped, never doubled: n only grows.
    expect(ns.every(([n], i) => i === 0 || n! > ns[i - 1]![0]!)).to.equal(true);
  });

  it('through the supervisor\'s socket: the stream it relays goes on across a redeploy, and health probes the listeners', async () => {
    const dir = tmpDir();
    const sup = path.join(dir, 'sup.sock');
    const bin = path.join(root, 'bin/graceful-restart.js');
    app = spawnChild(process.execPath, [bin, 'run', '-s', sup, '--', process.execPath, path.join(root, 'dist/test/fixtures/app.js')],
      { env: { ...process.env, APP_SOCKET: path.join(dir, 'app.sock') } });
    const first = Number((await app.next(/^ready /)).split(' ')[1]);
    await until(() => fs.existsSync(sup), 10_000, 'the supervisor socket');
    const nc = net.connect(sup);
    nc.write('tail 20\n');
    const plain = lines(nc);
    await until(() => plain.length > 2, 10_000, 'the stream to start');
    const admin = await ControlClient.connect(sup, 10_000);
    const done = await admin.request('redeploy') as { pid: number };
    admin.close();
    await until(() => plain.some((l) => l === `tail 2 ${done.pid}`), 20_000, 'the relayed stream to go on');
    nc.destroy();
    expect(plain.filter((l) => !/^tail \d+ \d+$/.test(l))).to.deep.equal([`-- now served by pid ${done.pid}`]);
    expect(plain[0]).to.equal(`tail 1 ${first}`);
    const health = await new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile(process.execPath, [bin, 'health', '--http-path', '/', sup], (err, stdout) => resolve({ code: err ? Number(err.code) : 0, stdout }));
    });
    expect(health.code).to.equal(0);
    expect(health.stdout).to.match(/\nhealthy: listener http \(http 127\.0\.0\.1:\d+\) answered 200 to GET \/\n$/);
  });

  it('persistent must be a boolean', async () => {
    const { CommandRegistry } = await import('../../src/control/commands.js');
    const r = new CommandRegistry();
    expect(() => r.add('x', { usage: 'x', persistent: 'yes' as unknown as boolean, run: () => null }))
      .to.throw('command: "x": persistent must be true or false, got "yes"').with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
  });
});
