/**
 * socket-pair.ts: a connected pair of UNIX stream sockets, both ends
 * close-on-exec and labelled, bytes both ways, and nothing left behind
 * (no descriptor, no directory).
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { socketPair } from '../../src/workers/socket-pair.js';
import { O_CLOEXEC, fdFlags, openFds, root } from '../helpers.js';

describe('workers/socket-pair', () => {
  it('connects two UNIX stream sockets, close-on-exec, that carry bytes both ways', () => {
    const pair = socketPair('graceful:test');
    try {
      expect(pair.read.meta.name).to.equal('graceful:test');
      expect(pair.write.meta.name).to.equal('graceful:test');
      for (const end of [pair.read, pair.write]) {
        expect(fdFlags(end.fd) & O_CLOEXEC, 'close-on-exec').to.equal(O_CLOEXEC);
        expect(fs.readlinkSync(`/proc/self/fd/${end.fd}`)).to.match(/^socket:/);
      }
      fs.writeSync(pair.write.fd, 'to the worker');
      const buf = Buffer.alloc(64);
      expect(buf.subarray(0, fs.readSync(pair.read.fd, buf)).toString()).to.equal('to the worker');
      fs.writeSync(pair.read.fd, 'back');
      expect(buf.subarray(0, fs.readSync(pair.write.fd, buf)).toString()).to.equal('back');
    } finally {
      pair.read.close();
      pair.write.close();
    }
  });

  it('leaves no descriptor and no directory behind, over 200 pairs', () => {
    const dirs = () => fs.readdirSync(os.tmpdir()).filter((d) => d.startsWith('graceful-pair-')).length;
    const fds = openFds().length;
    const before = dirs();
    for (let i = 0; i < 200; i++) {
      const pair = socketPair('graceful:test');
      pair.read.close();
      pair.write.close();
    }
    expect(openFds().length).to.equal(fds);
    expect(dirs()).to.be.at.most(before);
  });

  it('removes its directory without a recursive walk: a primary that makes pairs loads no internal/fs/rimraf (fresh process)', () => {
    const program = `
      const { socketPair } = await import(${JSON.stringify(pathToFileURL(path.join(root, 'dist/src/workers/socket-pair.js')).href)});
      const pair = socketPair('graceful:test');
      pair.read.close();
      pair.write.close();
      console.log(JSON.stringify({ rimraf: process.moduleLoadList.includes('NativeModule internal/fs/rimraf') }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', program], { encoding: 'utf8', cwd: root });
    expect(r.stderr).to.equal('');
    expect(JSON.parse(r.stdout)).to.deep.equal({ rimraf: false });
  });
});
