/**
 * The library's log lines (src/log.ts): GRACEFUL_JSON_LOG's values, the plain
 * and the JSON form, a sink of the caller's, and the default sink (stderr)
 * in a real process.
 */
import { expect } from 'chai';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatLog, infoToStdout, jsonLogEnabled, levelOf, makeLogger, underPm2, type LogLevel } from '../../src/log.js';
import { root, spawnChild } from '../helpers.js';

describe('core/log', () => {
  it('jsonLogEnabled: 1, true and yes in any case; anything else, or nothing, is off', () => {
    for (const v of ['1', 'true', 'TRUE', 'True', 'yes', 'YES']) expect(jsonLogEnabled({ GRACEFUL_JSON_LOG: v }), v).to.equal(true);
    for (const v of ['', '0', 'false', 'no', 'on', ' 1', '1 ', 'truex', 'y']) expect(jsonLogEnabled({ GRACEFUL_JSON_LOG: v }), JSON.stringify(v)).to.equal(false);
    expect(jsonLogEnabled({})).to.equal(false);
  });

  it('formatLog: plain is graceful[pid]: message, fields left out', () => {
    expect(formatLog('halt: done', { event: 'halt' }, false)).to.equal(`graceful[${process.pid}]: halt: done`);
    expect(formatLog('', {}, false)).to.equal(`graceful[${process.pid}]: `);
  });

  it('formatLog: JSON is one line with time, pid, msg and the fields; undefined fields left out', () => {
    const before = Date.now();
    const line = formatLog('worker 1 ready\n(pid 7)', { event: 'worker.ready', worker: 1, pid: 7, ok: true, none: null, gone: undefined }, true);
    expect(line).to.not.include('\n');
    const obj = JSON.parse(line) as Record<string, unknown>;
    // The fields come after, so a field named pid says which worker: the field wins.
    expect(Object.keys(obj)).to.deep.equal(['time', 'pid', 'msg', 'event', 'worker', 'ok', 'none']);
    expect(obj).to.deep.include({ pid: 7, msg: 'worker 1 ready\n(pid 7)', event: 'worker.ready', worker: 1, ok: true, none: null });
    const t = Date.parse(obj.time as string);
    expect(obj.time).to.equal(new Date(t).toISOString());
    expect(t).to.be.within(before, Date.now());
    expect(JSON.parse(formatLog('x', undefined, true))).to.have.keys('time', 'pid', 'msg');
    expect((JSON.parse(formatLog('x', undefined, true)) as { pid: number }).pid).to.equal(process.pid);
  });

  it('levelOf: a level in the fields wins; else a line that reports a failure, a refusal, a loss or a kill is a warning', () => {
    for (const msg of ['supervisor: started pid 7: node app.mjs', 'redeploy: done (pid 8) after 120 ms', 'supervisor: SIGINT: forwarding to pid 8',
      'supervisor: the current generation (pid 8) exited with code 0; no generation is left', 'runlevel 1', 'TLS ticket keys of "https" rotated',
      'worker 1 of generation 2 ready (pid 9)', 'closing 1 inherited descriptor(s) nobody registered: old']) {
      expect(levelOf(msg), msg).to.equal('info');
    }
    for (const msg of ['redeploy failed: the new instance exited with code 1', 'could not write the pid file /x: EACCES', 'cannot start foo: ENOENT',
      'redeploy refused: busy', 'the current generation (pid 8) exited with code 1; no generation is left', 'the current generation (pid 8) was killed by SIGKILL; no generation is left',
      'halt: closed 2 connection(s) still open at their deadline (the shutdown timeout)', 'worker 1 (pid 9) has not answered for 3000 ms: it is unresponsive',
      'worker 1 crashed; restarting it in 100 ms', 'pid 9 sent MAINPID=x: not a pid, ignored', 'a redeploy event listener threw: x']) {
      expect(levelOf(msg), msg).to.equal('warn');
    }
    expect(levelOf('redeploy failed', { level: 'info' })).to.equal('info');
    expect(levelOf('all is well', { level: 'warn' })).to.equal('warn');
  });

  it('infoToStdout: GRACEFUL_LOG_STDOUT 1/true/yes or 0/false/no; otherwise on only under PM2 (pm_id and pm_exec_path)', () => {
    const pm2 = { pm_id: '0', pm_exec_path: '/srv/app/node_modules/.bin/graceful-restart' };
    expect(underPm2(pm2)).to.equal(true);
    expect(underPm2({ pm_id: '0' })).to.equal(false);
    expect(underPm2({})).to.equal(false);
    for (const v of ['1', 'true', 'YES']) expect(infoToStdout({ GRACEFUL_LOG_STDOUT: v }), v).to.equal(true);
    for (const v of ['0', 'false', 'No']) expect(infoToStdout({ ...pm2, GRACEFUL_LOG_STDOUT: v }), v).to.equal(false);
    expect(infoToStdout({})).to.equal(false);
    expect(infoToStdout(pm2)).to.equal(true);
    expect(infoToStdout({ ...pm2, GRACEFUL_LOG_STDOUT: 'maybe' })).to.equal(true);
  });

  it('makeLogger gives a sink of two parameters each line with its level, any other the line alone', () => {
    const got: [string, LogLevel][] = [];
    const log = makeLogger((l, level) => got.push([l, level]));
    log('started');
    log('start failed');
    log('odd', { level: 'warn' });
    expect(got.map(([, level]) => level)).to.deep.equal(['info', 'warn', 'warn']);
    // A sink that takes any number of arguments (console.log) gets the line alone, as before levels.
    const args: unknown[][] = [];
    makeLogger((...a: unknown[]) => args.push(a))('started');
    expect(args).to.deep.equal([[`graceful[${process.pid}]: started`]]);
  });

  it('makeLogger writes each line to the sink given, in the form the environment asks for now', () => {
    const lines: string[] = [];
    const log = makeLogger((l) => lines.push(l));
    const saved = process.env.GRACEFUL_JSON_LOG;
    try {
      delete process.env.GRACEFUL_JSON_LOG;
      log('one', { event: 'e' });
      process.env.GRACEFUL_JSON_LOG = 'true';
      log('two', { event: 'e' });
    } finally {
      if (saved === undefined) delete process.env.GRACEFUL_JSON_LOG;
      else process.env.GRACEFUL_JSON_LOG = saved;
    }
    expect(lines).to.have.length(2);
    expect(lines[0]).to.equal(`graceful[${process.pid}]: one`);
    expect(JSON.parse(lines[1]!)).to.deep.include({ pid: process.pid, msg: 'two', event: 'e' });
  });

  describe('the default sink, in a real process', function () {
    this.timeout(20_000);
    const module = pathToFileURL(path.join(root, 'dist/src/log.js')).href;
    const run = (env: NodeJS.ProcessEnv) => spawnChild(process.execPath, ['--input-type=module', '-e',
      `import { makeLogger } from ${JSON.stringify(module)}; const log = makeLogger(); log('first', { n: 1 }); log('second'); console.log('done');`,
    ], { env });

    it('writes plain lines to stderr, nothing to stdout', async () => {
      const env = { ...process.env };
      delete env.GRACEFUL_JSON_LOG;
      const child = run(env);
      expect(await child.exited).to.deep.equal({ code: 0, signal: null });
      expect(child.stderr).to.deep.equal([`graceful[${child.pid}]: first`, `graceful[${child.pid}]: second`]);
      expect(child.stdout).to.deep.equal(['done']);
    });

    const split = (env: NodeJS.ProcessEnv) => spawnChild(process.execPath, ['--input-type=module', '-e',
      `import { makeLogger } from ${JSON.stringify(module)}; const log = makeLogger(); log('started'); log('it failed'); log('done');`,
    ], { env });

    it('with GRACEFUL_LOG_STDOUT=1, or under PM2, information goes to stdout and warnings to stderr; GRACEFUL_LOG_STDOUT=0 keeps all on stderr', async () => {
      const base = { ...process.env };
      for (const k of ['GRACEFUL_JSON_LOG', 'GRACEFUL_LOG_STDOUT', 'pm_id', 'pm_exec_path']) delete base[k];
      for (const env of [{ ...base, GRACEFUL_LOG_STDOUT: '1' }, { ...base, pm_id: '3', pm_exec_path: '/x/graceful-restart' }]) {
        const child = split(env);
        expect(await child.exited).to.deep.equal({ code: 0, signal: null });
        expect(child.stdout).to.deep.equal([`graceful[${child.pid}]: started`, `graceful[${child.pid}]: done`]);
        expect(child.stderr).to.deep.equal([`graceful[${child.pid}]: it failed`]);
      }
      const child = split({ ...base, pm_id: '3', pm_exec_path: '/x/graceful-restart', GRACEFUL_LOG_STDOUT: '0' });
      expect(await child.exited).to.deep.equal({ code: 0, signal: null });
      expect(child.stdout).to.deep.equal([]);
      expect(child.stderr).to.have.length(3);
    });

    it('with GRACEFUL_JSON_LOG=1, writes one JSON object a line to stderr', async () => {
      const child = run({ ...process.env, GRACEFUL_JSON_LOG: '1' });
      expect(await child.exited).to.deep.equal({ code: 0, signal: null });
      const objs = child.stderr.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(objs.map(({ time: _t, ...rest }) => rest)).to.deep.equal([{ pid: child.pid, msg: 'first', n: 1 }, { pid: child.pid, msg: 'second' }]);
    });
  });
});
