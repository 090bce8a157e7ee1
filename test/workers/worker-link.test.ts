/**
 * worker-link.ts over real UNIX socket pairs, both ends in this process: the
 * requests (stats, task, run with its output lines, cancel, handover) and their
 * answers, the unasked reports, the line framing and its bounds (a line too
 * long, not JSON, without an id ends the link; what a worker sends is kept
 * under the bound), a slow reader (a command that waits on drain goes on,
 * one that writes on regardless is stopped), and a peer that closes.
 */
import { expect } from 'chai';
import net from 'node:net';
import { WorkerFailedError } from '../../src/errors.js';
import { PrimaryLink, serveLink, type WorkerHandlers } from '../../src/workers/worker-link.js';
import { socketPair } from '../../src/workers/socket-pair.js';
import { until } from '../helpers.js';

const MAX_LINE = 1024 * 1024;

type Run = WorkerHandlers['run'];

/** link: a primary's end and a worker's end of one real socket pair. */
function link(handlers: Partial<WorkerHandlers> = {}) {
  const pair = socketPair('graceful:link');
  const logs: string[] = [];
  const closed: PrimaryLink[] = [];
  const primary = new PrimaryLink(pair.write.take(), 'worker 0 (pid 1)', (m) => logs.push(`primary: ${m}`), (l) => closed.push(l));
  const worker = serveLink(pair.read.take(), {
    stats: () => ({ connections: 2 }),
    task: async (name, args) => `${name} ${args.join(',')}`,
    run: async () => null,
    ...handlers,
  }, (m) => logs.push(`worker: ${m}`));
  return { primary, worker, logs, closed };
}

/** rawPeer: a primary's end whose peer is a raw socket the test writes to. */
function rawPeer() {
  const pair = socketPair('graceful:link');
  const logs: string[] = [];
  const closed: PrimaryLink[] = [];
  const primary = new PrimaryLink(pair.write.take(), 'worker 1 (pid 2)', (m) => logs.push(m), (l) => closed.push(l));
  const peer = new net.Socket({ fd: pair.read.take(), readable: true, writable: true });
  return { primary, peer, logs, closed };
}

/** deferred: a promise and what resolves it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

const codeOf = (p: Promise<unknown>) => p.then(() => null, (e: Error & { code?: string }) => e);

describe('workers/worker-link', () => {
  it('handover: the handler of the worker gets where to hand its connections; a worker without one answers with a coded error', async () => {
    const got: Record<string, unknown>[] = [];
    const { primary, worker } = link({ handOver: async (target) => (got.push(target), true) });
    expect(await primary.request('handover', { pid: 912, adopt: '/tmp/x/adopt.sock', adoptListeners: 'http', adoptSockets: '' })).to.equal(true);
    expect(got).to.have.length(1);
    expect(got[0]).to.include({ op: 'handover', pid: 912, adopt: '/tmp/x/adopt.sock', adoptListeners: 'http', adoptSockets: '' });
    primary.close();
    worker.close();
    const bare = link();
    const err = await codeOf(bare.primary.request('handover', { pid: 1 }));
    expect(err).to.include({ code: 'ERR_GRACEFUL_INVALID_ARGUMENT' });
    bare.primary.close();
    bare.worker.close();
  });

  it('answers stats, task and run; output lines come before the result; a coded error keeps its code', async () => {
    const { primary, worker } = link({
      run: async (name, args, json, peer, write) => {
        write(`hello ${args[0]}`);
        write(`json=${json} peer=${JSON.stringify(peer)}`);
        if (name === 'fail') throw Object.assign(new Error('no such thing'), { code: 'ERR_APP_NOPE' });
        return { done: name };
      },
    });
    try {
      expect(await primary.request('stats')).to.deep.equal({ connections: 2 });
      expect(await primary.request('task', { name: 'reopen', args: ['a', 'b'] })).to.equal('reopen a,b');
      const lines: string[] = [];
      expect(await primary.request('run', { name: 'greet', args: ['you'], json: true, peer: { uid: 0 } }, (l) => lines.push(l))).to.deep.equal({ done: 'greet' });
      expect(lines).to.deep.equal(['hello you', 'json=true peer={"uid":0}']);
      const err = await codeOf(primary.request('run', { name: 'fail', args: [] }));
      expect(err?.code).to.equal('ERR_APP_NOPE');
      expect(err?.message).to.equal('worker 0 (pid 1): no such thing');
      const unknown = await codeOf(primary.request('reboot'));
      expect(unknown?.code).to.equal('ERR_GRACEFUL_INVALID_ARGUMENT');
      expect(unknown?.message).to.equal('worker 0 (pid 1): unknown link operation "reboot"');
    } finally {
      worker.close();
      primary.close();
    }
  });

  it('ping: a worker answers from its event loop and lastHeard moves; a silent peer gets one ping at a time and lastHeard stays', async () => {
    const { primary, worker } = link();
    const before = primary.lastHeard;
    await until(() => Date.now() > before, 5_000, 'the clock to move past lastHeard'); // so that a later lastHeard is a larger one
    primary.ping();
    await until(() => primary.lastHeard > before, 5_000, 'the answer to the ping');
    worker.close();
    primary.close();

    const silent = rawPeer();
    const lines: string[] = [];
    silent.peer.setEncoding('utf8');
    silent.peer.on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
    const heard = silent.primary.lastHeard;
    silent.primary.ping();
    silent.primary.ping();
    await until(() => lines.length >= 1, 5_000, 'the ping');
    // A request written after the two pings comes after any second ping on the stream: once it is read, no second ping was sent.
    const stats = silent.primary.request('stats').catch(() => undefined);
    await until(() => lines.length >= 2, 5_000, 'the request after the pings');
    expect(lines.map((l) => JSON.parse(l))).to.deep.equal([{ id: 1, op: 'ping' }, { id: 2, op: 'stats' }]);
    expect(silent.primary.lastHeard).to.equal(heard);
    // Anything the worker sends shows its loop ran: a report too.
    silent.peer.write('{"id":0,"connections":1}\n');
    await until(() => silent.primary.lastHeard > heard, 5_000, 'the report');
    silent.peer.destroy();
    silent.primary.close();
    await stats;
  });

  it('reports: the counts of the moment, at most every 50 ms, and once more as the worker closes; then the primary\'s end closes', async () => {
    const { primary, worker, closed, logs } = link();
    let connections = 1;
    worker.report(() => ({ connections, listeners: { http: { requests: 5, connections } } }));
    connections = 4; // read when the report goes
    await until(() => primary.connections === 4, 5000, 'the report');
    expect(primary.listeners).to.deep.equal({ http: { requests: 5, connections: 4 } });
    expect(primary.moved).to.deep.equal({ handedOver: 0, drained: 0, forced: 0 }); // none reported yet
    worker.report(() => ({ connections: 0, listeners: { http: { requests: 9, connections: 0 } }, moved: { handedOver: 3, drained: 1, forced: 0 } }));
    worker.close(); // sends the pending report at once, then ends
    await until(() => closed.length === 1, 5000, 'the link to close');
    expect(closed[0]).to.equal(primary);
    expect(primary.listeners).to.deep.equal({ http: { requests: 9, connections: 0 } });
    expect(primary.moved).to.deep.equal({ handedOver: 3, drained: 1, forced: 0 });
    expect(logs).to.deep.equal([]); // a clean end is not logged
    const gone = await codeOf(primary.request('stats'));
    expect(gone).to.be.instanceOf(WorkerFailedError);
    expect(gone?.message).to.equal('worker 0 (pid 1) is gone (it exited)');
  });

  it('reports: counts of the drains that are not whole numbers from 0 are ignored, the last good ones kept', async () => {
    const { primary, worker, closed } = link();
    worker.report(() => ({ connections: 1, moved: { handedOver: 2, drained: 0, forced: 0 } }));
    await until(() => primary.moved.handedOver === 2, 5000, 'the report');
    for (const moved of [{ handedOver: -1, drained: 0, forced: 0 }, { handedOver: 1.5, drained: 0, forced: 0 }, { handedOver: 1 }, 'x', null]) {
      worker.report(() => ({ connections: 2, moved }));
      await until(() => primary.connections === 2, 5000, 'the report');
      expect(primary.moved, JSON.stringify(moved)).to.deep.equal({ handedOver: 2, drained: 0, forced: 0 });
      worker.report(() => ({ connections: 1 }));
      await until(() => primary.connections === 1, 5000, 'the report');
    }
    worker.close();
    await until(() => closed.length === 1, 5000, 'the link to close');
  });

  it('a cancelled request: the worker\'s command sees its signal aborted ("the client left"), the promise rejects with the reason', async () => {
    let seen: unknown = null;
    const started = deferred();
    const { primary, worker } = link({
      run: (async (_n, _a, _j, _p, _w, _d, signal) => {
        started.resolve();
        await new Promise((r) => signal.addEventListener('abort', r));
        seen = (signal.reason as Error).message;
        return 'late';
      }) as Run,
    });
    try {
      const abort = new AbortController();
      const pending = codeOf(primary.request('run', { name: 'long', args: [] }, undefined, abort.signal));
      await started.promise;
      abort.abort(new Error('client gone'));
      expect((await pending)?.message).to.equal('client gone');
      await until(() => seen !== null, 5000, 'the worker to see the cancel');
      expect(seen).to.equal('the client left');
      expect(await primary.request('stats')).to.deep.equal({ connections: 2 }); // the link serves on
    } finally {
      worker.close();
      primary.close();
    }
  });

  it('a worker keeps what it sends under the bound: a long output line is cut, a result too large becomes an error', async () => {
    const { primary, worker } = link({
      run: (async (name, _a, _j, _p, write) => {
        if (name === 'line') {
          write('x'.repeat(MAX_LINE + 10));
          return 'ok';
        }
        return 'y'.repeat(MAX_LINE);
      }) as Run,
    });
    try {
      const lines: string[] = [];
      expect(await primary.request('run', { name: 'line', args: [] }, (l) => lines.push(l))).to.equal('ok');
      expect(lines).to.have.length(1);
      expect(lines[0]).to.equal(`${'x'.repeat(MAX_LINE / 4)}... (cut: a line over ${MAX_LINE / 4} characters)`);
      const err = await codeOf(primary.request('run', { name: 'big', args: [] }));
      expect(err?.code).to.equal('ERR_GRACEFUL_COMMAND_FAILED');
      expect(err?.message).to.match(/^worker 0 \(pid 1\): the result is \d+ bytes as JSON, over the 1048576 a worker may send its primary: return less, or stream it with ctx.write$/);
    } finally {
      worker.close();
      primary.close();
    }
  });

  for (const [what, send, why] of [
    ['a line over the bound', `{"id":0,"pad":"${'z'.repeat(MAX_LINE + 1)}`, `a line over ${MAX_LINE} bytes`],
    ['a line that is not JSON', 'hello\n', 'a line that is not JSON: hello'],
    ['a message without an id', '{"result":1}\n', 'a message without an id: {"result":1}'],
  ] as const) {
    it(`${what} ends the link, logged, and fails what was pending`, async () => {
      const { primary, peer, logs, closed } = rawPeer();
      const pending = codeOf(primary.request('stats'));
      peer.write(send);
      const err = await pending;
      expect(err).to.be.instanceOf(WorkerFailedError);
      expect(err?.message).to.equal(`worker 1 (pid 2) ended before it answered (${why})`);
      expect(logs).to.deep.equal([`worker 1 (pid 2): link closed: ${why}`]);
      expect(closed).to.have.length(1);
      await new Promise((r) => (peer.destroyed ? r(null) : peer.once('close', r).destroy()));
    });
  }

  it('a peer that closes: what was pending fails with WorkerFailedError, nothing is logged; the worker\'s commands see "the primary is gone"', async () => {
    const { primary, peer, logs } = rawPeer();
    const pending = codeOf(primary.request('task', { name: 'x', args: [] }));
    await new Promise((r) => peer.once('data', r)); // the request went out
    peer.end();
    expect((await pending)?.message).to.equal('worker 1 (pid 2) ended before it answered (it exited)');
    expect(logs).to.deep.equal([]);
    peer.destroy();

    let reason: unknown = null;
    const started = deferred();
    const { primary: p2, worker, logs: logs2 } = link({
      run: (async (_n, _a, _j, _p, _w, _d, signal) => {
        started.resolve();
        await new Promise((r) => signal.addEventListener('abort', r));
        reason = (signal.reason as Error).message;
      }) as Run,
    });
    void p2.request('run', { name: 'long', args: [] }).catch(() => undefined);
    await started.promise;
    p2.close();
    await until(() => reason !== null, 5000, 'the command to be aborted');
    expect(reason).to.equal('the primary is gone');
    expect(logs2).to.deep.equal([]);
    worker.close();
  });

  it('a slow reader: a command that waits on drain delivers every line; one that writes on regardless is stopped past 4 MiB (ERR_GRACEFUL_SLOW_CLIENT)', async () => {
    const line = 'l'.repeat(64 * 1024);
    let stoppedAt = 0;
    const { primary, worker } = link({
      run: (async (name, _a, _j, _p, write, drain, signal) => {
        for (let i = 0; i < 200; i++) {
          if (!write(`${i} ${line}`)) {
            if (signal.aborted) {
              stoppedAt = i;
              return 'stopped';
            }
            if (name === 'polite') await drain();
          }
        }
        return 'all sent';
      }) as Run,
    });
    try {
      let got = 0;
      const firstLine = deferred();
      const polite = primary.request('run', { name: 'polite', args: [] }, () => {
        if (got++ === 0) firstLine.resolve();
      });
      await firstLine.promise;
      primary.pause(); // the primary's client is behind
      await new Promise((r) => setImmediate(r));
      primary.resume();
      expect(await polite).to.equal('all sent');
      expect(got).to.equal(200);

      primary.pause();
      const rude = codeOf(primary.request('run', { name: 'rude', args: [] }));
      await until(() => stoppedAt > 0, 10_000, 'the command to be stopped');
      primary.resume();
      const err = await rude;
      expect(err?.code).to.equal('ERR_GRACEFUL_SLOW_CLIENT');
      expect(err?.message).to.equal('worker 0 (pid 1): stopped: its output was not read (over 4194304 bytes behind)');
      expect(stoppedAt).to.be.above(4 * MAX_LINE / line.length).and.below(200);
    } finally {
      worker.close();
      primary.close();
    }
  });
});
