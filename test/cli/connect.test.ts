/** cli/connect.ts: the CLI's exit codes, and what it says when nothing answers at a control socket. */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { connect, EXIT_CONNECT, EXIT_FAILED, EXIT_OK, EXIT_USAGE, Exit, whyNoConnection } from '../../src/cli/connect.js';
import { addon } from '../../src/native.js';
import { fdCount, tmpDir } from '../helpers.js';

async function exitOf(p: Promise<unknown>): Promise<Exit> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).to.be.instanceOf(Exit);
  return e as Exit;
}

describe('cli/connect', () => {
  it('the exit codes', () => {
    expect([EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONNECT]).to.deep.equal([0, 1, 2, 3]);
    const e = new Exit(2, 'error: x');
    expect(e).to.be.instanceOf(Error);
    expect(e).to.include({ code: 2, message: 'error: x' });
  });

  it('connect opens a control socket that answers', async () => {
    const p = path.join(tmpDir(), 'ok.sock');
    const server = net.createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(p, r));
    const client = await connect(p, 5000);
    client.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('connect exits 3 saying what is wrong: no file, a directory, a regular file, nobody listening; no descriptor leaks', async () => {
    const dir = tmpDir();
    const before = fdCount();
    const missing = path.join(dir, 'none.sock');
    expect(await exitOf(connect(missing, 5000))).to.include({
      code: 3, message: `error: cannot connect to ${missing}: ENOENT: there is no such file; is the server running with this control socket?`,
    });
    const file = path.join(dir, 'plain');
    fs.writeFileSync(file, '');
    expect(await exitOf(connect(file, 5000))).to.include({
      code: 3, message: `error: cannot connect to ${file}: ECONNREFUSED: it is a regular file or another kind of file, not a socket; check the path`,
    });
    const stale = path.join(dir, 'stale.sock');
    addon.close(addon.listen(stale, 0o600, 1)); // the file stays, nobody listens
    expect(await exitOf(connect(stale, 5000))).to.include({
      code: 3, message: `error: cannot connect to ${stale}: ECONNREFUSED: nobody listens on this socket (a stale file left by a server that is gone?); is the server running?`,
    });
    expect(fdCount()).to.equal(before);
  });

  it('whyNoConnection explains permission errors, directories and unknown errnos', () => {
    const dir = tmpDir();
    const uid = process.getuid!();
    expect(whyNoConnection(dir, Object.assign(new Error('x'), { code: 'EACCES' }))).to.equal(
      `EACCES: permission denied for uid ${uid}; run as the server's user or root, or ask for controlMode 0o660 and a shared group`,
    );
    expect(whyNoConnection(dir, Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).to.equal(
      'ECONNREFUSED: it is a directory, not a socket; name the socket file inside it',
    );
    expect(whyNoConnection(path.join(dir, 'none'), Object.assign(new Error('boom'), { code: 'EWHAT' }))).to.equal(
      'EWHAT (boom); is the server running with this control socket?',
    );
    expect(whyNoConnection(path.join(dir, 'none'), new Error('plain'))).to.equal('ERROR (plain); is the server running with this control socket?');
  });
});
