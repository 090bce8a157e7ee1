/**
 * The deadlines of a drain alone: a DrainRun over real connections of a real
 * server, destroyed at the shutdown timeout and at the upgraded timeout.
 */
import { expect } from 'chai';
import net from 'node:net';
import { once } from 'node:events';
import { Connections, type Kind } from '../../../src/server/drain/conns.js';
import { DrainRun, destroyWhere, drainLimits } from '../../../src/server/drain/deadlines.js';
import type { MoveCounts } from '../../../src/server/drain/options.js';

const open: net.Server[] = [];
const clients: net.Socket[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of open.splice(0)) s.close();
});

/**
 * connected: a net.Server on port 0 whose connections go into a table (as kinds
 * says, in order) and leave it when they close; run is told of each close.
 */
async function connected(kinds: Kind[]): Promise<{ table: Connections; clients: net.Socket[]; closed: (fn: () => void) => void }> {
  const table = new Connections();
  let onClose = () => undefined as void;
  const server = net.createServer((raw) => {
    const conn = table.add(raw, raw, kinds[table.size]!);
    raw.once('close', () => {
      table.remove(conn);
      onClose();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  open.push(server);
  const port = (server.address() as net.AddressInfo).port;
  const mine: net.Socket[] = [];
  for (let i = 0; i < kinds.length; i++) {
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => undefined);
    clients.push(c);
    mine.push(c);
    await once(c, 'connect');
  }
  while (table.size < kinds.length) await new Promise((r) => setImmediate(r));
  return { table, clients: mine, closed: (fn) => (onClose = fn) };
}

const counts = (): MoveCounts => ({ handedOver: 0, drained: 0, forced: 0 });

describe('drain/deadlines', function () {
  this.timeout(10_000);

  it('drainLimits: the upgraded deadline is the shutdown deadline unless upgradedTimeout is set', () => {
    expect(drainLimits(1_000, 50, 6_000, undefined)).to.deep.equal({ graceMs: 50, deadline: 6_000, upgradedDeadline: 6_000 });
    expect(drainLimits(1_000, 50, 6_000, 9_000)).to.deep.equal({ graceMs: 50, deadline: 6_000, upgradedDeadline: 10_000 });
  });

  it('a run over no connection is done at once, with nothing destroyed', async () => {
    const now = Date.now();
    const run = new DrainRun(new Connections(), drainLimits(now, 50, now + 5_000, undefined), counts(), 'test', () => undefined);
    expect(await run.done).to.equal(0);
  });

  it('destroys the other connections at the shutdown timeout and the upgraded ones at the upgraded timeout, counting each', async () => {
    const { table, clients: [other, upgraded], closed } = await connected(['other', 'upgraded']);
    const moved = counts();
    const started = Date.now();
    const closedAt = (c: net.Socket) => new Promise<number>((resolve) => c.once('close', () => resolve(Date.now() - started)));
    const otherClosed = closedAt(other!);
    const upgradedClosed = closedAt(upgraded!);
    const sweeps: number[] = [];
    const run = new DrainRun(table, drainLimits(started, 40, started + 200, 500), moved, 'test', (t) => sweeps.push(t));
    closed(() => run.changed());
    expect(await run.done).to.equal(2);
    expect(await otherClosed).to.be.within(190, 450);
    expect(await upgradedClosed).to.be.within(490, 900);
    expect(moved).to.deep.equal({ handedOver: 0, drained: 0, forced: 2 });
    // swept at once, then every quarter of the grace window (10 ms here)
    expect(sweeps.length).to.be.greaterThan(10);
  });

  it('is done as soon as the last connection closes, before any deadline', async () => {
    const { table, clients: [client], closed } = await connected(['other']);
    const now = Date.now();
    const run = new DrainRun(table, drainLimits(now, 50, now + 5_000, undefined), counts(), 'test', () => undefined);
    closed(() => run.changed());
    client!.end();
    expect(await run.done).to.equal(0);
    expect(Date.now() - now).to.be.below(2_000);
  });

  it('cancel ends the run at once and leaves the connections open', async () => {
    const { table, clients: [client] } = await connected(['upgraded']);
    const now = Date.now();
    const run = new DrainRun(table, drainLimits(now, 50, now + 5_000, undefined), counts(), 'test', () => undefined);
    run.cancel();
    expect(await run.done).to.equal(0);
    expect([table.size, client!.destroyed]).to.deep.equal([1, false]);
  });

  it('destroyWhere destroys only the connections selected and marks them forced', async () => {
    const { table } = await connected(['http1', 'upgraded', 'other']);
    const moved = counts();
    expect(destroyWhere(table, (c) => c.kind !== 'upgraded', moved, 'test', 'a test')).to.equal(2);
    const byKind = Object.fromEntries([...table.values()].map((c) => [c.kind, [c.forced, c.raw.destroyed]]));
    expect(byKind).to.deep.equal({ http1: [true, true], upgraded: [false, false], other: [true, true] });
    expect(moved.forced).to.equal(2);
  });
});
