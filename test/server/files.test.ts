/**
 * Files and sockets in shared directories, against another local user (uid
 * 65534, through setuid: root only, skipped otherwise): a log file or pid file
 * path where that user planted a link to a root-only file, at start and at
 * `reopen`, and a process of that user listening at the control socket path
 * before the server starts. Nothing outside the intended files is written or
 * chmod-ed, and the CLI does not talk to the impostor.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { ControlClient, resolveUid } from '../../src/control/client.js';
import { Files } from '../../src/server/files.js';
import { Registry } from '../../src/server/registry.js';
import { endGenerations, spawnChild, spawnFixture, tmpDir, type Child } from '../helpers.js';
import { graceful } from '../control/attackers.js';
import { OTHER_UID as OTHER, otherUidCase, sharedDir } from '../helpers/other-uid.js';


describe('files and sockets in shared directories', function () {
  this.timeout(30_000);
  let app: Child | undefined;
  let shared: string;
  let victim: string;

  before(function () {
    if (process.getuid?.() !== 0) this.skip(); // files and clients of another uid need root
  });

  beforeEach(() => {
    shared = sharedDir(0o1777); // as /tmp
    victim = path.join(tmpDir(), 'victim');
    fs.writeFileSync(victim, 'secret\n', { mode: 0o600 });
    fs.chmodSync(victim, 0o600);
  });

  afterEach(async () => {
    await endGenerations(app);
    app = undefined;
  });

  function victimUnchanged(): void {
    const st = fs.statSync(victim);
    expect({ mode: (st.mode & 0o7777).toString(8), text: fs.readFileSync(victim, 'utf8') }).to.deep.equal({ mode: '600', text: 'secret\n' });
  }

  /** plant makes a link at p to the victim, owned by the other uid. */
  function plant(p: string): void {
    fs.symlinkSync(victim, p);
    fs.lchownSync(p, OTHER, OTHER);
  }

  it('a log file linked by another user to a root-only file: refused at start', async () => {
    const log = path.join(shared, 'app.log');
    plant(log);
    app = spawnFixture('app', [], { env: { ...process.env, APP_LOG: log } });
    const { code } = await app.exited;
    expect(code).to.equal(1);
    expect(app.stderr.join('\n')).to.include(`UnsafeFileError: file: ${log} is a symbolic link of uid ${OTHER} in ${shared}, a directory other users can write to`);
    victimUnchanged();
  });

  it('a log file replaced by a link of another user after rotation: reopen refuses, and goes on with the old file', async () => {
    const log = path.join(shared, 'app.log');
    const sock = path.join(tmpDir(), 'app.sock');
    app = spawnFixture('app', [], { env: { ...process.env, APP_LOG: log, APP_LOG_LINES: '1', APP_SOCKET: sock } });
    await app.next(/^ready /);
    fs.renameSync(log, `${log}.1`); // logrotate moved it
    plant(log);
    const c = await ControlClient.connect(sock);
    const err = await c.request('reopen').then(() => null, (e: Error & { code?: string }) => e);
    c.close();
    expect(err?.code).to.equal('ERR_GRACEFUL_UNSAFE_FILE');
    expect(err?.message).to.include(`reopen: ${log} is a symbolic link of uid ${OTHER}`);
    victimUnchanged();
    expect(fs.readFileSync(`${log}.1`, 'utf8')).to.match(/^gen 1 pid \d+ line 0\n$/);
  });

  it('a pid file linked by another user to a root-only file: refused, the file untouched', async () => {
    const pidFile = path.join(shared, 'app.pid');
    plant(pidFile);
    app = spawnFixture('app', [], { env: { ...process.env, APP_PID_FILE: pidFile } });
    const { code } = await app.exited;
    expect(code).to.equal(1);
    expect(app.stderr.join('\n')).to.include(`pidFile: ${pidFile} is a symbolic link of uid ${OTHER}`);
    victimUnchanged();
    expect(fs.readlinkSync(pidFile)).to.equal(victim);
  });

  it('another user listening at the control socket path: the server refuses to start, the CLI refuses to talk to it', async function () {
    otherUidCase(this);
    const sock = path.join(shared, 'app.sock');
    // The impostor answers any line as a healthy server would, and a redeploy as done.
    const impostor = spawnChild('python3', ['-c', [
      'import os, socket, threading',
      `os.setgid(${OTHER}); os.setuid(${OTHER})`,
      's = socket.socket(socket.AF_UNIX)',
      `s.bind(${JSON.stringify(sock)}); os.chmod(${JSON.stringify(sock)}, 0o666); s.listen(8)`,
      'print("listening", flush=True)',
      'while True:',
      '    c, _ = s.accept()',
      '    try:',
      '        if c.recv(4096): c.sendall(b\'{"ok":true,"result":{"pid":4242,"ready":true,"runlevel":3}}\\n\')',
      '    except OSError: pass',
      '    c.close()',
    ].join('\n')], { cwd: '/' });
    try {
      await impostor.next(/^listening$/);
      app = spawnFixture('app', [], { env: { ...process.env, APP_SOCKET: sock } });
      expect((await app.exited).code).to.equal(1);
      expect(app.stderr.join('\n')).to.include(`controlSocket: ${sock} is in use by pid ${impostor.pid}`);
      const health = await graceful('health', sock);
      expect(health.code).to.equal(3);
      expect(health.stderr).to.equal(`error: cannot use ${sock}: ERR_GRACEFUL_UNTRUSTED_SERVER: ${sock} is answered by pid ${impostor.pid} of uid ${OTHER}, not by root or this user (uid 0): ` +
        'refusing to talk to it; if that server is meant to run as that user, allow it (--server-uid in the CLI, serverUids in ControlClient.connect)\n');
      const redeploy = await graceful(sock);
      expect(redeploy.code).to.equal(3);
      expect(redeploy.stderr).to.include('ERR_GRACEFUL_UNTRUSTED_SERVER');
      expect(redeploy.stdout).to.equal('');
      // Allowed by name, it is talked to.
      expect(await graceful('--server-uid', String(OTHER), 'health', sock)).to.include({ code: 0, stdout: 'healthy: pid 4242 ready in runlevel 3\n' });
      expect(resolveUid('root')).to.equal(0);
      const bad = await graceful('--server-uid', 'no-such-user-here', 'health', sock);
      expect(bad).to.include({ code: 2, stderr: 'error: --server-uid: serverUids: no user "no-such-user-here" in /etc/passwd: give a uid or a user name\n' });
    } finally {
      impostor.kill('SIGKILL');
      await impostor.exited;
    }
  });
});

describe('Files', () => {
  it('a file inherited, then registered after a reopen, opens its path: the inherited description may be the rotated file', async () => {
    const dir = tmpDir();
    const log = path.join(dir, 'app.log');
    const registry = new Registry();
    registry.inherit([{ fd: fs.openSync(log, 'a'), meta: { name: 'log', kind: 'file', path: log } }]);
    const files = new Files(registry, () => undefined);
    fs.renameSync(log, `${log}.1`); // logrotate, then a reopen before the application registered the file
    expect(await files.reopen()).to.deep.equal([]);
    const file = files.file('log', log, {});
    await new Promise<void>((resolve, reject) => file.write('after\n', (err) => (err ? reject(err) : resolve())));
    expect(fs.readFileSync(log, 'utf8')).to.equal('after\n');
    expect(fs.readFileSync(`${log}.1`, 'utf8')).to.equal('');
    file.destroy();
  });

  it('without a reopen, the inherited description is the one written to', async () => {
    const dir = tmpDir();
    const log = path.join(dir, 'app.log');
    const registry = new Registry();
    registry.inherit([{ fd: fs.openSync(log, 'a'), meta: { name: 'log', kind: 'file', path: log } }]);
    const file = new Files(registry, () => undefined).file('log', log, {});
    fs.renameSync(log, `${log}.1`);
    await new Promise<void>((resolve, reject) => file.write('before\n', (err) => (err ? reject(err) : resolve())));
    expect(fs.readFileSync(`${log}.1`, 'utf8')).to.equal('before\n');
    file.destroy();
  });
});
