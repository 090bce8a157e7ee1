/** cli/reply.ts: how the CLI and its shell print a reply, and the exit code a refusal means. */
import { expect } from 'chai';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { ControlClient } from '../../src/control/client.js';
import { Exit } from '../../src/cli/connect.js';
import { EXIT_STREAM_ENDED, humanStatus, requestOn } from '../../src/cli/reply.js';
import { tmpDir } from '../helpers.js';

/** scripted: a control server on a real UNIX socket that answers each request line with the next script entry. */
async function scripted(script: string[][]): Promise<{ client: ControlClient; close(): Promise<void> }> {
  const p = path.join(tmpDir(), 'r.sock');
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    readline.createInterface({ input: s }).on('line', () => s.write(`${(script.shift() ?? []).join('\n')}\n`));
  });
  await new Promise<void>((r) => server.listen(p, r));
  const client = await ControlClient.connect(p);
  return {
    client,
    close: () => new Promise<void>((r) => {
      client.close();
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

async function exitOf(p: Promise<unknown>): Promise<Exit> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).to.be.instanceOf(Exit);
  return e as Exit;
}

describe('cli/reply', () => {
  it('prints events and the result as lines for people, or as JSON lines with --json; exit 0', async () => {
    const s = await scripted([
      ['{"event":"spawned","pid":7}', '{"event":"ready","pid":7,"ms":12}', '{"ok":true,"result":{"pid":7}}'],
      ['{"event":"output","line":"hello"}', '{"ok":true,"result":{"a":1,"b":"x"}}'],
      ['{"ok":true}'],
    ]);
    const out: string[] = [];
    expect(await requestOn(s.client, 'redeploy', [], { timeout: 5000 }, (l) => out.push(l))).to.equal(0);
    expect(out).to.deep.equal(['spawned pid 7', 'ready: pid 7 after 12 ms', 'done: pid 7 is serving']);
    out.length = 0;
    expect(await requestOn(s.client, 'custom', [], { timeout: 5000 }, (l) => out.push(l))).to.equal(0);
    expect(out).to.deep.equal(['hello', 'a: 1', 'b: x']);
    out.length = 0;
    expect(await requestOn(s.client, 'custom', [], { json: true, timeout: 5000 }, (l) => out.push(l))).to.equal(0);
    expect(out).to.deep.equal(['{"ok":true,"result":null}']);
    await s.close();
  });

  it('a refusal for wrong words exits 2, any other exits 1; --json prints the error line too', async () => {
    const s = await scripted([
      ['{"ok":false,"error":{"code":"ERR_GRACEFUL_UNKNOWN_COMMAND","message":"unknown command \\"x\\": type help for the list"}}'],
      ['{"ok":false,"error":{"code":"ERR_GRACEFUL_INVALID_RUNLEVEL","message":"bad runlevel"}}'],
      ['{"ok":false,"error":{"code":"ERR_GRACEFUL_NOT_READY","message":"not ready"}}'],
    ]);
    const out: string[] = [];
    const e1 = await exitOf(requestOn(s.client, 'x', [], { timeout: 5000 }, (l) => out.push(l)));
    expect(e1).to.include({ code: 2, message: 'error: unknown command "x": type help for the list' });
    expect(out).to.deep.equal([]);
    const e2 = await exitOf(requestOn(s.client, 'telinit', ['9'], { json: true, timeout: 5000 }, (l) => out.push(l)));
    expect(e2).to.include({ code: 2, message: 'error: bad runlevel' });
    expect(out).to.deep.equal(['{"ok":false,"error":{"code":"ERR_GRACEFUL_INVALID_RUNLEVEL","message":"bad runlevel"}}']);
    const e3 = await exitOf(requestOn(s.client, 'redeploy', [], { timeout: 5000 }, () => undefined));
    expect(e3).to.include({ code: 1, message: 'error: not ready' });
    await s.close();
  });

  it('a stream the server ended (ERR_GRACEFUL_STREAM_ENDED) exits EXIT_STREAM_ENDED (4), after the lines it streamed', async () => {
    const s = await scripted([
      ['{"event":"output","line":"pid 7: 3 request(s)"}', '{"ok":false,"error":{"code":"ERR_GRACEFUL_STREAM_ENDED","message":"the stream ended: pid 7 halts"}}'],
    ]);
    const out: string[] = [];
    const e = await exitOf(requestOn(s.client, 'requests', [], { timeout: 5000 }, (l) => out.push(l)));
    expect(e).to.include({ code: EXIT_STREAM_ENDED, message: 'error: the stream ended: pid 7 halts' });
    expect(EXIT_STREAM_ENDED).to.equal(4);
    expect(out).to.deep.equal(['pid 7: 3 request(s)']);
    await s.close();
  });

  it('a server that goes away or does not answer in time exits 1 with the reason', async () => {
    const s = await scripted([]);
    const e = await exitOf(requestOn(s.client, 'status', [], { timeout: 50 }, () => undefined));
    expect(e).to.include({ code: 1, message: 'error: no answer within 50 ms' });
    await s.close();
    const e2 = await exitOf(requestOn(s.client, 'status', [], { timeout: 5000 }, () => undefined));
    expect(e2.code).to.equal(1);
    expect(e2.message).to.equal('error: the server closed the connection before answering');
  });

  it('humanStatus gives sizes and durations units, listener states in words and workers as a table', () => {
    expect(humanStatus(null)).to.equal(null);
    expect(humanStatus([1])).to.deep.equal([1]);
    expect(humanStatus({ rss: 512, heapUsed: 1536, heapTotal: 5 * 1024 * 1024, uptime: 42, supervisorUptime: 3725, nested: { external: 2048, uptime: 90061 } })).to.deep.equal({
      rss: '512 B', heapUsed: '1.5 KiB', heapTotal: '5.0 MiB', uptime: '42 s', supervisorUptime: '1 h 2 min 5 s', nested: { external: '2.0 KiB', uptime: '1 d 1 h 1 min' },
    });
    const states = { web: { idle: 2, headers: 0, request: 1, pipelined: 0, upgraded: 0, http2: 0, http2Streams: 0, tlsHandshake: 0, tlsBeforeRequest: 0, other: 0, handingOver: 0 } };
    expect(humanStatus({ listeners: [{ name: 'web' }, { name: 'other' }], connectionStates: states })).to.deep.equal({
      listeners: [{ name: 'web', states: '2 idle, 1 in a request' }, { name: 'other', states: '-' }],
    });
    expect(humanStatus({ workers: [{ id: 1, pid: 100, state: 'ready', uptime: 61, restarts: 0, connections: 3, requests: 10, rss: 2 * 1024 * 1024 }, { id: 2, pid: null, state: 'starting' }] })).to.deep.equal({
      workers: [
        'id  pid  state     uptime     restarts  connections  requests  rss',
        '1   100  ready     1 min 1 s  0         3            10        2.0 MiB',
        '2   -    starting  -          -         -            -         -',
      ],
    });
  });
});
