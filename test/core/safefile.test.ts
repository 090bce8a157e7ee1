/** safefile.ts: files in directories other users may write to (the rules of protected_symlinks/protected_regular). */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { checkDirectory, checkPath, openFile, openFlags, removeFile, writeFileAtomic } from '../../src/safefile.js';
import { fdCount, fdFlags, O_CLOEXEC, tmpDir } from '../helpers.js';
import { distUrl, inFresh } from '../helpers/fresh.js';

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;

describe('safefile', () => {
  let before: number;
  beforeEach(() => {
    before = fdCount();
  });

  it('openFlags turns fs flags into open(2) flags, and refuses unknown ones with a Usage TypeError', () => {
    const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND } = fs.constants;
    expect(openFlags('r')).to.equal(O_RDONLY);
    expect(openFlags('w')).to.equal(O_TRUNC | O_CREAT | O_WRONLY);
    expect(openFlags('wx+')).to.equal(O_TRUNC | O_CREAT | O_RDWR | O_EXCL);
    expect(openFlags('a')).to.equal(O_APPEND | O_CREAT | O_WRONLY);
    expect(openFlags(O_RDWR)).to.equal(O_RDWR);
    expect(() => openFlags('rw')).to.throw(TypeError, 'Usage: openFile(path, flags, mode): unknown flags "rw"');
  });

  it('checkDirectory: our own private directory is fine, a missing one is left to the open', () => {
    const dir = tmpDir();
    fs.chmodSync(dir, 0o700);
    expect(checkDirectory(path.join(dir, 'f'), 'api')).to.deep.equal({ dir, shared: false, owner: process.getuid!() });
    expect(checkDirectory(path.join(dir, 'missing', 'f'), 'api')).to.equal(null);
  });

  it('checkDirectory refuses a directory others may write to without the sticky bit', () => {
    const dir = tmpDir();
    fs.chmodSync(dir, 0o777);
    expect(() => checkDirectory(path.join(dir, 'x.pid'), 'writePidFile', 'the pid file')).to.throw(
      `writePidFile: ${dir} is writable by other users (mode 0777) without the sticky bit, so anyone could replace the pid file: ` +
        'use a directory only this user can write (e.g. mode 0700), or set the sticky bit',
    ).with.property('code', 'ERR_GRACEFUL_UNSAFE_DIRECTORY');
    fs.chmodSync(dir, 0o1777);
    expect(checkDirectory(path.join(dir, 'x.pid'), 'api')).to.include({ shared: true });
  });

  (asRoot ? it : it.skip)('checkDirectory refuses a directory of another user (not root)', () => {
    const dir = tmpDir();
    const sub = path.join(dir, 'theirs');
    fs.mkdirSync(sub, 0o755);
    fs.chownSync(sub, NOBODY, NOBODY);
    expect(() => checkDirectory(path.join(sub, 's.sock'), 'listen', 'the socket')).to.throw(
      `listen: ${sub} belongs to uid ${NOBODY}, who could replace the socket at any time: use a directory that belongs to this user (uid 0) or to root`,
    ).with.property('code', 'ERR_GRACEFUL_UNSAFE_DIRECTORY');
    expect(() => openFile(path.join(sub, 'f'), 'w', 0o600, 'api')).to.throw(/belongs to uid 65534/);
    expect(fdCount()).to.equal(before);
  });

  it('checkPath checks every component: missing is false, mode makes them (0700), links are resolved, a file or a loop fails', () => {
    const dir = tmpDir();
    fs.chmodSync(dir, 0o700);
    const deep = path.join(dir, 'a', 'b');
    expect(checkPath(deep, 'api', 'the file')).to.equal(false);
    expect(checkPath(deep, 'api', 'the file', 0o700)).to.equal(true);
    expect(fs.statSync(path.join(dir, 'a')).mode & 0o7777).to.equal(0o700);
    fs.symlinkSync('a/../a/b', path.join(dir, 'rel'));
    expect(checkPath(path.join(dir, 'rel', '.'), 'api', 'the file')).to.equal(true);
    fs.writeFileSync(path.join(dir, 'f'), '');
    expect(() => checkPath(path.join(dir, 'f', 'x'), 'api', 'the file', 0o700)).to.throw().with.property('code', 'ENOTDIR');
    fs.symlinkSync('loop', path.join(dir, 'loop'));
    expect(() => checkPath(path.join(dir, 'loop'), 'api', 'the file')).to.throw(/more than 40 symbolic links/).with.property('code', 'ELOOP');
    const open = path.join(dir, 'open');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777); // anyone could rename what is below it
    expect(() => checkPath(path.join(open, 'x'), 'api', 'the file', 0o700)).to.throw(/without the sticky bit/).with.property('code', 'ERR_GRACEFUL_UNSAFE_DIRECTORY');
    expect(fs.readdirSync(open)).to.deep.equal([]);
  });

  (asRoot ? it : it.skip)('checkPath follows no link of another user in a sticky shared directory', () => {
    const dir = tmpDir();
    fs.chmodSync(dir, 0o1777);
    fs.symlinkSync(tmpDir(), path.join(dir, 'l'));
    fs.lchownSync(path.join(dir, 'l'), NOBODY, NOBODY);
    expect(() => checkPath(path.join(dir, 'l', 'sub'), 'api', 'the file', 0o700)).to.throw(`api: ${dir}/l is a symbolic link of uid ${NOBODY} in ${dir}`)
      .with.property('code', 'ERR_GRACEFUL_UNSAFE_FILE');
  });

  it('openFile opens close-on-exec; in a sticky shared directory our files and links are fine', () => {
    const dir = tmpDir();
    fs.chmodSync(dir, 0o1777);
    const file = path.join(dir, 'log');
    const fd = openFile(file, 'a', 0o600, 'api');
    expect(fdFlags(fd) & O_CLOEXEC).to.equal(O_CLOEXEC);
    fs.writeSync(fd, 'one\n');
    fs.closeSync(fd);
    const link = path.join(dir, 'link');
    fs.symlinkSync(file, link);
    const fd2 = openFile(link, 'a', 0o600, 'api');
    fs.writeSync(fd2, 'two\n');
    fs.closeSync(fd2);
    expect(fs.readFileSync(file, 'utf8')).to.equal('one\ntwo\n');
    expect(fdCount()).to.equal(before);
  });

  (asRoot ? it : it.skip)('openFile refuses, in a sticky shared directory, a link or a file of another user, and leaks nothing', () => {
    const dir = tmpDir();
    fs.chmodSync(dir, 0o1777);
    const target = path.join(dir, 'target');
    fs.writeFileSync(target, '');
    const link = path.join(dir, 'planted');
    fs.symlinkSync(target, link);
    fs.lchownSync(link, NOBODY, NOBODY);
    expect(() => openFile(link, 'w', 0o600, 'writePidFile')).to.throw(
      `writePidFile: ${link} is a symbolic link of uid ${NOBODY} in ${dir}, a directory other users can write to: ` +
        'following it would write wherever its owner points it; remove it, or use a directory only this user can write',
    ).with.property('code', 'ERR_GRACEFUL_UNSAFE_FILE');
    const theirs = path.join(dir, 'theirs');
    fs.writeFileSync(theirs, 'secret');
    fs.chownSync(theirs, NOBODY, NOBODY);
    expect(() => openFile(theirs, 'r', 0o600, 'api')).to.throw(
      `api: ${theirs} belongs to uid ${NOBODY} in ${dir}, a directory other users can write to: ` +
        'its owner could read or rewrite it; remove it, or use a directory only this user can write',
    ).with.property('code', 'ERR_GRACEFUL_UNSAFE_FILE');
    expect(() => writeFileAtomic(link, 'x', 0o644, 'api')).to.throw(/is a symbolic link of uid 65534/);
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['planted', 'target', 'theirs']); // no temporary file left
    expect(fdCount()).to.equal(before);
  });

  it('openFile passes the errno of a failed open through and leaves nothing open', () => {
    const dir = tmpDir();
    expect(() => openFile(path.join(dir, 'nope'), 'r', 0o600, 'api')).to.throw().with.property('code', 'ENOENT');
    fs.writeFileSync(path.join(dir, 'exists'), '');
    expect(() => openFile(path.join(dir, 'exists'), 'wx', 0o600, 'api')).to.throw().with.property('code', 'EEXIST');
    expect(fdCount()).to.equal(before);
  });

  it('writeFileAtomic replaces the file with exactly the mode asked, and leaves no temporary file', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'state.json');
    fs.writeFileSync(file, 'old');
    const old = process.umask(0o077);
    try {
      writeFileAtomic(file, '{"new":true}', 0o644, 'api');
    } finally {
      process.umask(old);
    }
    expect(fs.readFileSync(file, 'utf8')).to.equal('{"new":true}');
    expect(fs.statSync(file).mode & 0o7777).to.equal(0o644);
    expect(fs.readdirSync(dir)).to.deep.equal(['state.json']);
    // A rename onto a directory fails: the temporary file is removed and the errno thrown.
    const sub = path.join(dir, 'sub');
    fs.mkdirSync(sub);
    fs.writeFileSync(path.join(sub, 'keep'), '');
    expect(() => writeFileAtomic(sub, 'x', 0o600, 'api')).to.throw().with.property('code').that.is.oneOf(['EISDIR', 'ENOTEMPTY', 'EEXIST']);
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['state.json', 'sub']);
    expect(fdCount()).to.equal(before);
  });

  it('removeFile removes a file, is fine with one already gone, and throws the errno for a directory, which it leaves', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'x');
    removeFile(file);
    expect(fs.existsSync(file)).to.equal(false);
    removeFile(file);
    fs.mkdirSync(file);
    expect(() => removeFile(file)).to.throw().with.property('code').that.is.oneOf(['EISDIR', 'EPERM']);
    expect(fs.statSync(file).isDirectory()).to.equal(true);
  });

  it('removeFile, and a pid file removed at a halt, load nothing for a recursive walk (internal/fs/rimraf), in a fresh process', () => {
    const program = `
      const fs = await import('node:fs');
      const path = await import('node:path');
      const os = await import('node:os');
      const { removeFile } = await import(${JSON.stringify(distUrl('src/safefile.js'))});
      const { writePidFile, removePidFile } = await import(${JSON.stringify(distUrl('src/pidfile.js'))});
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graceful-test-'));
      fs.writeFileSync(path.join(dir, 'f'), 'x');
      removeFile(path.join(dir, 'f'));
      writePidFile(path.join(dir, 'app.pid'));
      const removed = removePidFile(path.join(dir, 'app.pid'));
      fs.rmdirSync(dir);
      console.log(JSON.stringify({ removed, rimraf: process.moduleLoadList.includes('NativeModule internal/fs/rimraf') }));`;
    expect(inFresh(program)).to.deep.equal({ removed: true, rimraf: false });
  });
});
