/** Loading the addon: what the missing-addon error advises where, and the bin's one line when it fails. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { missingAddonMessage, rebuildAdvice } from '../../src/native.js';
import { root, spawnChild, tmpDir } from '../helpers.js';
import { distUrl, inFresh } from '../helpers/fresh.js';

const bin = path.join(root, 'bin/graceful-restart.js');

function env(addonPath: string): NodeJS.ProcessEnv {
  return { ...process.env, GRACEFUL_ADDON_PATH: addonPath };
}

/** loadFresh imports the addon (dist/src/native.js) in a fresh process with extra in its environment (none of the variables that choose the addon otherwise) and says what it got. */
function loadFresh(extra: NodeJS.ProcessEnv): { sendmsg?: string; nodeGypBuild?: boolean; code?: string } {
  const program = `
    import { createRequire } from 'node:module';
    try {
      const { addon } = await import(${JSON.stringify(distUrl('src/native.js'))});
      const cache = Object.keys(createRequire(import.meta.url).cache);
      console.log(JSON.stringify({ sendmsg: typeof addon.sendmsg, nodeGypBuild: cache.some((f) => f.includes('node-gyp-build')) }));
    } catch (err) {
      console.log(JSON.stringify({ code: err.code }));
    }`;
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['GRACEFUL_ADDON_PATH', 'GRACEFUL_RESTART_PREBUILD', 'PREBUILDS_ONLY']) delete childEnv[name];
  Object.assign(childEnv, extra);
  return inFresh(program, { env: childEnv }) as { sendmsg?: string; nodeGypBuild?: boolean; code?: string };
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

  it('loads its own build (build/Release) without loading node-gyp-build; told to look elsewhere, node-gyp-build decides', () => {
    expect(loadFresh({})).to.deep.equal({ sendmsg: 'function', nodeGypBuild: false });
    // GRACEFUL_RESTART_PREBUILD points node-gyp-build at a directory with no build: not found.
    expect(loadFresh({ GRACEFUL_RESTART_PREBUILD: tmpDir() })).to.deep.equal({ code: 'ERR_GRACEFUL_ADDON_NOT_FOUND' });
  });
});
