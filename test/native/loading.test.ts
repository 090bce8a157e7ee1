/** Loading the addon: what the missing-addon error advises where, and the bin's one line when it fails. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { missingAddonMessage, rebuildAdvice } from '../../src/native.js';
import { root, spawnChild, tmpDir } from '../helpers.js';

const bin = path.join(root, 'bin/graceful-restart.js');

function env(addonPath: string): NodeJS.ProcessEnv {
  return { ...process.env, GRACEFUL_ADDON_PATH: addonPath };
}

describe('native: loading the addon', () => {
  it('advises `npm rebuild graceful-restart` inside node_modules, and `npm ci` in a checkout', () => {
    expect(rebuildAdvice('/srv/app/node_modules/graceful-restart')).to.equal(
      'run `npm rebuild graceful-restart` in your project (compiling needs a C++ compiler, make and Python 3)');
    expect(rebuildAdvice('/srv/app/node_modules/.pnpm/graceful-restart@0.1.0/node_modules/graceful-restart')).to.match(/^run `npm rebuild graceful-restart`/);
    expect(rebuildAdvice('/home/dev/graceful-restart')).to.equal('run `npm ci` (or `npm run build:native`) in /home/dev/graceful-restart');
    expect(missingAddonMessage('/home/dev/graceful-restart')).to.equal(
      `the native addon is not built, and no prebuilt one fits ${process.platform}-${process.arch}: ` +
        'nothing in /home/dev/graceful-restart/build/Release or /home/dev/graceful-restart/prebuilds; ' +
        'run `npm ci` (or `npm run build:native`) in /home/dev/graceful-restart');
  });

  it('the bin prints one line and exits 1 when GRACEFUL_ADDON_PATH names nothing', async () => {
    const missing = path.join(tmpDir(), 'none.node');
    const child = spawnChild(process.execPath, [bin, 'status', 'app.sock'], { env: env(missing) });
    expect((await child.exited).code).to.equal(1);
    expect(child.stdout).to.deep.equal([]);
    expect(child.stderr).to.deep.equal([
      `error: the native addon is missing at ${missing}: fix GRACEFUL_ADDON_PATH, or unset it to use the package's own build (ERR_GRACEFUL_ADDON_NOT_FOUND)`,
    ]);
  });

  it('the bin prints one line and exits 1 when the addon file cannot be loaded', async () => {
    const bad = path.join(tmpDir(), 'bad.node');
    fs.writeFileSync(bad, 'not a shared object\n'.repeat(64));
    const child = spawnChild(process.execPath, [bin, 'status', 'app.sock'], { env: env(bad) });
    expect((await child.exited).code).to.equal(1);
    expect(child.stdout).to.deep.equal([]);
    expect(child.stderr).to.deep.equal([
      `error: the native addon at ${bad} cannot be loaded (${bad}: invalid ELF header): fix GRACEFUL_ADDON_PATH, or ` +
        `run \`npm ci\` (or \`npm run build:native\`) in ${root} (ERR_GRACEFUL_ADDON_LOAD_FAILED)`,
    ]);
  });
});
