/**
 * ReopenRelay and ReopenPeer: a forward waits for the records to be
 * connected, sends reopen and resolves on reopened; a reopen record is run
 * here and answered, never forwarded back; a closed peer or a silent one
 * ends the wait (the other instance's processes are in
 * reopen-during-redeploy.test.ts).
 */
import { expect } from 'chai';
import type { Meta } from '../../src/meta.js';
import { ReopenRelay } from '../../src/server/reopen-relay.js';

describe('server/reopen-relay', () => {
  it('two relays joined back to back: a reopen on either side runs on the other before forward() resolves, and is not sent back', async () => {
    const ran = { a: 0, b: 0 };
    const logs: string[] = [];
    const a = new ReopenRelay(async () => void ran.a++, (m) => logs.push(m));
    const b = new ReopenRelay(async () => void ran.b++, (m) => logs.push(m));
    const pa = a.peer('b');
    const pb = b.peer('a');
    const sent: string[] = [];
    // Each side's records go to the other's handle(), as over the hand-off connection.
    pa.connect(async (meta: Meta) => { sent.push(`a>${String(meta.graceful)}`); setImmediate(() => void pb.handle(meta)); });
    pb.connect(async (meta: Meta) => { sent.push(`b>${String(meta.graceful)}`); setImmediate(() => void pa.handle(meta)); });
    await a.forward(1000);
    expect(ran).to.deep.equal({ a: 0, b: 1 });
    await b.forward(1000);
    expect(ran).to.deep.equal({ a: 1, b: 1 });
    expect(sent).to.deep.equal(['a>reopen', 'b>reopened', 'b>reopen', 'a>reopened']);
    expect(logs).to.deep.equal([]);
  });

  it('a forward before the descriptors went waits for connect(); one to a peer that closes, or never answers, returns and is logged', async () => {
    const logs: string[] = [];
    const relay = new ReopenRelay(async () => undefined, (m) => logs.push(m));
    const early = relay.peer('the new instance (pid 1)');
    const sent: unknown[] = [];
    const waiting = relay.forward(1000);
    await new Promise((r) => setImmediate(r));
    expect(sent).to.deep.equal([]);
    early.connect(async (meta) => void sent.push(meta.graceful));
    await new Promise((r) => setImmediate(r));
    expect(sent).to.deep.equal(['reopen']);
    early.close();
    await waiting;
    expect(logs).to.deep.equal(['reopen: the new instance (pid 1) did not confirm that it re-opened its files']);
    await relay.forward(1000); // closed peers are forgotten
    expect(logs).to.have.length(1);
    const silent = relay.peer('the old instance (pid 2)');
    silent.connect(async () => undefined);
    await relay.forward(50);
    expect(logs[1]).to.equal('reopen: the old instance (pid 2) did not confirm that it re-opened its files');
  });

  it('handle: a reopen whose files fail to re-open is logged and still answered; other records are not its own', async () => {
    const logs: string[] = [];
    const relay = new ReopenRelay(async () => { throw Object.assign(new Error('open EACCES'), { code: 'EACCES' }); }, (m) => logs.push(m));
    const peer = relay.peer('the old instance (pid 3)');
    const sent: unknown[] = [];
    peer.connect(async (meta) => void sent.push(meta.graceful));
    expect(await peer.handle({ graceful: 'reopen' })).to.equal(true);
    expect(sent).to.deep.equal(['reopened']);
    expect(logs).to.deep.equal(['reopen asked by the old instance (pid 3): open EACCES']);
    expect(await peer.handle({ graceful: 'retired', slot: 1 })).to.equal(false);
    expect(await peer.handle(null)).to.equal(false);
  });
});
