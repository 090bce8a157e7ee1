/** server/stats.ts: the live statistics of the `stats` command, and what of them survives a redeploy. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { RedeployFailedError } from '../../src/errors.js';
import { protocolOf, Stats, STATS_LAST_REDEPLOYS, type Counts } from '../../src/server/stats.js';
import { root } from '../helpers.js';

const failed = (reason: 'exit' | 'taken-back', pid: number, ms: number) => ({
  type: 'failed' as const,
  error: new RedeployFailedError('x', { reason, pid, stderr: [] }),
  ms,
});

describe('server/stats', () => {
  it('protocolOf tells each kind of server apart', () => {
    expect(protocolOf(net.createServer())).to.equal('tcp');
    expect(protocolOf(tls.createServer())).to.equal('tls');
    expect(protocolOf(http.createServer())).to.equal('http');
    expect(protocolOf(https.createServer())).to.equal('https');
    expect(protocolOf(http2.createServer() as unknown as net.Server)).to.equal('h2c');
    expect(protocolOf(http2.createSecureServer() as unknown as net.Server)).to.equal('h2');
  });

  it('protocolOf tells them apart where the application loads each module after the package', () => {
    // A fresh process: the package first, then each server module, as an application's imports may go.
    const program = `
      const { protocolOf } = await import(${JSON.stringify(`file://${path.join(root, 'dist/src/server/stats.js')}`)});
      const got = [];
      for (const [mod, make] of [['net', (m) => [m.createServer()]], ['http', (m) => [m.createServer()]], ['tls', (m) => [m.createServer()]],
        ['https', (m) => [m.createServer()]], ['http2', (m) => [m.createServer(), m.createSecureServer()]]]) {
        const m = (await import('node:' + mod)).default;
        for (const server of make(m)) got.push(protocolOf(server));
      }
      console.log(JSON.stringify(got));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', program], { encoding: 'utf8' });
    expect(r.stderr).to.equal('');
    expect(JSON.parse(r.stdout)).to.deep.equal(['tcp', 'http', 'tls', 'https', 'h2c', 'h2']);
  });

  it('watch counts the connections and requests of a real HTTP server', async () => {
    const stats = new Stats();
    const server = http.createServer((_req, res) => res.end('ok'));
    stats.watch('web', server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        http.get({ port, host: '127.0.0.1', agent }, (res) => res.resume().on('end', resolve)).on('error', reject);
      });
    }
    agent.destroy();
    expect(stats.own()).to.deep.equal({ web: { requests: 3, connections: 1 } });
    const snap = stats.snapshot([{ name: 'web', open: true, connections: 0, address: { host: '127.0.0.1', port } }]);
    expect(snap).to.deep.include({ pid: process.pid, redeploys: { done: 0, failed: 0, takenBack: 0 }, last: [] });
    expect(snap.listeners).to.deep.equal([{ name: 'web', protocol: 'http', open: true, host: '127.0.0.1', port, requests: 3, connections: 1, openConnections: 0 }]);
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('watch with count false only learns the protocol; workers add their counts; retire keeps them', () => {
    const stats = new Stats();
    stats.watch('web', http.createServer(), false);
    let live: Record<string, Counts>[] = [{ web: { requests: 5, connections: 2 } }, { web: { requests: 1, connections: 1 }, other: { requests: 9, connections: 9 } }];
    stats.fromWorkers(() => live);
    expect(stats.own()).to.deep.equal({});
    stats.retire({ web: { requests: 10, connections: 4 }, bad: { requests: 'x', connections: 1 } as never });
    const snap = stats.snapshot([{ name: 'web', open: true, connections: 3, address: {} }]);
    expect(snap.listeners).to.deep.equal([{ name: 'web', protocol: 'http', open: true, requests: 16, connections: 7, openConnections: 3 }]);
    live = [];
    expect((stats.snapshot([{ name: 'web', open: false, connections: 0, address: {} }]).listeners as { requests: number }[])[0]!.requests).to.equal(10);
    expect(stats.own()).to.deep.equal({ web: { requests: 10, connections: 4 } });
  });

  it('state carries the totals to the new instance, which counts the redeploy done at ready', () => {
    const old = new Stats();
    old.retire({ web: { requests: 7, connections: 2 } });
    const state = old.state();
    expect(state).to.have.property('stats').that.is.a('string');
    const fresh = new Stats();
    fresh.restore(state);
    expect(fresh.own()).to.deep.equal({ web: { requests: 7, connections: 2 } });
    fresh.ready();
    const snap = fresh.snapshot([]);
    expect(snap.since).to.equal(JSON.parse(state.stats as string).since);
    expect(snap.redeploys).to.deep.equal({ done: 1, failed: 0, takenBack: 0 });
    const [t] = snap.last as { pid: number; result: string; readyMs: number; at: string }[];
    expect(t).to.include({ pid: process.pid, result: 'done' });
    expect(t!.readyMs).to.be.at.least(0);
    fresh.ready(); // once only
    expect((fresh.snapshot([]).redeploys as { done: number }).done).to.equal(1);
  });

  it('restore ignores a bad state: the totals start over', () => {
    for (const state of [{}, { stats: 5 }, { stats: 'not json' }, { stats: 'null' }, { stats: '{"listeners":{"a":{"requests":"x","connections":1}},"redeploys":{"done":-1,"failed":0,"takenBack":0}}' }]) {
      const s = new Stats();
      s.restore(state as never);
      expect(s.own()).to.deep.equal({});
      expect(s.snapshot([]).redeploys).to.deep.equal({ done: 0, failed: 0, takenBack: 0 });
      s.ready(); // no redeploy started this one
      expect(s.snapshot([]).last).to.deep.equal([]);
    }
  });

  it('onRedeploy records failures and take-backs, keeping the last STATS_LAST_REDEPLOYS', () => {
    const s = new Stats();
    s.onRedeploy({ type: 'spawned', pid: 100, ms: 5, timeoutMs: 60_000 });
    s.onRedeploy({ type: 'ready', pid: 100, ms: 40 });
    s.onRedeploy(failed('taken-back', 100, 60));
    s.onRedeploy(failed('exit', 101, 10)); // no spawned event: the pid comes from the failure
    let snap = s.snapshot([]);
    expect(snap.redeploys).to.deep.equal({ done: 0, failed: 2, takenBack: 1 });
    const last = snap.last as { pid: number; result: string; readyMs: number | null; reason: string }[];
    expect(last.map(({ pid, result, readyMs, reason }) => ({ pid, result, readyMs, reason }))).to.deep.equal([
      { pid: 100, result: 'taken-back', readyMs: 40, reason: 'taken-back' },
      { pid: 101, result: 'failed', readyMs: null, reason: 'exit' },
    ]);
    s.onRedeploy({ type: 'spawned', pid: 102, ms: 1, timeoutMs: 60_000 });
    s.onRedeploy({ type: 'done', pid: 102, forced: 0, handedOver: 0, drained: 0, ms: 50 });
    for (let i = 0; i < 10; i++) s.onRedeploy(failed('exit', 200 + i, 1));
    snap = s.snapshot([]);
    expect(STATS_LAST_REDEPLOYS).to.equal(5);
    expect((snap.last as { pid: number }[]).map((t) => t.pid)).to.deep.equal([205, 206, 207, 208, 209]);
    expect(snap.redeploys).to.deep.equal({ done: 0, failed: 12, takenBack: 1 });
  });

  it('state is left out when it would not fit a hand-off message', () => {
    const s = new Stats();
    for (let i = 0; i < 100; i++) s.retire({ [`listener-with-a-long-name-${i}`]: { requests: i, connections: i } });
    expect(s.state()).to.deep.equal({});
  });
});
