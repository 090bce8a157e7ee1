/** The shell's completion (from the usage lines `help` lists) and its history file. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { complete, files, parseHelp } from '../../src/cli/complete.js';
import { HISTORY_SIZE, historyFile, loadHistory, saveHistory } from '../../src/cli/history.js';
import { tmpDir } from '../helpers.js';

const HELP = [
  'help [command]          list the commands, or explain one',
  'telinit 0|1|3           switch runlevel: 0 halt, 1 single user, 3 serving',
  'redeploy                start a new instance  (also: restart)',
  'CUSTOM <command> [args] run an application command (diamond\'s form)',
  'task [name [args...]]   run a named task of the application',
  'signal <SIGNAL>         send a signal to the current generation',
  'load <file>             an application command that reads a file',
  'stats                   a command the shell has never heard of',
  '',
  'The application\'s, forwarded to it:',
  '(the application\'s commands are unavailable: ECONNREFUSED)',
];

describe('shell completion', () => {
  const sources = { specs: parseHelp(HELP), tasks: ['rotate', 'flush'] };

  it('reads the commands and their parameters from the usage lines, aliases too', () => {
    expect([...sources.specs.keys()].sort()).to.deep.equal(['CUSTOM', 'help', 'load', 'redeploy', 'restart', 'signal', 'stats', 'task', 'telinit']);
    expect(sources.specs.get('telinit')).to.deep.equal(['0|1|3']);
    expect(sources.specs.get('CUSTOM')).to.deep.equal(['command', 'args']);
    expect(sources.specs.get('restart')).to.deep.equal([]);
  });

  it('completes the first word, then each command\'s arguments', () => {
    expect(complete('st', sources)).to.deep.equal([['stats'], 'st']);
    expect(complete('q', sources)).to.deep.equal([['quit'], 'q']);
    expect(complete('telinit ', sources)).to.deep.equal([['0', '1', '3'], '']);
    expect(complete('help tel', sources)).to.deep.equal([['telinit'], 'tel']);
    expect(complete('CUSTOM st', sources)).to.deep.equal([['stats'], 'st']);
    expect(complete('task r', sources)).to.deep.equal([['rotate'], 'r']);
    expect(complete('signal SIGHU', sources)).to.deep.equal([['SIGHUP'], 'SIGHU']);
    expect(complete('signal SIGK', sources)).to.deep.equal([[], 'SIGK']);
    expect(complete('telinit 3 ', sources)).to.deep.equal([[], '']);
    expect(complete('stats x', sources)).to.deep.equal([[], 'x']);
  });

  it('completes file names for a <file> parameter and for any word that starts as a path', () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'logs'));
    fs.writeFileSync(path.join(dir, 'app.log'), '');
    fs.writeFileSync(path.join(dir, '.hidden'), '');
    expect(complete(`load ${dir}/a`, sources)).to.deep.equal([[`${dir}/app.log`], `${dir}/a`]);
    expect(complete(`stats ${dir}/`, sources)).to.deep.equal([[`${dir}/app.log`, `${dir}/logs/`], `${dir}/`]);
    expect(files(`${dir}/.h`)).to.deep.equal([`${dir}/.hidden`]);
    expect(files(`${dir}/nope/x`)).to.deep.equal([]);
  });
});

describe('shell history', () => {
  it('lives under XDG_STATE_HOME, else ~/.local/state', () => {
    expect(historyFile({ XDG_STATE_HOME: '/s', HOME: '/h' })).to.equal('/s/graceful-restart/history');
    expect(historyFile({ XDG_STATE_HOME: 'relative', HOME: '/h' })).to.equal('/h/.local/state/graceful-restart/history');
  });

  it('is bounded, mode 0600 in a 0700 directory, and survives a missing or odd file', () => {
    const file = path.join(tmpDir(), 'state', 'graceful-restart', 'history');
    expect(loadHistory(file)).to.deep.equal([]);
    const lines = Array.from({ length: HISTORY_SIZE + 20 }, (_, i) => `status ${i}`).reverse(); // most recent first
    saveHistory(file, lines);
    const kept = fs.readFileSync(file, 'utf8').trim().split('\n');
    expect(kept).to.have.length(HISTORY_SIZE);
    expect(kept.at(-1)).to.equal(`status ${HISTORY_SIZE + 19}`);
    expect(fs.statSync(file).mode & 0o777).to.equal(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).to.equal(0o700);
    expect(loadHistory(file)[0]).to.equal(`status ${HISTORY_SIZE + 19}`);
    fs.chmodSync(file, 0o644);
    saveHistory(file, ['help']);
    expect(fs.statSync(file).mode & 0o777, 'the mode is set again').to.equal(0o600);
    // A link planted at the name is replaced, never followed.
    const target = path.join(path.dirname(file), 'elsewhere');
    fs.writeFileSync(target, 'keep\n');
    fs.rmSync(file);
    fs.symlinkSync(target, file);
    saveHistory(file, ['status']);
    expect(fs.lstatSync(file).isSymbolicLink()).to.equal(false);
    expect(fs.readFileSync(target, 'utf8')).to.equal('keep\n');
    fs.rmSync(file);
    fs.mkdirSync(file); // a directory where the file should be: nothing to load, and saving says why
    expect(loadHistory(file)).to.deep.equal([]);
    expect(() => saveHistory(file, ['help'])).to.throw().with.property('code');
  });
});
