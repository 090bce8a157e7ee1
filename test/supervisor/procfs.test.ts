/** supervisor/procfs.ts: what /proc says of processes (real child processes). */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { childrenOf, isDescendant, rssOf, stat, type ProcStat } from '../../src/supervisor/procfs.js';
import { tmpDir, until } from '../helpers.js';

/** readOr: a /proc file's text, or '' when the process is not there (yet, or any more). */
function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

describe('supervisor/procfs', () => {
  it('stat reads state and parent of a live process, and null for one that is gone', async () => {
    const me = stat(process.pid)!;
    expect(me.pid).to.equal(process.pid);
    expect(me.ppid).to.equal(process.ppid);
    expect(me.state).to.match(/^[RS]$/);
    const child = spawn('sh', ['-c', 'exit 0'], { stdio: 'ignore' });
    const pid = child.pid!;
    await new Promise((r) => child.once('exit', r));
    await until(() => stat(pid) === null, 10_000, 'the child reaped');
    expect(stat(pid)).to.equal(null);
  });

  it('stat reads a command name with spaces and parentheses', async () => {
    // /proc/<pid>/stat holds the executable's name (its first 15 bytes) in parentheses.
    const exe = path.join(tmpDir(), 'a) b (c');
    fs.copyFileSync('/bin/sleep', exe);
    fs.chmodSync(exe, 0o755);
    const child = spawn(exe, ['30'], { stdio: 'ignore' });
    try {
      await until(() => /\) b \(/.test(readOr(`/proc/${child.pid}/stat`)), 10_000, 'the renamed process');
      expect(stat(child.pid!)).to.deep.include({ pid: child.pid, ppid: process.pid });
    } finally {
      child.kill();
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('childrenOf lists the children; isDescendant follows parents up, never counting the ancestor itself', async () => {
    const child = spawn('sh', ['-c', 'sleep 30 & wait'], { stdio: 'ignore' });
    try {
      const [grand] = await until(() => {
        const c = childrenOf(child.pid!);
        return c.length > 0 ? c : null;
      }, 10_000, 'the grandchild') as ProcStat[];
      expect(childrenOf(process.pid).map((s) => s.pid)).to.include(child.pid);
      expect(grand!.ppid).to.equal(child.pid);
      expect(isDescendant(grand!.pid, process.pid)).to.equal(true);
      expect(isDescendant(child.pid!, process.pid)).to.equal(true);
      expect(isDescendant(process.pid, process.pid)).to.equal(false);
      expect(isDescendant(process.pid, child.pid!)).to.equal(false);
      expect(isDescendant(2 ** 22 + 1, process.pid)).to.equal(false); // no such pid
      process.kill(grand!.pid, 'SIGKILL');
    } finally {
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('rssOf: the resident memory of a live process in bytes, null for one that is gone or no pid', async () => {
    const rss = rssOf(process.pid)!;
    expect(rss % 1024).to.equal(0);
    expect(rss).to.be.within(process.memoryUsage().rss * 0.8, process.memoryUsage().rss * 1.2);
    const child = spawn('sh', ['-c', 'exit 0'], { stdio: 'ignore' });
    const pid = child.pid!;
    await new Promise((r) => child.once('exit', r));
    await until(() => stat(pid) === null, 10_000, 'the child reaped');
    expect(rssOf(pid)).to.equal(null);
    for (const bad of [0, -1, 1.5, NaN]) expect(rssOf(bad), String(bad)).to.equal(null);
  });
});
