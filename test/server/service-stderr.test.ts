/**
 * server/service-stderr.ts: the service's stderr held while fd 2 is a pipe
 * to the predecessor. A child (test/fixtures/piped-stderr.ts) has its stderr
 * piped here and the service's stderr (a file) at fd 3; the test closes its
 * end of the pipe, as a predecessor's death does.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { spawnFixture, tmpDir } from '../helpers.js';

function start(mode: string): { child: ReturnType<typeof spawnFixture>; file: string } {
  const file = path.join(tmpDir(), 'service-stderr');
  const fd = fs.openSync(file, 'w');
  const child = spawnFixture('piped-stderr', [mode], { stdio: ['ignore', 'pipe', 'pipe', fd] });
  fs.closeSync(fd);
  return { child, file };
}

describe('server/service-stderr', () => {
  it('the reader of the pipe gone: writes fail with EPIPE, swallowed; the service\'s stderr is back at fd 2 and every later line reaches it', async () => {
    const { child, file } = start('epipe');
    expect(await child.next(/^held /)).to.equal('held 3');
    child.proc.stderr!.destroy(); // what the predecessor's death does to the pipe
    expect(await child.next(/^restored /)).to.equal('restored 2 false');
    expect(await child.next(/^closed$/)).to.equal('closed');
    expect(await child.exited).to.deep.equal({ code: 0, signal: null });
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    expect(lines.slice(-6)).to.deep.equal(['after 1', 'after 2', 'after 3', 'after 4', 'after 5', '']);
  });

  it('another error on process.stderr is not hidden: the process fails as without the guard', async () => {
    const { child } = start('other');
    const { code } = await child.exited;
    expect(code).to.equal(1);
    expect(child.stderr.join('\n')).to.include('piped-stderr: not a pipe error');
  });

  it('once closed, nothing is restored: fd 2 stays the pipe, and serviceStderr() is 2', async () => {
    const { child, file } = start('closed');
    expect(await child.next(/^restore /)).to.equal('restore false 2');
    expect(await child.exited).to.deep.equal({ code: 0, signal: null });
    expect(child.stderr).to.deep.equal(['still piped']);
    expect(fs.readFileSync(file, 'utf8')).to.equal('');
  });
});
