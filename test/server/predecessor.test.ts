/**
 * server/predecessor.ts: the new instance's side of a redeploy. This process
 * plays the old instance (a hand-off socket of its own) and spawns the new
 * one (test/fixtures/successor-child.ts), which must be its child.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { receiveFrom } from '../../src/handoff/client.js';
import { listenAndServe } from '../../src/handoff/server.js';
import type { ReceivedFd } from '../../src/handoff/record.js';
import type { Meta } from '../../src/meta.js';
import { HANDOFF_ENV } from '../../src/protocol.js';
import { Predecessor } from '../../src/server/predecessor.js';
import { fdCount, spawnFixture, tmpDir, until } from '../helpers.js';

describe('server/predecessor', () => {
  it('connect resolves null without a hand-off socket in the environment', async () => {
    expect(await Predecessor.connect({})).to.equal(null);
    expect(await Predecessor.connect({ [HANDOFF_ENV]: '' })).to.equal(null);
  });

  it('connect refuses a hand-off socket served by a process other than its parent, and closes what it holds', async () => {
    const before = fdCount();
    const sock = path.join(tmpDir(), 'h.sock');
    const fd = fs.openSync('/dev/null', 'r');
    const server = listenAndServe(sock, (res) => res.send(fd, { name: 'x', kind: 'file' }));
    const env: NodeJS.ProcessEnv = { [HANDOFF_ENV]: sock };
    const err = await Predecessor.connect(env).then(() => null, (e: Error & { code?: string }) => e);
    expect(err).to.include({ code: 'ERR_GRACEFUL_PEER_REFUSED', message: `hand-off: ${sock} is served by pid ${process.pid}, not by our parent (pid ${process.ppid})` });
    expect(env).to.not.have.property(HANDOFF_ENV); // taken from the environment, so a grandchild does not inherit it
    await server.close();
    fs.closeSync(fd);
    await until(() => fdCount() === before, 5000, 'descriptors back to the baseline');
  });

  it('the child takes every descriptor and the state, and answers ready with its pid on the stderr it was given', async () => {
    const before = fdCount();
    const sock = path.join(tmpDir(), 'h.sock');
    const file = fs.openSync('/dev/null', 'r');
    const stderr = fs.openSync('/dev/null', 'w');
    let answer: ReceivedFd | null = null;
    const server = listenAndServe(sock, async (res) => {
      res.send(file, { name: 'log', kind: 'file' });
      res.send(stderr, { graceful: 'end', runlevel: 3 } as Meta);
      await res.flush();
      answer = await receiveFrom(res.connection);
    });
    const child = spawnFixture('successor-child', [], { env: { ...process.env, [HANDOFF_ENV]: sock } });
    expect(await child.next(/^got /)).to.equal('got log file /dev/null');
    expect(await child.next(/^state /)).to.equal('state {"runlevel":3} running=true');
    expect(await child.next(/^told /)).to.equal('told ok');
    await until(() => answer !== null, 5000, 'the ready answer');
    const a = answer as unknown as ReceivedFd;
    expect(a.meta).to.deep.equal({ graceful: 'ready', pid: child.pid });
    expect(fs.readlinkSync(`/proc/self/fd/${a.fd}`)).to.equal('/dev/null');
    fs.closeSync(a.fd);
    child.kill('SIGKILL');
    await child.exited;
    await server.close();
    fs.closeSync(file);
    fs.closeSync(stderr);
    await until(() => fdCount() === before, 5000, 'descriptors back to the baseline');
  });

  it('a predecessor that closes before its end record: the child fails with ERR_GRACEFUL_HANDOFF_FAILED', async () => {
    const sock = path.join(tmpDir(), 'h.sock');
    const file = fs.openSync('/dev/null', 'r');
    const server = listenAndServe(sock, (res) => res.send(file, { name: 'log', kind: 'file' }));
    const child = spawnFixture('successor-child', [], { env: { ...process.env, [HANDOFF_ENV]: sock } });
    const { code } = await child.exited;
    expect(code).to.not.equal(0);
    const text = child.stderr.join('\n');
    expect(text).to.include('hand-off: the predecessor closed the connection before sending everything');
    expect(text).to.include('ERR_GRACEFUL_HANDOFF_FAILED');
    await server.close();
    fs.closeSync(file);
  });
});
