/**
 * The control socket's part of a redeploy and of a take-back, with two
 * control servers in one process standing for the old and the new instance:
 * the listening socket and the idle connections go over with the bytes read
 * and not run, exactly; a failed hand-off resumes them here; a connection
 * running a command stays; after a hand-off the old instance takes the
 * socket back on its kept duplicate.
 */
import { expect } from 'chai';
import path from 'node:path';
import { ControlServer } from '../../src/control/server.js';
import type { Meta } from '../../src/meta.js';
import { addon } from '../../src/native.js';
import { openFds, tmpDir, until } from '../helpers.js';
import { connectRaw } from './attackers.js';

/** Runs of `wait` started so far. */
let waits = 0;

/** instance: a control server whose `who` answers name; `wait` runs until its client leaves. */
function instance(sock: string, name: string): ControlServer {
  const server = new ControlServer(sock);
  server.commands.add('who', { usage: 'who', run: () => name });
  server.commands.add('wait', {
    usage: 'wait',
    run: (ctx) => {
      waits++;
      return new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
    },
  });
  return server;
}

/** ask sends line on a raw client and resolves with the next two lines of answer. */
async function ask(c: Awaited<ReturnType<typeof connectRaw>>, line: string): Promise<string[]> {
  const from = c.lines.length;
  c.socket.write(line);
  await until(() => c.lines.length >= from + 2, 5_000, `the answer to ${JSON.stringify(line)}`);
  return c.lines.slice(from, from + 2);
}

describe('control hand-over', function () {
  this.timeout(20_000);
  let sock: string;
  /** The old instance, listening on sock, and the new one, not listening yet. */
  let old: ControlServer;
  let successor: ControlServer;

  beforeEach(async () => {
    sock = path.join(tmpDir(), 'c.sock');
    old = instance(sock, 'old');
    await old.listen();
    successor = instance(sock, 'new');
  });

  afterEach(() => {
    successor.close(false);
    old.close(true);
  });

  it('hands the listener and an idle connection over with its unrun input; the new instance serves both', async () => {
    const c = await connectRaw(sock);
    expect(await ask(c, 'who\nwh')).to.deep.equal(['old', 'ok']); // "wh" was read with the line before it, and not run
    const out = old.handoff();
    expect(out.map((o) => o.meta)).to.deep.equal([
      { name: 'control', kind: 'control' },
      { kind: 'control-conn', pendingBytes: Buffer.from('wh').toString('base64') },
    ]);
    await successor.listen(addon.dup(out[0]!.fd));
    successor.adopt(addon.dup(out[1]!.fd), out[1]!.meta as Meta);
    old.handoffDone();
    successor.start();
    expect(await ask(c, 'o\n')).to.deep.equal(['new', 'ok']);
    const fresh = await connectRaw(sock);
    expect(await ask(fresh, 'who\n')).to.deep.equal(['new', 'ok']);
    expect(old.connectionCount).to.equal(0);
    expect(old.leftBehind).to.equal(null);
    c.socket.destroy();
    fresh.socket.destroy();
  });

  it('a failed hand-off resumes the connections here, their unrun input included, and closes the duplicates', async () => {
    const c = await connectRaw(sock);
    expect(await ask(c, 'who\nwh')).to.deep.equal(['old', 'ok']);
    const before = openFds().length;
    const out = old.handoff();
    expect(out).to.have.length(2);
    expect(openFds().length).to.equal(before + 1); // the duplicate of the connection
    old.handoffFailed();
    expect(openFds().length).to.equal(before);
    expect(await ask(c, 'o\n')).to.deep.equal(['old', 'ok']);
    c.socket.destroy();
  });

  it('a connection running a command stays with this instance', async () => {
    const idle = await connectRaw(sock);
    const busy = await connectRaw(sock);
    expect(await ask(busy, 'who\n')).to.deep.equal(['old', 'ok']);
    const started = waits;
    busy.socket.write('wait\n');
    await until(() => waits === started + 1 && old.connectionCount === 2, 5_000, 'the command to run');
    const out = old.handoff();
    expect(out.map((o) => (o.meta as Meta).kind)).to.deep.equal(['control', 'control-conn']);
    old.handoffFailed();
    idle.socket.destroy();
    busy.socket.destroy();
  });

  it('takeBack: after a hand-off whose new instance died, the old one accepts again on its kept duplicate', async () => {
    const out = old.handoff();
    await successor.listen(addon.dup(out[0]!.fd));
    old.handoffDone();
    const before = await connectRaw(sock);
    expect(await ask(before, 'who\n')).to.deep.equal(['new', 'ok']);
    before.socket.destroy();
    successor.close(false); // the new instance dies
    await old.takeBack();
    expect(old.leftBehind).to.not.equal(null);
    const after = await connectRaw(sock);
    expect(await ask(after, 'who\n')).to.deep.equal(['old', 'ok']);
    after.socket.destroy();
  });

  it('connections adopted and never started are closed without a FIN when the new instance halts: the predecessor keeps them', async () => {
    const c = await connectRaw(sock);
    expect(await ask(c, 'who\n')).to.deep.equal(['old', 'ok']);
    const out = old.handoff();
    successor.adopt(addon.dup(out[1]!.fd), out[1]!.meta as Meta);
    successor.close(false); // halts before it was ready
    await until(() => successor.connectionCount === 0, 5_000, 'the adopted connection to be closed there');
    old.handoffFailed();
    expect(await ask(c, 'who\n')).to.deep.equal(['old', 'ok']);
    expect(c.closed()).to.equal(false);
    c.socket.destroy();
  });
});
