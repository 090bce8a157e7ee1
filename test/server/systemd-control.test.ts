/**
 * The control socket from systemd socket activation: systemd-socket-activate
 * binds the control socket's path and passes it with FileDescriptorName=
 * control; the server serves on it instead of binding, hands it on at each
 * redeploy, and never removes systemd's file. A passed socket that is not a
 * UNIX one is refused with a clear error.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ControlClient } from '../../src/index.js';
import { fixtures, spawnChild, tmpDir, until, type Child, freePort } from '../helpers.js';

interface Status { pid: number; generation: number }

async function status(sock: string): Promise<Status> {
  const client = await ControlClient.connect(sock, 10_000);
  try {
    return await client.request('status') as Status;
  } finally {
    client.close();
  }
}


describe('the control socket from systemd socket activation', function () {
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

  it('serves on the socket systemd passed as FileDescriptorName=control, across redeploys, and leaves its file', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'app.sock');
    const child = spawnChild('systemd-socket-activate', ['-l', sock, '--fdname=control', '-E', `APP_SOCKET=${sock}`,
      process.execPath, path.join(fixtures, 'app.js')]);
    started.push(child);
    await until(() => child.stderr.some((l) => l.includes('Listening on')), 10_000, 'systemd-socket-activate to listen');
    const ino = fs.statSync(sock).ino;
    // The first connection starts the program, which answers it on the passed socket.
    const first = await status(sock);
    expect(first.generation).to.equal(1);
    expect(await child.next(/^ready /)).to.match(new RegExp(`^ready ${first.pid} `));
    let pid = first.pid;
    for (const generation of [2, 3]) {
      const client = await ControlClient.connect(sock, 10_000);
      const done = await client.request('redeploy') as { pid: number };
      client.close();
      expect(done.pid).to.not.equal(pid);
      await child.next(new RegExp(`^ready ${done.pid} \\d+ ${generation}`));
      const now = await status(sock);
      expect(now).to.include({ pid: done.pid, generation });
      // The old instance exits without removing systemd's socket file.
      const old = pid;
      await until(() => { try { process.kill(old, 0); return false; } catch { return true; } }, 20_000, 'the old instance to exit');
      expect(fs.statSync(sock).ino).to.equal(ino);
      pid = done.pid;
    }
    expect(child.stderr.filter((l) => /bound|unclaimed|closed/.test(l))).to.deep.equal([]);
    // A halt leaves the file too: it is systemd's.
    process.kill(pid, 'SIGTERM');
    await until(() => { try { process.kill(pid, 0); return false; } catch { return true; } }, 20_000, 'the instance to halt');
    expect(fs.statSync(sock).ino).to.equal(ino);
  });

  it('refuses a passed control socket that is not a UNIX socket, naming the fix', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const child = spawnChild('systemd-socket-activate', ['-l', `127.0.0.1:${port}`, '--fdname=control', '-E', `APP_SOCKET=${path.join(dir, 'app.sock')}`,
      process.execPath, path.join(fixtures, 'app.js')]);
    started.push(child);
    await until(() => child.stderr.some((l) => l.includes('Listening on')), 10_000, 'systemd-socket-activate to listen');
    const probe = net.connect(port, '127.0.0.1');
    probe.on('error', () => undefined);
    const { code } = await child.exited;
    probe.destroy();
    expect(code).to.not.equal(0);
    const text = child.stderr.join('\n');
    expect(text).to.include('ERR_GRACEFUL_INVALID_ARGUMENT');
    expect(text).to.include(`controlSocket: the socket systemd passed as the control socket listens on 127.0.0.1 port ${port}, `);
    expect(text).to.include('not on a UNIX path: give the control socket a ListenStream= with a path (ListenStream=/run/app/app.sock)');
    expect(fs.existsSync(path.join(dir, 'app.sock'))).to.equal(false);
  });

  it('controlFdName must be a FileDescriptorName=', async () => {
    const { GracefulServer } = await import('../../src/index.js');
    for (const bad of ['', 'a:b', 'x'.repeat(256), 'tab\t', 3]) {
      expect(() => new GracefulServer({ controlSocket: 'x.sock', controlFdName: bad as string, signals: false }), String(bad))
        .to.throw(/^GracefulServer: controlFdName must be a FileDescriptorName= \(1 to 255 printable characters, no ':'\), got /)
        .with.property('code', 'ERR_GRACEFUL_INVALID_ARGUMENT');
    }
  });
});
