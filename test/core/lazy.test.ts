/**
 * lazy: a part loaded where first used, and what a user sees when it cannot
 * be loaded (ERR_GRACEFUL_PART_LOAD_FAILED): a Node without require() of ES
 * modules, a part missing, a part that provides nothing.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PartLoadFailedError } from '../../src/index.js';
import { loadOnce, provide } from '../../src/lazy.js';
import { root } from '../helpers.js';

describe('lazy: loadOnce', () => {
  it('loads a part once, and hands out what it provided', () => {
    const first = loadOnce<object>('control/service-parts.js');
    expect(first).to.be.an('object');
    expect(loadOnce<object>('control/service-parts.js')).to.equal(first);
  });

  it('a part provided before anything asked is handed out without loading', () => {
    const parts = { mine: true };
    provide('test/nowhere.js', parts);
    expect(loadOnce('test/nowhere.js')).to.equal(parts);
  });

  it('a missing part: ERR_GRACEFUL_PART_LOAD_FAILED, saying to reinstall, with the loader\'s error as cause', () => {
    const err = (() => { try { loadOnce('no/such-part.js'); return null; } catch (e) { return e as Error & { code?: string }; } })();
    expect(err).to.be.instanceOf(PartLoadFailedError);
    expect(err).to.include({ code: 'ERR_GRACEFUL_PART_LOAD_FAILED' });
    expect(err!.message).to.equal("graceful-restart: cannot load no/such-part.js where first used: it, or a module it needs, is missing: the package's files are incomplete; reinstall it");
    expect((err!.cause as { code?: string }).code).to.equal('MODULE_NOT_FOUND');
  });

  it('a part that loads and provides nothing: ERR_GRACEFUL_PART_LOAD_FAILED, saying to reinstall', () => {
    expect(() => loadOnce('log.js')).to.throw(PartLoadFailedError, "graceful-restart: log.js was loaded but provided nothing: the package's files are from two builds; reinstall it")
      .with.property('code', 'ERR_GRACEFUL_PART_LOAD_FAILED');
  });

  it('a Node that cannot require() an ES module: ERR_GRACEFUL_PART_LOAD_FAILED, saying which entry to import', () => {
    const lazy = pathToFileURL(path.join(root, 'dist/src/lazy.js')).href;
    const script = `import { loadOnce } from ${JSON.stringify(lazy)};
      try { loadOnce('control/service-parts.js'); console.log('loaded'); } catch (e) { console.log(e.code, e.cause?.code, e.message); }`;
    const r = spawnSync(process.execPath, ['--no-experimental-require-module', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.match(/^ERR_GRACEFUL_PART_LOAD_FAILED ERR_REQUIRE_ESM graceful-restart: this Node \(v[\d.]+\) cannot load control\/service-parts\.js where first used, .* import the package by its name, 'graceful-restart'/);
  });
});
