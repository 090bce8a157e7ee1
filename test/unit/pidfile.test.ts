/**
 * pidfile.ts and the shared-directory rules of safefile.ts it uses: atomic
 * writes under a random temporary name, reads that follow no link, removal
 * only by the process named, and the refusals in directories other users can
 * write to. Files of another user are made by chown (root only: skipped
 * otherwise, with the reason).
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { readPidFile, removePidFile, writePidFile } from '../../src/pidfile.js';
import { openFile, openFlags } from '../../src/safefile.js';
import { tmpDir } from '../helpers.js';

const OTHER = 65534;
const isRoot = process.getuid?.() === 0;

/** sharedDir makes a directory like /tmp: writable by all, sticky, owned by us. */
function sharedDir(): string {
  const dir = tmpDir();
  fs.chmodSync(dir, 0o1777);
  return dir;
}

/** victim makes a file only root may touch, and returns a check that it is unchanged. */
function victim(dir: string): { file: string; unchanged(): void } {
  const file = path.join(dir, 'victim');
  fs.writeFileSync(file, 'secret\n', { mode: 0o600 });
  fs.chmodSync(file, 0o600);
  return {
    file,
    unchanged() {
      const st = fs.statSync(file);
      expect({ mode: (st.mode & 0o7777).toString(8), text: fs.readFileSync(file, 'utf8') }).to.deep.equal({ mode: '600', text: 'secret\n' });
    },
  };
}

describe('pidfile', () => {
  it('writes the pid atomically with mode 0644 whatever the umask, and leaves no temporary file', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'app.pid');
    const old = process.umask(0o077);
    try {
      writePidFile(file, 4242);
    } finally {
      process.umask(old);
    }
    expect(fs.readFileSync(file, 'utf8')).to.equal('4242\n');
    expect((fs.statSync(file).mode & 0o777).toString(8)).to.equal('644');
    expect(fs.readdirSync(dir)).to.deep.equal(['app.pid']);
    writePidFile(file, 4343);
    expect(readPidFile(file)).to.equal(4343);
    expect(fs.readdirSync(dir)).to.deep.equal(['app.pid']);
  });

  it('reads null for a missing file, garbage, or a symbolic link (not followed)', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'app.pid');
    expect(readPidFile(file)).to.equal(null);
    fs.writeFileSync(file, 'not a pid\n');
    expect(readPidFile(file)).to.equal(null);
    fs.writeFileSync(path.join(dir, 'real'), '77\n');
    fs.rmSync(file);
    fs.symlinkSync(path.join(dir, 'real'), file);
    expect(readPidFile(file)).to.equal(null);
  });

  it('removes the file only while it names this pid', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'app.pid');
    writePidFile(file, 100);
    expect(removePidFile(file, 101)).to.equal(false);
    expect(fs.existsSync(file)).to.equal(true);
    expect(removePidFile(file, 100)).to.equal(true);
    expect(fs.existsSync(file)).to.equal(false);
    expect(removePidFile(file, 100)).to.equal(false);
  });

  it('fails with the errno when the path is a directory, and leaves no temporary file', () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'app.pid'));
    expect(() => writePidFile(path.join(dir, 'app.pid'), 1)).to.throw().with.property('code', 'EISDIR');
    expect(fs.readdirSync(dir)).to.deep.equal(['app.pid']);
  });

  it('refuses a directory others may write to without the sticky bit, and one of another user', function () {
    const dir = tmpDir();
    fs.chmodSync(dir, 0o777);
    expect(() => writePidFile(path.join(dir, 'app.pid'), 1)).to.throw(/writable by other users \(mode 0777\) without the sticky bit/)
      .with.property('code', 'ERR_GRACEFUL_UNSAFE_DIRECTORY');
    if (!isRoot) this.skip(); // chown to another uid needs root
    fs.chmodSync(dir, 0o755);
    fs.chownSync(dir, OTHER, OTHER);
    expect(() => writePidFile(path.join(dir, 'app.pid'), 1)).to.throw(`belongs to uid ${OTHER}, who could replace the file at any time`)
      .with.property('code', 'ERR_GRACEFUL_UNSAFE_DIRECTORY');
    expect(fs.readdirSync(dir)).to.deep.equal([]);
  });

  it('in a sticky shared directory: links planted at the old temporary names are ignored', function () {
    const dir = sharedDir();
    const v = victim(dir);
    const file = path.join(dir, 'app.pid');
    // The old code wrote `.app.pid.<pid>.tmp`: plant a link at every name it could use for pids near ours.
    for (let pid = process.pid - 20; pid <= process.pid + 20; pid++) fs.symlinkSync(v.file, path.join(dir, `.app.pid.${pid}.tmp`));
    writePidFile(file);
    expect(readPidFile(file)).to.equal(process.pid);
    expect(fs.lstatSync(file).isFile()).to.equal(true);
    v.unchanged();
    expect(fs.readdirSync(dir).filter((n) => !n.startsWith('.app.pid.') && n !== 'victim')).to.deep.equal(['app.pid']);
  });

  it('in a sticky shared directory: a link or a file of another user at the pid file is refused', function () {
    if (!isRoot) this.skip(); // a link owned by another uid needs root (lchown)
    const dir = sharedDir();
    const v = victim(dir);
    const file = path.join(dir, 'app.pid');
    fs.symlinkSync(v.file, file);
    fs.lchownSync(file, OTHER, OTHER);
    expect(() => writePidFile(file, 1)).to.throw(`pidFile: ${file} is a symbolic link of uid ${OTHER} in ${dir}, a directory other users can write to`)
      .with.property('code', 'ERR_GRACEFUL_UNSAFE_FILE');
    v.unchanged();
    fs.rmSync(file);
    fs.writeFileSync(file, '1\n', { mode: 0o666 });
    fs.chownSync(file, OTHER, OTHER);
    expect(() => writePidFile(file, 2)).to.throw(`pidFile: ${file} belongs to uid ${OTHER}`).with.property('code', 'ERR_GRACEFUL_UNSAFE_FILE');
    expect(fs.readFileSync(file, 'utf8')).to.equal('1\n');
    // Our own link is fine: nobody else can replace it in a sticky directory; rename replaces the link itself.
    fs.rmSync(file);
    fs.symlinkSync(v.file, file);
    writePidFile(file, 3);
    expect(fs.lstatSync(file).isFile()).to.equal(true);
    v.unchanged();
  });
});

describe('safefile openFile', () => {
  it('maps fs flags to open(2) flags', () => {
    expect(openFlags('a')).to.equal(fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_WRONLY);
    expect(openFlags('r')).to.equal(fs.constants.O_RDONLY);
    expect(openFlags(0o1)).to.equal(0o1);
    expect(() => openFlags('q')).to.throw(TypeError, 'Usage: openFile(path, flags, mode): unknown flags "q"');
  });

  it('in a sticky shared directory: refuses a link of another user, and a file of another user', function () {
    if (!isRoot) this.skip(); // files owned by another uid need root
    const dir = sharedDir();
    const v = victim(dir);
    const log = path.join(dir, 'app.log');
    fs.symlinkSync(v.file, log);
    fs.lchownSync(log, OTHER, OTHER);
    expect(() => openFile(log, 'a', 0o644, 'file')).to.throw(`file: ${log} is a symbolic link of uid ${OTHER}`).with.property('code', 'ERR_GRACEFUL_UNSAFE_FILE');
    v.unchanged();
    fs.rmSync(log);
    fs.writeFileSync(log, '', { mode: 0o666 });
    fs.chownSync(log, OTHER, OTHER);
    expect(() => openFile(log, 'a', 0o644, 'file')).to.throw(`file: ${log} belongs to uid ${OTHER}`).with.property('code', 'ERR_GRACEFUL_UNSAFE_FILE');
  });

  it('opens a new name in a shared directory with its mode, and follows our own link in a private one', () => {
    const dir = sharedDir();
    const fd = openFile(path.join(dir, 'new.log'), 'a', 0o640, 'file');
    fs.writeSync(fd, 'x');
    fs.closeSync(fd);
    expect((fs.statSync(path.join(dir, 'new.log')).mode & 0o777).toString(8)).to.equal('640');
    const priv = tmpDir();
    fs.writeFileSync(path.join(priv, 'target'), '');
    fs.symlinkSync(path.join(priv, 'target'), path.join(priv, 'link'));
    const fd2 = openFile(path.join(priv, 'link'), 'a', 0o644, 'file');
    fs.writeSync(fd2, 'y');
    fs.closeSync(fd2);
    expect(fs.readFileSync(path.join(priv, 'target'), 'utf8')).to.equal('y');
  });
});
