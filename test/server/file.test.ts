/**
 * GracefulFile on real files: writes under load survive reopen() (the
 * logrotate path) whole, in order, each on the descriptor it started on, and
 * no descriptor is left open.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import crypto from 'node:crypto';
import { GracefulFile, ClosedError } from '../../src/index.js';
import { openFds, tmpDir } from '../helpers.js';

function openFile(file: string): GracefulFile {
  return new GracefulFile(fs.openSync(file, 'a', 0o644), file);
}

/** lines: the lines of file, or none when it does not exist. */
function lines(file: string): string[] {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

/** fdTarget: what descriptor fd of this process names now, or null (readlink opens no descriptor). */
function fdTarget(fd: number): string | null {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

describe('GracefulFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir();
  });

  it('reopen() under write load: no write fails, none lands elsewhere, every line is whole and in order', async () => {
    const log = path.join(dir, 'app.log');
    const before = openFds();
    const file = openFile(log);
    const errors: Error[] = [];
    file.on('error', (err) => errors.push(err));
    const total = 20_000;
    const rotations = 40;
    let written = 0;
    const writer = (async () => {
      while (written < total && errors.length === 0) {
        // Far beyond the high-water mark: writes queue behind the one in progress.
        for (let i = 0; i < 50 && written < total; i++) file.write(`line ${written++} ${'x'.repeat(200)}\n`);
        await new Promise((r) => setImmediate(r));
      }
    })();
    // A bystander opens files meanwhile, so a closed number is soon reused;
    // work on libuv's thread pool keeps a queued write waiting for a thread.
    const bystander = path.join(dir, 'bystander');
    const busy: Promise<unknown>[] = [];
    for (let r = 0; r < rotations && errors.length === 0; r++) {
      for (let i = 0; i < 8; i++) {
        busy.push(new Promise((resolve) => crypto.pbkdf2('p', 's', 5000, 32, 'sha256', resolve)));
      }
      fs.renameSync(log, `${log}.${r}`);
      const reopened = file.reopen();
      const fd = fs.openSync(bystander, 'a');
      await reopened;
      fs.closeSync(fd);
    }
    await writer;
    await Promise.all(busy);
    file.end();
    await once(file, 'finish');
    file.destroy();
    await once(file, 'close');
    expect(errors.map((e) => e.message)).to.deep.equal([]);
    expect(lines(bystander), 'nothing written into a reused descriptor').to.deep.equal([]);
    const all = [...Array.from({ length: rotations }, (_, r) => lines(`${log}.${r}`)).flat(), ...lines(log)];
    expect(all.length).to.equal(total);
    all.forEach((l, i) => {
      if (l !== `line ${i} ${'x'.repeat(200)}`) expect.fail(`line ${i} is ${JSON.stringify(l.slice(0, 40))}`);
    });
    expect(openFds()).to.deep.equal(before);
  });

  it('reopen() sends later writes to the new file and closes the old descriptor', async () => {
    const log = path.join(dir, 'b.log');
    const file = openFile(log);
    const old = file.fd;
    file.write('first\n');
    fs.renameSync(log, `${log}.1`);
    await file.reopen();
    expect(file.fd).to.not.equal(old);
    // The number may be reused (readdir of /proc/self/fd opens one): it no longer names the old file.
    expect(fdTarget(old)).to.not.equal(`${log}.1`);
    file.write('second\n');
    file.end();
    await once(file, 'finish');
    expect(lines(`${log}.1`)).to.deep.equal(['first']);
    expect(lines(log)).to.deep.equal(['second']);
    file.destroy();
    await once(file, 'close');
  });

  it('reopen() that cannot open the path rejects with the errno and keeps writing to the old file', async () => {
    const sub = path.join(dir, 'sub');
    fs.mkdirSync(sub);
    const log = path.join(sub, 'c.log');
    const file = openFile(log);
    const old = file.fd;
    fs.renameSync(log, path.join(dir, 'c.log.1'));
    fs.rmdirSync(sub);
    const err = (await file.reopen().then(() => null, (e: unknown) => e)) as NodeJS.ErrnoException;
    expect(err?.code).to.equal('ENOENT');
    expect(file.fd).to.equal(old);
    file.end('still here\n');
    await once(file, 'finish');
    expect(lines(path.join(dir, 'c.log.1'))).to.deep.equal(['still here']);
    file.destroy();
    await once(file, 'close');
  });

  it('reopen() after destroy() rejects with ERR_GRACEFUL_CLOSED and leaves no descriptor open', async () => {
    const log = path.join(dir, 'd.log');
    const before = openFds();
    const file = openFile(log);
    file.destroy();
    await once(file, 'close');
    const err = await file.reopen().then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(ClosedError);
    expect((err as { code?: string }).code).to.equal('ERR_GRACEFUL_CLOSED');
    expect(openFds()).to.deep.equal(before);
  });
});
