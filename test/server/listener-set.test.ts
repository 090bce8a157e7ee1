/** server/listener-set.ts: every ManagedListener of an instance, acted on together (real servers, port 0). */
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { ManagedListener } from '../../src/server/listeners.js';
import { Listeners } from '../../src/server/listener-set.js';
import { fdCount, tmpDir } from '../helpers.js';

function get(port: number, agent: http.Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(body));
    }).on('error', reject);
  });
}

describe('server/listener-set', () => {
  let before: number;
  beforeEach(() => {
    before = fdCount();
  });

  function make(dir: string): { set: Listeners; web: ManagedListener; sock: ManagedListener; file: string } {
    const set = new Listeners();
    const web = new ManagedListener('web', http.createServer((_req, res) => res.end('hi')), { host: '127.0.0.1', port: 0 });
    const file = path.join(dir, 'l.sock');
    const sock = new ManagedListener('sock', net.createServer((s) => s.end('x')), { path: file });
    set.add(web);
    set.add(sock);
    return { set, web, sock, file };
  }

  it('startAll binds every listener; status, info and states describe them', async () => {
    const { set, web, sock, file } = make(tmpDir());
    expect([...set].map((l) => l.name)).to.deep.equal(['web', 'sock']);
    expect(set.get('web')).to.equal(web);
    expect(set.get('none')).to.equal(undefined);
    await set.startAll();
    const port = (web.server.address() as net.AddressInfo).port;
    expect(set.status()).to.deep.equal([
      { name: 'web', state: 'open', kind: 'tcp', host: '127.0.0.1', port, fd: web.fd(), connections: 0, systemd: false },
      { name: 'sock', state: 'open', kind: 'unix', path: file, fd: sock.fd(), connections: 0, systemd: false },
    ]);
    const info = set.info();
    expect(info.map((i) => [i.name, i.open, i.draining, i.connections])).to.deep.equal([['web', true, false, 0], ['sock', true, false, 0]]);
    expect(Object.keys(set.states())).to.deep.equal(['web', 'sock']);
    expect(set.closedPorts()).to.deep.equal({});
    set.stopAll(true);
    expect(fdCount()).to.equal(before);
  });

  it('counts requests and connections; owner finds the listener of a connection', async () => {
    const { set, web } = make(tmpDir());
    await set.startAll();
    const port = (web.server.address() as net.AddressInfo).port;
    const accepted = new Promise<net.Socket>((r) => web.server.once('connection', r));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    expect(await get(port, agent)).to.equal('hi');
    expect(await get(port, agent)).to.equal('hi');
    expect(set.requestCount()).to.equal(2);
    expect(set.connectionCount()).to.equal(1);
    const serverSide = await accepted;
    expect(set.owner(serverSide)).to.equal(web);
    expect(set.owner(new net.Socket())).to.equal(undefined);
    const closed = new Promise((r) => serverSide.once('close', r));
    agent.destroy();
    await closed;
    expect(await set.drain(true, 0, 5000)).to.equal(0);
    expect(set.moveCounts()).to.deep.equal({ handedOver: 0, drained: 0, forced: 0 });
    expect(fdCount()).to.equal(before);
  });

  it('stopAll closes them (closedPorts remembers the TCP ports); startAll binds the same port again', async () => {
    const { set, web, file } = make(tmpDir());
    await set.startAll();
    const port = (web.server.address() as net.AddressInfo).port;
    set.stopAll(false);
    expect(set.status().map((s) => [s.name, s.state, s.fd])).to.deep.equal([['web', 'closed', null], ['sock', 'closed', null]]);
    expect(set.status()[1]!.path).to.equal(file);
    expect(set.closedPorts()).to.deep.equal({ 'port:web': port });
    await set.startAll();
    expect((web.server.address() as net.AddressInfo).port).to.equal(port);
    expect(set.status().map((s) => s.state)).to.deep.equal(['open', 'open']);
    set.stopAll(true);
    expect(fdCount()).to.equal(before);
  });

  it('keepSpares and takeBack listen again on the duplicates; dropSpares closes them', async () => {
    const { set, web } = make(tmpDir());
    await set.startAll();
    const port = (web.server.address() as net.AddressInfo).port;
    set.keepSpares();
    expect(fdCount()).to.equal(before + 4); // two listening sockets, two duplicates
    set.stopAll(false);
    const logs: string[] = [];
    await set.takeBack((m) => logs.push(m));
    expect(logs).to.deep.equal([]);
    expect(set.status().map((s) => s.state)).to.deep.equal(['open', 'open']);
    const agent = new http.Agent();
    expect(await get(port, agent)).to.equal('hi');
    agent.destroy();
    set.keepSpares();
    set.dropSpares();
    set.stopAll(true);
    await new Promise((r) => setImmediate(r));
    expect(fdCount()).to.equal(before);
  });

  it('handingOver and handingOverSockets name the listeners with those options', () => {
    const set = new Listeners();
    set.add(new ManagedListener('a', http.createServer(), { port: 0, handOver: true }));
    set.add(new ManagedListener('b', net.createServer(), { port: 0, handOverSockets: true }));
    set.add(new ManagedListener('c', http.createServer(), { port: 0 }));
    expect(set.handingOver()).to.deep.equal(['a']);
    expect(set.handingOverSockets()).to.deep.equal(['b']);
  });
});
