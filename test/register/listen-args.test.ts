/**
 * parseListenArgs reads listen()'s arguments as Node does: each form is
 * checked against a real server that Node itself binds with the same
 * arguments (its address and the socket file), and the names are stable.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { listenerName, parseListenArgs, type TakenListen } from '../../src/register/listen-args.js';
import { rawListen } from '../../src/raw-listen.js';
import { freePort, tmpDir } from '../helpers.js';

/** nodeBinds listens with args (callback last) the way Node does and resolves with its address. */
function nodeBinds(args: unknown[]): Promise<net.AddressInfo | string> {
  const server = net.createServer();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    (rawListen as unknown as (...a: unknown[]) => void).call(server, ...args, () => {
      const a = server.address()!;
      server.close(() => resolve(a));
    });
  });
}

describe('register/listen-args', () => {
  it('port forms: the port, host and backlog Node binds, named after the address', async () => {
    const port = await freePort();
    const forms: [unknown[], string][] = [
      [[port], `tcp:*:${port}`],
      [[String(port)], `tcp:*:${port}`],
      [[port, '127.0.0.1'], `tcp:127.0.0.1:${port}`],
      [[port, '127.0.0.1', 100], `tcp:127.0.0.1:${port}`],
      [[port, 100], `tcp:*:${port}`],
      [[{ port, host: '127.0.0.1' }], `tcp:127.0.0.1:${port}`],
      [[{ port: String(port), host: '::1' }], `tcp:[::1]:${port}`],
      [[{ port, ipv6Only: true }], `tcp:*:${port}`],
    ];
    for (const [args, name] of forms) {
      const call = parseListenArgs([...args, () => undefined]) as TakenListen;
      expect(call.kind, JSON.stringify(args)).to.equal('tcp');
      expect(call.name).to.equal(name);
      expect(call.callback).to.be.a('function');
      const a = await nodeBinds(args) as net.AddressInfo;
      expect(a.port, JSON.stringify(args)).to.equal(call.bind.port);
      if (call.bind.host) expect(a.address).to.equal(call.bind.host);
      else expect(a.address).to.equal('::');
    }
    expect((parseListenArgs([port, '127.0.0.1', 100]) as TakenListen).bind.backlog).to.equal(100);
    expect((parseListenArgs([port, 100]) as TakenListen).bind.backlog).to.equal(100);
    expect((parseListenArgs([port]) as TakenListen).callback).to.equal(undefined);
  });

  it('path forms: a UNIX socket named after its absolute path; readableAll and writableAll add to the mode', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'app.sock');
    for (const args of [[sock], [{ path: sock }], [sock, 10]]) {
      const call = parseListenArgs(args) as TakenListen;
      expect(call.kind).to.equal('unix');
      expect(call.name).to.equal(`unix:${sock}`);
      expect(await nodeBinds(args)).to.equal(sock);
    }
    expect((parseListenArgs([{ path: sock, readableAll: true, writableAll: true }]) as TakenListen).bind.extraMode).to.equal(0o666);
    expect(parseListenArgs([path.relative(process.cwd(), sock)]).kind).to.equal('unix');
    expect((parseListenArgs([path.relative(process.cwd(), sock)]) as TakenListen).name).to.equal(`unix:${sock}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('left to Node: port 0 (no argument, null, 0, { port: 0 }), a handle or descriptor, an abstract socket, what Node refuses', () => {
    for (const args of [[], [null], [0], ['0'], [{ port: 0 }], [undefined, () => undefined]]) {
      expect(parseListenArgs(args).kind, JSON.stringify(args)).to.equal('port0');
    }
    expect(parseListenArgs([{ fd: 3 }]).kind).to.equal('handle');
    expect(parseListenArgs([{ _handle: {} }]).kind).to.equal('handle');
    expect(parseListenArgs(['\0abstract']).kind).to.equal('handle');
    for (const args of [[{}], [-1], [70000], [{ port: 'x' }], [{ port: -5 }], [true]]) {
      expect(parseListenArgs(args).kind, JSON.stringify(args)).to.equal('invalid');
    }
  });

  it('listenerName: every address is *, an IPv6 host is bracketed', () => {
    expect(listenerName({ port: 80 })).to.equal('tcp:*:80');
    expect(listenerName({ port: 80, host: '' })).to.equal('tcp:*:80');
    expect(listenerName({ port: 80, host: 'localhost' })).to.equal('tcp:localhost:80');
    expect(listenerName({ port: 80, host: '::' })).to.equal('tcp:[::]:80');
    expect(listenerName({ path: '/run/a.sock' })).to.equal('unix:/run/a.sock');
  });
});
