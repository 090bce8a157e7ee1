/**
 * One renderer of redeploy events and results: the control socket's plain
 * mode, the supervisor's relay and the CLI print the same line for the same
 * event, and the line says only what the event says.
 */
import { expect } from 'chai';
import net from 'node:net';
import path from 'node:path';
import { ControlClient, ControlServer, type ControlEvent, type ControlTarget } from '../../src/index.js';
import { addBuiltins } from '../../src/control/builtins.js';
import { formatCommandResult, formatResult, renderEvent } from '../../src/control/render.js';
import { tmpDir } from '../helpers.js';

/** plainLines sends one plain-mode line and collects the reply up to ok / error. */
function plainLines(sock: string, line: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let buf = '';
    const s = net.createConnection(sock, () => s.write(`${line}\n`));
    s.setEncoding('utf8');
    s.on('data', (c: string) => {
      buf += c;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
        if (lines.at(-1) === 'ok' || lines.at(-1)!.startsWith('error: ')) {
          s.end();
          resolve(lines);
        }
      }
    });
    s.on('error', reject);
  });
}

describe('render', () => {
  it('renderEvent: one line per event, from the event alone', () => {
    expect(renderEvent({ event: 'predecessor-committed', predecessor: 4242, ms: 2 })).to.equal('pid 4242 (the instance before) ended its take-back window after 2 ms');
    expect(renderEvent({ event: 'spawned', pid: 4250, ms: 3 })).to.equal('spawned pid 4250');
    expect(renderEvent({ event: 'ready', pid: 4250, ms: 162 })).to.equal('ready: pid 4250 after 162 ms');
    expect(renderEvent({ event: 'draining', pid: 4250, ms: 170, connections: 3 })).to.equal('draining 3 connection(s)');
    expect(renderEvent({ event: 'done', pid: 4250, ms: 900 })).to.equal('done after 900 ms');
    expect(renderEvent({ event: 'failed', ms: 12 })).to.equal('failed after 12 ms');
    expect(renderEvent({ event: 'output', line: 'tick 1' })).to.equal('tick 1');
    expect(renderEvent({ event: 'served', pid: 4250 })).to.equal('-- now served by pid 4250');
    expect(renderEvent({ event: 'served', pid: 4250, dropped: 12, from: 4242 })).to.equal('-- now served by pid 4250 (12 line(s) of pid 4242 dropped: the client read too slowly)');
    expect(renderEvent({ event: 'other', x: 1 })).to.equal('{"event":"other","x":1}');
  });

  it('formatResult / formatCommandResult: strings, lists, objects; a redeploy ends with the pid that serves', () => {
    expect(formatResult(undefined)).to.deep.equal([]);
    expect(formatResult('a\nb')).to.deep.equal(['a', 'b']);
    expect(formatResult(['x', { y: 1 }])).to.deep.equal(['x', '{"y":1}']);
    // A flat object in a result (status's handover) reads as words, a deeper one as JSON.
    expect(formatResult({ handover: { handedOver: 0, drained: 3, adopted: null }, none: {}, deep: { a: { b: 1 } } })).to.deep.equal([
      'handover: handedOver 0, drained 3, adopted -', 'none: -', 'deep: {"a":{"b":1}}',
    ]);
    expect(formatResult({ pid: 7, listeners: ['a', 'b'], memory: { rss: 1 } })).to.deep.equal(['pid: 7', 'listeners:', '  a', '  b', 'memory: rss 1']);
    expect(formatResult({ listeners: [{ name: 'http', port: 80, path: null }, { name: 'admin', port: 9 }] })).to.deep.equal([
      'listeners:', '  name   port  path', '  http   80    -', '  admin  9     -',
    ]);
    expect(formatCommandResult('restart', { pid: 9, readyMs: 4 })).to.deep.equal(['done: pid 9 is serving']);
    expect(formatCommandResult('status', { pid: 9 })).to.deep.equal(['pid: 9']);
  });

  it('the plain-mode lines of the built-in redeploy are what renderEvent makes of its JSON events, naming no local pid', async () => {
    const steps = [
      { type: 'spawned', pid: 4250, ms: 3, timeoutMs: 60_000 },
      { type: 'ready', pid: 4250, ms: 162 },
      { type: 'draining', pid: 4250, ms: 170, connections: 3 },
    ] as const;
    const target: ControlTarget = {
      status: () => ({}),
      telinit: async () => undefined,
      redeploy: async (onEvent) => {
        for (const s of steps) onEvent({ ...s });
        return { pid: 4250, readyMs: 162 };
      },
      reopen: async () => [],
      tasks: () => [],
      runTask: async () => undefined,
      shellCommands: {},
    };
    const sock = path.join(tmpDir(), 'c.sock');
    const server = new ControlServer(sock);
    addBuiltins(server.commands, target);
    await server.listen();
    try {
      const plain = await plainLines(sock, 'redeploy');
      const client = await ControlClient.connect(sock);
      const events: ControlEvent[] = [];
      await client.request('redeploy', [], (e) => events.push(e));
      client.close();
      expect(plain).to.deep.equal([...events.map(renderEvent), 'ok']);
      expect(plain).to.deep.equal(['spawned pid 4250', 'ready: pid 4250 after 162 ms', 'draining 3 connection(s)', 'ok']);
      expect(plain.join('\n')).to.not.include(String(process.pid));
    } finally {
      server.close(true);
    }
  });
});
