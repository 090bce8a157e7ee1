/**
 * socketpath.ts: length checks, stale-file removal that never touches what is
 * not a socket, removal at close of only the file this process bound, the
 * directory rules, binding with a mode set without a path lookup after
 * bind (raced by another uid swapping links in: root only, skipped otherwise),
 * and the removal of a private directory made for socket files.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { addon } from '../../src/native.js';
import { bindSocket, checkSocketPathLength, clearStaleSocket, MAX_SOCKET_PATH_BYTES, removeSocketDir, SocketFile } from '../../src/socketpath.js';
import { openFds, spawnChild, tmpDir } from '../helpers.js';
import { distUrl, inFresh } from '../helpers/fresh.js';
import { OTHER_UID as OTHER, otherUidCase, sharedDir } from '../helpers/other-uid.js';

const isRoot = process.getuid?.() === 0;

describe('socketpath', () => {
  it('checkSocketPathLength throws ENAMETOOLONG past 107 bytes, naming the limit', () => {
    expect(() => checkSocketPathLength('a'.repeat(MAX_SOCKET_PATH_BYTES), 'x')).not.to.throw();
    expect(() => checkSocketPathLength('a'.repeat(MAX_SOCKET_PATH_BYTES + 1), 'api')).to.throw(/api: the socket path is 108 bytes long and the kernel allows 107/)
      .with.property('code', 'ENAMETOOLONG');
  });

  it('clearStaleSocket: nothing there is fine, a stale socket goes, a live one and a non-socket are refused', () => {
    const dir = tmpDir();
    const p = path.join(dir, 's');
    clearStaleSocket(p, 'api');
    const fd = bindSocket(p, 0o600, 8, 'api');
    expect(() => clearStaleSocket(p, 'api')).to.throw(`api: ${p} is in use by pid ${process.pid}: stop that process or choose another path`)
      .with.property('code', 'ERR_GRACEFUL_SOCKET_IN_USE');
    addon.close(fd);
    clearStaleSocket(p, 'api'); // stale now: removed
    expect(fs.existsSync(p)).to.equal(false);
    fs.writeFileSync(p, 'data');
    expect(() => clearStaleSocket(p, 'api')).to.throw(`api: ${p} is not a socket; refusing to replace it`).with.property('code', 'ERR_GRACEFUL_NOT_A_SOCKET');
    fs.rmSync(p);
    fs.symlinkSync('/etc/passwd', p);
    expect(() => clearStaleSocket(p, 'api')).to.throw(`api: ${p} is a symbolic link; refusing`).with.property('code', 'ERR_GRACEFUL_NOT_A_SOCKET');
    expect(fs.readlinkSync(p)).to.equal('/etc/passwd');
  });

  it('bindSocket sets the mode exactly, leaves no private directory behind, and the socket answers', async () => {
    const dir = tmpDir();
    const p = path.join(dir, 'app.sock');
    // Descriptors this test opened and left open (others' may close meanwhile: only new ones count).
    const before = new Set(openFds());
    const added = () => openFds().filter((n) => !before.has(n));
    const fd = bindSocket(p, 0o640, 8, 'api');
    expect((fs.lstatSync(p).mode & 0o7777).toString(8)).to.equal('640');
    expect(fs.readdirSync(dir)).to.deep.equal(['app.sock']);
    await new Promise<void>((resolve, reject) => net.createConnection(p, function (this: net.Socket) {
      this.once('close', () => resolve()).destroy();
    }).on('error', reject));
    addon.close(fd);
    expect(added()).to.deep.equal([]);
    // A failed bind (a directory sits at the path) closes its socket and cleans up.
    fs.rmSync(p);
    fs.mkdirSync(p);
    expect(() => bindSocket(p, 0o600, 8, 'api')).to.throw();
    expect(fs.readdirSync(dir)).to.deep.equal(['app.sock']);
    expect(added()).to.deep.equal([]);
  });

  it('bindSocket in a missing directory or below a file: the errno code, naming the directory and what to do', () => {
    const dir = tmpDir();
    const missing = path.join(dir, 'no', 'app.sock');
    expect(() => bindSocket(missing, 0o600, 8, 'controlSocket')).to.throw(
      `controlSocket: ENOENT: cannot bind ${missing}: the directory ${path.join(dir, 'no')} does not exist: create it (mkdir -p), or choose a path in one that does`,
    ).with.property('code', 'ENOENT');
    fs.writeFileSync(path.join(dir, 'file'), '');
    const below = path.join(dir, 'file', 'app.sock');
    expect(() => bindSocket(below, 0o600, 8, 'listen http')).to.throw(/^listen http: ENOTDIR: cannot bind .* is not a directory \(a part of it is a file\): choose another path$/)
      .with.property('code', 'ENOTDIR');
    expect(fs.readdirSync(dir)).to.deep.equal(['file']);
  });

  it('SocketFile.remove unlinks only the file this process bound', () => {
    const dir = tmpDir();
    const p = path.join(dir, 's');
    const fd = bindSocket(p, 0o600, 8, 'api');
    const mine = new SocketFile(p);
    addon.close(fd);
    fs.renameSync(p, `${p}.old`); // moved away (kept, so its inode number is not reused)
    const other = bindSocket(p, 0o600, 8, 'api'); // someone else's now
    mine.remove();
    expect(fs.existsSync(p)).to.equal(true);
    new SocketFile(p).remove();
    expect(fs.existsSync(p)).to.equal(false);
    addon.close(other);
  });

  it('refuses a socket directory of another user, or one writable by others without the sticky bit', function () {
    const dir = tmpDir();
    fs.chmodSync(dir, 0o777);
    expect(() => clearStaleSocket(path.join(dir, 's'), 'controlSocket')).to.throw(/without the sticky bit, so anyone could replace the socket/)
      .with.property('code', 'ERR_GRACEFUL_UNSAFE_DIRECTORY');
    if (!isRoot) this.skip(); // chown needs root
    fs.chmodSync(dir, 0o755);
    fs.chownSync(dir, OTHER, OTHER);
    expect(() => clearStaleSocket(path.join(dir, 's'), 'controlSocket')).to.throw(`controlSocket: ${dir} belongs to uid ${OTHER}, who could replace the socket at any time`)
      .with.property('code', 'ERR_GRACEFUL_UNSAFE_DIRECTORY');
  });

  for (const [what, mode, owner, allowed] of [
    ['a directory of that user', 0o755, OTHER, ['ERR_GRACEFUL_UNSAFE_DIRECTORY']],
    ['a sticky shared directory', 0o1777, 0, ['bound', 'ERR_GRACEFUL_NOT_A_SOCKET', 'EPERM', 'ENOENT']],
  ] as const) {
    it(`another uid swapping links in at the path while we bind never gets a file chmod-ed: ${what}`, async function () {
      otherUidCase(this); // the racing client runs as another uid through setuid
      const dir = sharedDir(mode);
      fs.chownSync(dir, owner, owner);
      const victim = path.join(tmpDir(), 'victim');
      fs.writeFileSync(victim, 'secret\n', { mode: 0o600 });
      fs.chmodSync(victim, 0o600);
      const p = path.join(dir, 'app.sock');
      const stopDir = sharedDir(0o755); // the racer looks for the stop file here
      const stop = path.join(stopDir, 'stop');
      // The attacker plants a link at the socket path, removes it, plants it
      // again, as fast as it can (and replaces our socket, where it may).
      const racer = spawnChild('python3', ['-c', [
        'import os, sys',
        `os.setgid(${OTHER}); os.setuid(${OTHER})`,
        `p, v, stop = ${JSON.stringify(p)}, ${JSON.stringify(victim)}, ${JSON.stringify(stop)}`,
        'print("racing", flush=True)',
        'while not os.path.exists(stop):',
        '    try:',
        '        os.unlink(p)',
        '    except OSError: pass',
        '    try:',
        '        os.symlink(v, p)',
        '    except OSError: pass',
      ].join('\n')], { cwd: '/' });
      await racer.next(/^racing$/);
      const outcomes = new Set<string>();
      for (let i = 0; i < 200; i++) {
        let fd = -1;
        try {
          clearStaleSocket(p, 'controlSocket');
          fd = bindSocket(p, 0o666, 8, 'controlSocket');
          outcomes.add('bound');
          fs.unlinkSync(p);
        } catch (err) {
          outcomes.add((err as { code?: string }).code ?? String(err));
        } finally {
          if (fd >= 0) addon.close(fd);
        }
      }
      fs.writeFileSync(stop, '');
      await Promise.race([racer.exited, new Promise((r) => setTimeout(r, 5_000).unref())]);
      racer.kill('SIGKILL');
      await racer.exited;
      expect((fs.statSync(victim).mode & 0o7777).toString(8)).to.equal('600');
      expect(fs.readFileSync(victim, 'utf8')).to.equal('secret\n');
      for (const o of outcomes) expect(allowed as readonly string[]).to.include(o);
      expect(fs.readdirSync(dir).filter((n) => n.startsWith('.g'))).to.deep.equal([]);
    });
  }

  it('removeSocketDir removes the named sockets and the directory; a name not there, a directory gone, and anything else in it are fine', () => {
    const dir = fs.mkdtempSync(path.join(tmpDir(), 'sock-'));
    const fd = bindSocket(path.join(dir, 'a.sock'), 0o600, 1, 'api');
    addon.close(fd);
    removeSocketDir(dir, ['a.sock', 'missing.sock']);
    expect(fs.existsSync(dir)).to.equal(false);
    removeSocketDir(dir, ['a.sock']); // already gone
    const full = fs.mkdtempSync(path.join(tmpDir(), 'sock-'));
    fs.mkdirSync(path.join(full, 'sub'));
    fs.writeFileSync(path.join(full, 'sub', 'file'), 'x');
    fs.writeFileSync(path.join(full, 'other'), 'x');
    removeSocketDir(full, ['a.sock']);
    expect(fs.existsSync(full)).to.equal(false);
  });

  it('bindSocket and removeSocketDir of a directory holding only its sockets load nothing for a recursive walk (internal/fs/rimraf), in a fresh process', () => {
    const program = `
      const fs = await import('node:fs');
      const path = await import('node:path');
      const os = await import('node:os');
      const { bindSocket, removeSocketDir } = await import(${JSON.stringify(distUrl('src/socketpath.js'))});
      const { addon } = await import(${JSON.stringify(distUrl('src/native.js'))});
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graceful-test-'));
      addon.close(bindSocket(path.join(dir, 'a.sock'), 0o600, 1, 'api'));
      removeSocketDir(dir, ['a.sock']);
      console.log(JSON.stringify({ gone: !fs.existsSync(dir), rimraf: process.moduleLoadList.includes('NativeModule internal/fs/rimraf') }));`;
    expect(inFresh(program)).to.deep.equal({ gone: true, rimraf: false });
  });
});
