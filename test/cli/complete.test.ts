/** cli/complete.ts: completion in the shell, read from the commands' usage lines. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { complete, files, parseHelp } from '../../src/cli/complete.js';
import { tmpDir } from '../helpers.js';

const HELP = [
  'help [command]         list the commands, or explain one',
  'telinit 0|1|3          switch runlevel  (also: init)',
  'kill <SIGNAL>          send a signal',
  'task <name> [args...]  run a task',
  'log-to <file>          write the log to a file',
  'status                 show the state',
  'say <text>             print text',
  "The application's commands:",
  '  first line of a longer help text',
];

describe('cli/complete', () => {
  it('parseHelp reads each usage line into the command and its parameters, aliases too; prose is skipped', () => {
    const specs = parseHelp(HELP);
    expect([...specs.entries()]).to.deep.equal([
      ['help', ['command']],
      ['telinit', ['0|1|3']],
      ['init', ['0|1|3']],
      ['kill', ['SIGNAL']],
      ['task', ['name', 'args']],
      ['log-to', ['file']],
      ['status', []],
      ['say', ['text']],
    ]);
    expect([...parseHelp(['', '   ', 'not a usage line because it is a sentence']).keys()]).to.deep.equal([]);
  });

  it('the first word completes to command names and the shell words', () => {
    const sources = { specs: parseHelp(HELP), tasks: [] };
    expect(complete('', sources)).to.deep.equal([['exit', 'help', 'init', 'kill', 'log-to', 'quit', 'say', 'status', 'task', 'telinit'], '']);
    expect(complete('te', sources)).to.deep.equal([['telinit'], 'te']);
    expect(complete('  st', sources)).to.deep.equal([['status'], 'st']);
    expect(complete('zz', sources)).to.deep.equal([[], 'zz']);
  });

  it('parameters complete to their choices, command names, signals or task names', () => {
    const sources = { specs: parseHelp(HELP), tasks: ['backup', 'rotate', 'beta'] };
    expect(complete('telinit ', sources)).to.deep.equal([['0', '1', '3'], '']);
    expect(complete('init 1', sources)).to.deep.equal([['1'], '1']);
    expect(complete('help ta', sources)).to.deep.equal([['task'], 'ta']);
    const [sigs, w] = complete('kill SIGT', sources);
    expect(w).to.equal('SIGT');
    expect(sigs).to.include.members(['SIGTERM', 'SIGTRAP', 'SIGTSTP']);
    expect(complete('kill SIGK', sources)).to.deep.equal([[], 'SIGK']); // SIGKILL cannot be caught: not offered
    expect(complete('task b', sources)).to.deep.equal([['backup', 'beta'], 'b']);
    expect(complete('task backup x', sources)).to.deep.equal([[], 'x']); // free text
    expect(complete('say hel', sources)).to.deep.equal([[], 'hel']);
    expect(complete('unknown arg', sources)).to.deep.equal([[], 'arg']);
  });

  it('a <file> parameter, or any word that looks like a path, completes as a file name', () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'logs'));
    fs.writeFileSync(path.join(dir, 'log.txt'), '');
    fs.writeFileSync(path.join(dir, '.hidden'), '');
    const sources = { specs: parseHelp(HELP), tasks: [] };
    expect(complete(`log-to ${dir}/lo`, sources)).to.deep.equal([[`${dir}/log.txt`, `${dir}/logs/`], `${dir}/lo`]);
    expect(complete(`say ${dir}/`, sources)).to.deep.equal([[`${dir}/log.txt`, `${dir}/logs/`], `${dir}/`]);
    expect(complete(`telinit ${dir}/`, sources)).to.deep.equal([[], `${dir}/`]); // choices win over paths
  });

  it('files lists matching entries (directories with /), hidden ones only when asked, nothing for a missing directory', () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'a-dir'));
    fs.writeFileSync(path.join(dir, 'a-file'), '');
    fs.writeFileSync(path.join(dir, '.a-hidden'), '');
    expect(files(`${dir}/a`)).to.deep.equal([`${dir}/a-dir/`, `${dir}/a-file`]);
    expect(files(`${dir}/.`)).to.deep.equal([`${dir}/.a-hidden`]);
    expect(files(`${dir}/missing/x`)).to.deep.equal([]);
    expect(files(`${dir}/a-file/x`)).to.deep.equal([]);
  });
});
