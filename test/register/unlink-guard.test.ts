/**
 * UnlinkGuard in a child process (it replaces fs's functions, so not in this
 * one): every form of unlink and rm of a kept path leaves the file, once
 * said; other paths go; the paths are named to a new version by the
 * environment, and released at a real halt; an ES module's named import of
 * unlinkSync is guarded too.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { root, spawnChild, tmpDir } from '../helpers.js';

const guard = path.join(root, 'dist/src/register/unlink-guard.js');

describe('register/unlink-guard', () => {
  it('keeps a kept path through every form, says so once, lets others go, names them to the next version, releases at a halt', async () => {
    const dir = tmpDir();
    const kept = path.join(dir, 'kept.sock');
    const other = path.join(dir, 'other');
    const inherited = path.join(dir, 'inherited.sock');
    for (const f of [kept, other, inherited]) fs.writeFileSync(f, '');
    const script = `
      import fs from 'node:fs';
      import { UnlinkGuard, PATHS_ENV } from ${JSON.stringify(guard)};
      const g = new UnlinkGuard((l) => console.log('said ' + l));
      g.install();
      const { unlinkSync } = await import('node:fs');
      g.keep(${JSON.stringify(kept)});
      fs.unlinkSync(${JSON.stringify(kept)});
      unlinkSync(${JSON.stringify(kept)});
      fs.rmSync(${JSON.stringify(kept)}, { force: true });
      await new Promise((r) => fs.unlink(${JSON.stringify(kept)}, r));
      await new Promise((r) => fs.rm(${JSON.stringify(kept)}, r));
      await fs.promises.unlink(${JSON.stringify(kept)});
      await fs.promises.rm(${JSON.stringify(kept)});
      fs.unlinkSync(${JSON.stringify(inherited)});
      fs.unlinkSync(${JSON.stringify(other)});
      console.log('env ' + process.env[PATHS_ENV]);
      console.log('kept ' + fs.existsSync(${JSON.stringify(kept)}) + ' inherited ' + fs.existsSync(${JSON.stringify(inherited)}) + ' other ' + fs.existsSync(${JSON.stringify(other)}));
      g.release();
      fs.unlinkSync(${JSON.stringify(kept)});
      console.log('released ' + fs.existsSync(${JSON.stringify(kept)}) + ' env ' + process.env[PATHS_ENV]);
    `;
    const child = spawnChild(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, GRACEFUL_REGISTER_PATHS: JSON.stringify([inherited]) } });
    expect((await child.exited).code, child.stderr.join('\n')).to.equal(0);
    const said = child.stdout.filter((l) => l.startsWith('said '));
    expect(said).to.have.length(2);
    expect(said[0]).to.include(`kept ${kept}: it is the socket file of a listener kept across redeploys`);
    expect(said[1]).to.include(`kept ${inherited}`);
    expect(child.stdout).to.include(`env ${JSON.stringify([inherited, kept])}`);
    expect(child.stdout).to.include('kept true inherited true other false');
    expect(child.stdout).to.include('released false env undefined');
  });
});
