/**
 * What a client of the control socket hears when the server closes under a command it runs: the
 * example server and the real CLI. `telinit 0` is answered (ok, exit 0) before the halt closes the
 * control socket; a streaming command that is not persistent, ended by a redeploy or a halt, ends
 * with ERR_GRACEFUL_STREAM_ENDED and the CLI's exit code 4.
 */
import { expect } from 'chai';
import path from 'node:path';
import { cli, endGenerations, root, spawnChild, tmpDir, type Child } from '../helpers.js';

const bin = path.join(root, 'bin/graceful-restart.js');

describe('control: the server closes under a running command', function () {
  this.timeout(60_000);
  const examples: Child[] = [];
  afterEach(async () => {
    for (const e of examples.splice(0)) await endGenerations(e, /^pid (\d+)/);
  });

  async function startExample(): Promise<{ sock: string; pid: number; example: Child }> {
    const dir = tmpDir();
    const sock = path.join(dir, 'app.sock');
    const example = spawnChild(process.execPath, [path.join(root, 'dist/example/server.js')], {
      cwd: dir,
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', GRACEFUL_SOCKET: sock, LOG_FILE: path.join(dir, 'app.log') },
    });
    examples.push(example);
    const pid = Number(/^pid (\d+)/.exec(await example.next(/^pid \d+/))![1]);
    return { sock, pid, example };
  }

  it('telinit 0 through the CLI answers runlevel: 0 and exits 0; the server halts', async () => {
    const { sock, example } = await startExample();
    const r = await cli('-s', sock, 'telinit', '0');
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).to.deep.equal({ code: 0, stdout: 'runlevel: 0\n', stderr: '' });
    expect((await example.exited).code).to.equal(0);
  });

  it('telinit 0 --json prints its reply and exits 0', async () => {
    const { sock, example } = await startExample();
    const r = await cli('-s', sock, 'telinit', '0', '--json');
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).to.deep.equal({ code: 0, stdout: '{"ok":true,"result":{"runlevel":0}}\n', stderr: '' });
    expect((await example.exited).code).to.equal(0);
  });

  it('a stream ended by a redeploy says so (ERR_GRACEFUL_STREAM_ENDED) and the CLI exits 4; the redeploy exits 0', async () => {
    const { sock, pid } = await startExample();
    const plain = spawnChild(process.execPath, [bin, '-s', sock, 'requests', '50']);
    const json = spawnChild(process.execPath, [bin, '-s', sock, 'requests', '50', '--json']);
    await plain.next(/request\(s\)/);
    await json.next(/request\(s\)/);
    const redeploy = await cli(sock);
    expect(redeploy.code, redeploy.stderr).to.equal(0);
    const newPid = Number(/^done: pid (\d+) is serving$/m.exec(redeploy.stdout)![1]);
    const [p, j] = await Promise.all([plain.exited, json.exited]);
    expect(p.code, plain.stderr.join('\n')).to.equal(4);
    expect(plain.stderr).to.deep.equal([
      `error: the stream ended: pid ${pid} handed over to a new instance in a redeploy and stopped; run the command again to follow the new one`,
    ]);
    expect(plain.stdout.every((l) => l === `pid ${pid}: 0 request(s)`), plain.stdout.join('\n')).to.equal(true);
    expect(j.code, json.stderr.join('\n')).to.equal(4);
    expect(JSON.parse(json.stdout.at(-1)!)).to.deep.equal({
      ok: false,
      error: { code: 'ERR_GRACEFUL_STREAM_ENDED', message: `the stream ended: pid ${pid} handed over to a new instance in a redeploy and stopped; run the command again to follow the new one` },
    });
    expect(newPid).to.not.equal(pid);
  });

  it('a stream ended by a halt says so; the telinit 0 that asked for it is answered', async () => {
    const { sock, pid, example } = await startExample();
    const stream = spawnChild(process.execPath, [bin, '-s', sock, 'requests', '50']);
    await stream.next(/request\(s\)/);
    const r = await cli('-s', sock, 'telinit', '0');
    expect({ code: r.code, stdout: r.stdout }).to.deep.equal({ code: 0, stdout: 'runlevel: 0\n' });
    expect((await stream.exited).code).to.equal(4);
    expect(stream.stderr).to.deep.equal([`error: the stream ended: pid ${pid} halts`]);
    expect((await example.exited).code).to.equal(0);
  });
});
