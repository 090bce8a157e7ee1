/** HeldSockets, the primary's sockets alone: real sockets bound on 127.0.0.1, registered for hand-offs, grown, closed. */
import { expect } from 'chai';
import dgram from 'node:dgram';
import net from 'node:net';
import { ManagedListener } from '../../src/server/listeners.js';
import { Registry } from '../../src/server/registry.js';
import { HeldSockets } from '../../src/workers/held-sockets.js';
import type { Meta } from '../../src/meta.js';
import { fdCount } from '../helpers.js';

describe('HeldSockets', () => {
  const make = (reuseport: boolean) => {
    const registry = new Registry();
    const held = new HeldSockets({ registry, log: () => undefined, reuseport, predecessor: () => null });
    return { registry, held };
  };
  const listener = (name: string) => new ManagedListener(name, net.createServer(), { host: '127.0.0.1', port: 0 });
  const metaOf = (d: { meta?: unknown }) => d.meta as Meta;
  const names = (registry: Registry) => registry.handoffList().map((d) => String(metaOf(d).name)).sort();

  it('holds a listener as an SO_REUSEPORT group, grows it, undoes a growth, and closes one slot\'s members when it crash-loops', async () => {
    const before = fdCount();
    const { registry, held } = make(true);
    expect(await held.holdListener(listener('web'), { host: '127.0.0.1', port: 0 })).to.equal(undefined);
    const port = held.address('web')!.port;
    expect(port).to.be.a('number').above(0);
    expect(names(registry)).to.deep.equal(['web']);
    const undo = await held.growGroups(3);
    expect(names(registry)).to.deep.equal(['web', 'web#1', 'web#2']);
    expect(registry.handoffList().every((d) => metaOf(d).port === port), 'one port for the group').to.equal(true);
    expect(held.status()).to.deep.include({ name: 'web', state: 'open', kind: 'tcp', host: '127.0.0.1', port, fd: held.status()[0]!.fd, connections: 0, systemd: false, members: 3 });
    expect(held.info()[0]!.address).to.deep.equal({ family: 'tcp', host: '127.0.0.1', port, members: 3 });
    undo();
    expect(names(registry)).to.deep.equal(['web']);
    await held.growGroups(2);
    expect(names(registry), 'a member name comes back, registered once').to.deep.equal(['web', 'web#1']);
    held.crashLooping(1, 2);
    expect(names(registry), 'slot 1 of 2 had member 1').to.deep.equal(['web']);
    held.release();
    expect(names(registry)).to.deep.equal([]);
    expect(fdCount()).to.equal(before);
  });

  it('refuses a second listener or UDP socket of a name (ERR_GRACEFUL_DUPLICATE_NAME), and a port in use (EADDRINUSE)', async () => {
    const { registry, held } = make(true);
    await held.holdListener(listener('web'), { host: '127.0.0.1', port: 0 });
    const dup = await held.holdListener(listener('web'), { host: '127.0.0.1', port: 0 }).catch((e: unknown) => e);
    expect((dup as { code?: string }).code).to.equal('ERR_GRACEFUL_DUPLICATE_NAME');
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const taken = (busy.address() as net.AddressInfo).port;
    const err = await held.holdListener(listener('api'), { host: '127.0.0.1', port: taken }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).to.equal('EADDRINUSE');
    busy.close();
    const socket = dgram.createSocket('udp4');
    await held.holdDgram('dns', socket, { address: '127.0.0.1' });
    expect(held.address('dns')).to.deep.include({ name: 'dns', kind: 'dgram' });
    expect((await held.holdDgram('dns', socket, {}).catch((e: unknown) => e) as { code?: string }).code).to.equal('ERR_GRACEFUL_DUPLICATE_NAME');
    expect(names(registry)).to.deep.equal(['dns', 'web']);
    held.release();
    expect(names(registry)).to.deep.equal([]);
  });

  it('holds one shared socket without reuseport, and rotates no keys without a TLS listener', async () => {
    const { registry, held } = make(false);
    await held.holdListener(listener('web'), { host: '127.0.0.1', port: 0 });
    await held.growGroups(4);
    expect(names(registry), 'one shared socket: no group to grow').to.deep.equal(['web']);
    expect(held.rotateTickets()).to.deep.equal([]);
    held.release();
  });
});
