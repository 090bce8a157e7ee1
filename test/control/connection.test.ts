/**
 * ControlConnection, one client of the control socket: framing (pipelined
 * lines, a line cut across writes), dispatch in order, the probe slot's
 * commands, output a client leaves unread, and the connection's own coded
 * refusals (idle too long, a line over the limit, a line too slow to arrive),
 * each of which ends the connection while the server serves on.
 */
import { expect } from 'chai';
import path from 'node:path';
import { ControlServer } from '../../src/control/server.js';
import type { ControlServerOptions } from '../../src/control/limits.js';
import { spawnFixture, tmpDir, until, type Child, endGenerations } from '../helpers.js';
import { MAX_LINE_BYTES } from '../../src/control/parse.js';
import { connectRaw, probe } from './attackers.js';

/**
 * serve: a control server on a fresh socket with echo, status, flood (1 MiB
 * of output written at once, as a careless command would) and stream (output
 * that waits for the client to read it) commands.
 */
async function serve(options: ControlServerOptions = {}): Promise<{ sock: string; server: ControlServer; aborted: () => boolean }> {
  const sock = path.join(tmpDir(), 'c.sock');
  const server = new ControlServer(sock, options);
  let aborted = false;
  server.commands.add('echo', { usage: 'echo [words]', run: (ctx) => ctx.args.join(' ') });
  server.commands.add('status', { usage: 'status', run: () => ({ pid: process.pid }) });
  const line = 'x'.repeat(64 * 1024);
  server.commands.add('flood', {
    usage: 'flood',
    run: (ctx) => {
      ctx.signal.addEventListener('abort', () => (aborted = true));
      for (let i = 0; i < 16 && !ctx.signal.aborted; i++) ctx.write(line);
    },
  });
  server.commands.add('stream', {
    usage: 'stream',
    run: async (ctx) => {
      ctx.signal.addEventListener('abort', () => (aborted = true));
      while (!ctx.signal.aborted) if (!ctx.write(line)) await ctx.drain();
    },
  });
  await server.listen();
  return { sock, server, aborted: () => aborted };
}

describe('control connection', function () {
  this.timeout(20_000);

  it('runs pipelined lines in order, a line cut across writes included', async () => {
    const { sock, server } = await serve();
    try {
      const c = await connectRaw(sock);
      c.socket.write('echo a\necho b\nec');
      c.socket.write('ho c d\n');
      await until(() => c.lines.length >= 6, 5_000, 'three answers');
      expect(c.lines).to.deep.equal(['a', 'ok', 'b', 'ok', 'c d', 'ok']);
      c.socket.write('{"cmd":"echo","args":["e"],"id":9}\n');
      await until(() => c.lines.length >= 7, 5_000, 'the JSON answer');
      expect(JSON.parse(c.lines[6]!)).to.deep.equal({ id: 9, ok: true, result: 'e' });
      c.socket.destroy();
    } finally {
      server.close(true);
    }
  });

  it('oneshot runs one command and closes; quit answers ok and closes', async () => {
    const { sock, server } = await serve();
    try {
      const one = await connectRaw(sock);
      one.socket.write('oneshot echo once\necho never\n');
      await until(() => one.closed(), 5_000, 'oneshot to close');
      expect(one.lines).to.deep.equal(['once', 'ok']);
      const quit = await connectRaw(sock);
      quit.socket.write('quit\n');
      await until(() => quit.closed(), 5_000, 'quit to close');
      expect(quit.lines).to.deep.equal(['ok']);
      await until(() => server.connectionCount === 0, 5_000, 'the server to forget both');
    } finally {
      server.close(true);
    }
  });

  it('a connection in a slot kept for probes runs status, and is refused anything else', async () => {
    const { sock, server } = await serve({ maxConnections: 1, probeConnections: 1 });
    try {
      const held = await connectRaw(sock);
      held.socket.write('echo held\n');
      await until(() => held.lines.length === 2, 5_000, 'the first client');
      const p = await connectRaw(sock);
      p.socket.write('status\necho x\n');
      await until(() => p.closed(), 5_000, 'the probe to be closed');
      expect(p.lines).to.deep.equal([
        `pid: ${process.pid}`, 'ok',
        'error: too many connections (1): this one, kept for probes, runs only status and help; try again later',
      ]);
      held.socket.destroy();
    } finally {
      server.close(true);
    }
  });

  it('a client that leaves its output unread past maxOutputBytes is dropped, with a logged reason, and the command stopped', async () => {
    const logged: string[] = [];
    const { sock, server, aborted } = await serve({ maxOutputBytes: 256 * 1024, log: (m) => logged.push(m) });
    try {
      const c = await connectRaw(sock);
      c.socket.pause(); // reads nothing
      c.socket.write('flood\n');
      await until(() => aborted(), 10_000, 'the command to be stopped');
      await until(() => server.connectionCount === 0, 10_000, 'the connection to be dropped');
      expect(logged).to.have.length(1);
      expect(logged[0], logged[0]).to.match(new RegExp(`^control: closing the connection of pid ${process.pid} \\(uid ${process.getuid?.()}\\): ` +
        'the client left \\d+ bytes of output unread \\(the limit is 262144\\): dropping it$'));
      c.socket.destroy();
    } finally {
      server.close(true);
    }
  });

  it('a client that reads none of its output for writeTimeout is dropped, with a logged reason, and the command stopped', async () => {
    const logged: string[] = [];
    const { sock, server, aborted } = await serve({ writeTimeout: 300, log: (m) => logged.push(m) });
    try {
      const c = await connectRaw(sock);
      c.socket.pause(); // reads nothing
      c.socket.write('stream\n');
      await until(() => aborted(), 10_000, 'the command to be stopped');
      await until(() => server.connectionCount === 0, 10_000, 'the connection to be dropped');
      expect(logged).to.deep.equal([`control: closing the connection of pid ${process.pid} (uid ${process.getuid?.()}): the client read none of its output for 300 ms: dropping it`]);
      c.socket.destroy();
    } finally {
      server.close(true);
    }
  });
});

describe('control socket refusals, coded', function () {
  this.timeout(30_000);
  let sock: string;
  let app: Child | undefined;
  let pid: number;

  beforeEach(async () => {
    sock = path.join(tmpDir(), 'app.sock');
    app = spawnFixture('app', [], {
      env: { ...process.env, APP_SOCKET: sock, APP_CONTROL_IDLE: '400', APP_CONTROL_LIMITS: JSON.stringify({ lineTimeout: 400 }) },
    });
    pid = Number((await app.next(/^ready /)).split(' ')[1]);
  });

  afterEach(async () => {
    await endGenerations(app);
    app = undefined;
  });

  /** jsonClient: a raw connection put in JSON mode by one status request, answered. */
  async function jsonClient(): Promise<Awaited<ReturnType<typeof connectRaw>>> {
    const c = await connectRaw(sock);
    c.socket.write('{"cmd":"status","args":[]}\n');
    await until(() => c.lines.some((l) => l.startsWith('{"ok":true')), 10_000, 'the status reply');
    return c;
  }

  /** refusal: the coded error of the last JSON line, once the server closed the connection. */
  async function refusal(c: Awaited<ReturnType<typeof connectRaw>>): Promise<{ code: string; message: string }> {
    await until(() => c.closed(), 10_000, 'the server to close the connection');
    const last = JSON.parse(c.lines[c.lines.length - 1]!) as { ok: boolean; error: { code: string; message: string } };
    expect(last.ok).to.equal(false);
    return last.error;
  }

  it('a connection idle past controlIdleTimeout: ERR_GRACEFUL_IDLE_TIMEOUT', async () => {
    const c = await jsonClient();
    expect(await refusal(c)).to.deep.equal({ code: 'ERR_GRACEFUL_IDLE_TIMEOUT', message: 'idle for 400 ms: closing' });
    expect(await probe(sock)).to.equal(pid);
  });

  it('a line over the limit: ERR_GRACEFUL_LINE_TOO_LONG', async () => {
    const c = await jsonClient();
    c.socket.write(`{"cmd":"${'x'.repeat(MAX_LINE_BYTES + 10)}"}\n`);
    expect(await refusal(c)).to.deep.equal({ code: 'ERR_GRACEFUL_LINE_TOO_LONG', message: `line too long: the limit is ${MAX_LINE_BYTES} bytes` });
    expect(await probe(sock)).to.equal(pid);
  });

  it('a line that takes longer than lineTimeout to arrive: ERR_GRACEFUL_SLOW_CLIENT', async () => {
    const c = await jsonClient();
    // The slowness is the thing under test: a byte every 50 ms, never a whole line.
    const drip = setInterval(() => c.socket.writable && c.socket.write('s'), 50);
    try {
      const err = await refusal(c);
      expect(err.code).to.equal('ERR_GRACEFUL_SLOW_CLIENT');
      expect(err.message).to.match(/^a line took longer than 400 ms to arrive: closing; send whole lines/);
    } finally {
      clearInterval(drip);
    }
    expect(await probe(sock)).to.equal(pid);
  });
});

describe('control connection: the server closes under a running command', function () {
  this.timeout(20_000);

  it('a stream ends with ERR_GRACEFUL_STREAM_ENDED (its id kept), telinit 0 is answered, an idle connection just ends', async () => {
    const { sock, server } = await serve();
    server.commands.add('tick', {
      usage: 'tick',
      run: (ctx) => new Promise<string>((resolve) => {
        const timer = setInterval(() => ctx.write('tick'), 20);
        ctx.signal.addEventListener('abort', () => {
          clearInterval(timer);
          resolve('the stream\'s own reply');
        });
      }),
    });
    // As the built-in telinit 0 does: its halt closes the connection before it resolves.
    server.commands.add('telinit', { usage: 'telinit 0', run: (ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve({ runlevel: 0 }))) });
    const stream = await connectRaw(sock);
    const halt = await connectRaw(sock);
    const idle = await connectRaw(sock);
    stream.socket.write('{"cmd":"tick","id":"s1"}\n');
    halt.socket.write('{"cmd":"telinit","args":["0"],"id":7}\n');
    idle.socket.write('echo hi\n');
    await until(() => stream.lines.length >= 2 && idle.lines.length === 2, 5_000, 'a stream under way');
    server.close(false);
    await until(() => stream.closed() && halt.closed() && idle.closed(), 5_000, 'every connection closed');
    expect(JSON.parse(stream.lines.at(-1)!)).to.deep.equal({
      id: 's1', ok: false, error: { code: 'ERR_GRACEFUL_STREAM_ENDED', message: `the stream ended: pid ${process.pid} halts` },
    });
    expect(stream.lines.slice(0, -1).every((l) => JSON.parse(l).line === 'tick')).to.equal(true);
    expect(halt.lines.map((l) => JSON.parse(l))).to.deep.equal([{ id: 7, ok: true, result: { runlevel: 0 } }]);
    expect(idle.lines).to.deep.equal(['hi', 'ok']);
  });
});
