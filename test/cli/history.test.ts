/** cli/history.ts: the shell's history between sessions. */
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HISTORY_SIZE, historyFile, loadHistory, saveHistory } from '../../src/cli/history.js';
import { tmpDir } from '../helpers.js';

describe('cli/history', () => {
  it('historyFile lives under $XDG_STATE_HOME, else ~/.local/state; relative values are ignored', () => {
    expect(historyFile({ XDG_STATE_HOME: '/s', HOME: '/h' })).to.equal('/s/graceful-restart/history');
    expect(historyFile({ HOME: '/h' })).to.equal('/h/.local/state/graceful-restart/history');
    expect(historyFile({ XDG_STATE_HOME: 'rel', HOME: '/h' })).to.equal('/h/.local/state/graceful-restart/history');
    expect(historyFile({ HOME: 'rel' })).to.equal(path.join(os.homedir(), '.local/state/graceful-restart/history'));
  });

  it('saveHistory makes the directory (0700) and the file (0600); loadHistory reads it back most recent first', () => {
    const file = path.join(tmpDir(), 'state', 'graceful-restart', 'history');
    saveHistory(file, ['status', '', 'bad\nline', 'telinit 1', '  ']);
    expect(fs.readFileSync(file, 'utf8')).to.equal('telinit 1\nstatus\n');
    expect(fs.statSync(file).mode & 0o777).to.equal(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).to.equal(0o700);
    expect(loadHistory(file)).to.deep.equal(['status', 'telinit 1']);
    saveHistory(file, []);
    expect(fs.readFileSync(file, 'utf8')).to.equal('');
    expect(loadHistory(file)).to.deep.equal([]);
  });

  it('keeps at most HISTORY_SIZE lines, the most recent ones', () => {
    const file = path.join(tmpDir(), 'history');
    const lines = Array.from({ length: HISTORY_SIZE + 20 }, (_, i) => `cmd ${i}`); // most recent first
    saveHistory(file, lines);
    const back = loadHistory(file);
    expect(back).to.have.length(HISTORY_SIZE);
    expect(back[0]).to.equal('cmd 0');
    expect(back.at(-1)).to.equal(`cmd ${HISTORY_SIZE - 1}`);
    fs.writeFileSync(file, lines.map((l) => `${l}\n`).join(''));
    expect(loadHistory(file)).to.have.length(HISTORY_SIZE);
  });

  it('a missing or unreadable history is empty; a save that cannot write throws', () => {
    const dir = tmpDir();
    expect(loadHistory(null)).to.deep.equal([]);
    expect(loadHistory(path.join(dir, 'none'))).to.deep.equal([]);
    expect(loadHistory(dir)).to.deep.equal([]); // a directory: EISDIR
    fs.writeFileSync(path.join(dir, 'file'), '');
    expect(() => saveHistory(path.join(dir, 'file', 'sub', 'history'), ['x'])).to.throw().with.property('code').that.is.oneOf(['ENOTDIR', 'EEXIST']);
  });
});
