/**
 * The control socket's own refusals, as coded JSON replies to a client in JSON
 * mode: a connection idle too long, a line over the limit, a line that takes
 * too long to arrive. Each ends the connection; the server serves on.
 */
import { expect } from 'chai';
import path from 'node:path';
import { spawnFixture, tmpDir, until, type Child, endGenerations } from '../helpers.js';
import { MAX_LINE_BYTES } from '../../src/control/parse.js';
import { connectRaw, probe } from './attackers.js';

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
