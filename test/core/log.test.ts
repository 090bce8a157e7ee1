/**
 * The library's log lines (src/log.ts): GRACEFUL_JSON_LOG's values, the plain
 * and the JSON form, a sink of the caller's, and the default sink (stderr)
 * in a real process.
 */
import { expect } from 'chai';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatLog, jsonLogEnabled, makeLogger } from '../../src/log.js';
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

    it('with GRACEFUL_JSON_LOG=1, writes one JSON object a line to stderr', async () => {
      const child = run({ ...process.env, GRACEFUL_JSON_LOG: '1' });
      expect(await child.exited).to.deep.equal({ code: 0, signal: null });
      const objs = child.stderr.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(objs.map(({ time: _t, ...rest }) => rest)).to.deep.equal([{ pid: child.pid, msg: 'first', n: 1 }, { pid: child.pid, msg: 'second' }]);
    });
  });
});
