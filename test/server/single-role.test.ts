/** SingleRole in this process, with the engine and the ready protocol: a listener served, runlevels 1 and 3, a halt; its refusals. */
import { expect } from 'chai';
import net from 'node:net';
import { Engine } from '../../src/server/engine.js';
import { resolveOptions } from '../../src/server/options.js';
import { becomeReady } from '../../src/server/ready.js';
import { SingleRole } from '../../src/server/single-role.js';

describe('SingleRole', () => {
  const connect = (port: number) => new Promise<void>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve();
    });
    s.once('error', reject);
  });

  it('serves a listener from ready(), closes it in runlevel 1, opens it again in 3, and halts', async () => {
    const events: string[] = [];
    const engine = new Engine({
      config: resolveOptions({ signals: false, exitProcess: false }),
      log: () => undefined,
      control: null,
      emit: (name, value) => events.push(value === undefined || name === 'draining' ? name : `${name} ${JSON.stringify(value)}`),
      listenerCount: () => 0,
      redeploy: () => Promise.reject(new Error('no redeploy here')),
      formatResult: String,
      makeRole: (e) => new SingleRole(e),
    });
    expect(engine.role.kind).to.equal('single');
    expect(engine.role.ownsService).to.equal(true);
    expect(engine.role.refuse('telinit', 1)).to.equal(null);
    expect(engine.role.refuse('redeploy')).to.equal(null);
    expect(engine.role.refuse('scale')).to.have.property('code', 'ERR_GRACEFUL_NOT_CONFIGURED');
    expect(engine.role.refuse('scale')?.message).to.equal('scale: this service runs without workers: set the workers option (or GRACEFUL_WORKERS) to scale it');
    const server = net.createServer((s) => s.destroy());
    await engine.listen('web', server, { host: '127.0.0.1', port: 0 });
    const port = (server.address() as net.AddressInfo).port;
    await connect(port);
    await engine.lifecycle.run(() => becomeReady(engine));
    expect(engine.lifecycle.state).to.equal('ready');
    expect(engine.role.listenerInfo().map((l) => [l.name, l.open])).to.deep.equal([['web', true]]);
    expect(engine.status()).to.deep.include({ generation: 1, runlevel: 3, ready: true, state: 'ready' });
    await engine.telinit(1);
    expect(engine.lifecycle.level).to.equal(1);
    expect(await connect(port).catch((e: { code?: string }) => e.code)).to.equal('ECONNREFUSED');
    await engine.telinit(3);
    await connect(port);
    expect(engine.rotateTicketKeys(), 'no TLS listener').to.deep.equal([]);
    await engine.telinit(0);
    await engine.halted;
    expect(engine.lifecycle.state).to.equal('halted');
    expect(events).to.deep.equal(['ready', 'runlevel 1', 'runlevel 3', 'draining', 'runlevel 0', 'halt {"forced":0,"handedOverTo":null}']);
  });
});
