/** Hooks: order, the first error stops a kind, stop hooks get an abort signal at the deadline and are left behind. */
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { GracefulServer } from '../../src/index.js';
import { Hooks } from '../../src/server/hooks.js';

describe('hooks', () => {
  it('runs the hooks of a kind one after another, in registration order; the first error stops the run and is thrown', async () => {
    const hooks = new Hooks();
    const seen: string[] = [];
    hooks.add('ready', async () => {
      await new Promise((r) => setImmediate(r));
      seen.push('a');
    });
    hooks.add('ready', () => {
      seen.push('b');
    });
    hooks.add('started', () => {
      seen.push('other kind');
    });
    await hooks.run('ready');
    expect(seen).to.deep.equal(['a', 'b']);
    hooks.add('ready', () => {
      throw new Error('no');
    });
    hooks.add('ready', () => {
      seen.push('never');
    });
    seen.length = 0;
    await hooks.run('ready').then(() => expect.fail('should reject'), (err: Error) => expect(err.message).to.equal('no'));
    expect(seen).to.deep.equal(['a', 'b']);
  });

  it('runStop: done, the first error, or overran at the deadline with the signal aborted', async () => {
    const none = new Hooks();
    expect(await none.runStop(Date.now() + 1000)).to.equal('done');
    const failing = new Hooks();
    failing.add('stop', () => Promise.reject(new Error('stop failed')));
    expect(((await failing.runStop(Date.now() + 1000)) as Error).message).to.equal('stop failed');
    const slow = new Hooks();
    let signal: AbortSignal | undefined;
    slow.add('stop', (s: AbortSignal) => {
      signal = s;
      return new Promise<void>((resolve) => s.addEventListener('abort', () => setTimeout(resolve, 5000).unref()));
    });
    const started = Date.now();
    expect(await slow.runStop(Date.now() + 100)).to.equal('overran');
    expect(Date.now() - started).to.be.below(2000);
    expect(signal!.aborted).to.equal(true);
  });

  it('a stop hook after a drain that an upgraded connection held past the shutdown timeout starts live and gets a shutdown timeout of its own', async () => {
    const logs: string[] = [];
    const app = new GracefulServer({ signals: false, exitProcess: false, shutdownTimeout: 300, log: (m: string) => logs.push(m) });
    const server = http.createServer((_req, res) => res.end('ok'));
    server.on('upgrade', (_req, socket: net.Socket) => socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n'));
    // The application leaves its upgraded connection open: the drain lasts until upgradedTimeout, past the shutdown timeout.
    await app.listen('http', server, { host: '127.0.0.1', port: 0, upgradedTimeout: 1_200 });
    const seen: { liveAtStart?: boolean; startedAt?: number; abortedAt?: number; reason?: string } = {};
    app.onStop((signal) => {
      seen.liveAtStart = !signal.aborted;
      seen.startedAt = Date.now();
      // It works until told to stop.
      return new Promise<void>((resolve) => signal.addEventListener('abort', () => {
        seen.abortedAt = Date.now();
        seen.reason = (signal.reason as Error).message;
        resolve();
      }));
    });
    await app.ready();
    const client = net.connect(app.listenerInfo()[0]!.address.port as number, '127.0.0.1');
    client.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    await once(client, 'data');
    const closed = once(client, 'close');
    const halted = new Promise<{ forced: number }>((resolve) => app.once('halt', resolve));
    await app.telinit(0);
    await closed;
    expect((await halted).forced).to.equal(1);
    expect(seen.liveAtStart, 'the signal is live when the hook starts').to.equal(true);
    expect(seen.reason).to.equal('the shutdown timeout passed');
    // Timers never fire early by more than a millisecond: the hook had its whole shutdown timeout.
    expect(seen.abortedAt! - seen.startedAt!).to.be.at.least(299);
    expect(logs.map((l) => l.replace(/^graceful\[\d+\]: /, ''))).to.deep.equal([
      'halt: closed 1 connection(s) still open at their deadline (the shutdown timeout, or upgradedTimeout for upgraded connections)',
      'halt: stop hooks still running at the shutdown timeout (300 ms): going on without them',
    ]);
  });
});
