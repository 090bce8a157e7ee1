/** config.ts: JSON configuration files with {$NAME} placeholders from the environment. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config.js';
import { tmpDir } from '../helpers.js';

function write(text: string): string {
  const file = path.join(tmpDir(), 'app.json');
  fs.writeFileSync(file, text);
  return file;
}

describe('config', () => {
  it('replaces placeholders: a whole value becomes a number or boolean, a part stays text', () => {
    const file = write(JSON.stringify({
      port: '{$PORT}', debug: '{$DEBUG}', ratio: '{$RATIO}', neg: '{$NEG}', name: '{$NAME}',
      url: 'http://{$HOST}:{$PORT}/', list: ['{$PORT}', 'x{$NAME}'], nested: { deep: '{$DEBUG}', n: 1, nil: null }, plain: 'no $PLACEHOLDER {here}',
    }));
    const env = { PORT: '8080', DEBUG: 'false', RATIO: '0.5', NEG: '-3', NAME: 'web', HOST: 'localhost' };
    expect(loadConfig(file, env)).to.deep.equal({
      port: 8080, debug: false, ratio: 0.5, neg: -3, name: 'web', url: 'http://localhost:8080/', list: [8080, 'xweb'],
      nested: { deep: false, n: 1, nil: null }, plain: 'no $PLACEHOLDER {here}',
    });
    expect(loadConfig(write('{"v":"{$V}"}'), { V: '1e3' })).to.deep.equal({ v: '1e3' }); // only plain decimals become numbers
  });

  it('a missing variable is ERR_GRACEFUL_CONFIG naming the file and the place', () => {
    const file = write('{"server":{"ports":["{$A}","{$MISSING}"]}}');
    expect(() => loadConfig(file, { A: '1' })).to.throw(
      `${file}: server.ports[1] uses {$MISSING}, but MISSING is not set in the environment: set it, or change the file`,
    ).with.property('code', 'ERR_GRACEFUL_CONFIG');
  });

  it('a missing file, bad JSON or a value that is not an object is ERR_GRACEFUL_CONFIG', () => {
    const missing = path.join(tmpDir(), 'none.json');
    expect(() => loadConfig(missing, {})).to.throw(`${missing}: cannot read the configuration file (ENOENT)`).with.property('code', 'ERR_GRACEFUL_CONFIG');
    const bad = write('{"a":');
    expect(() => loadConfig(bad, {})).to.throw(new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not valid JSON: `)).with.property('code', 'ERR_GRACEFUL_CONFIG');
    for (const text of ['[1]', '"x"', 'null', '3']) {
      const f = write(text);
      expect(() => loadConfig(f, {})).to.throw(`${f}: the configuration must be a JSON object`).with.property('code', 'ERR_GRACEFUL_CONFIG');
    }
  });
});
