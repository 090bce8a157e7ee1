/**
 * supervisor/pm2.ts: what a supervisor tells PM2 over the IPC channel (a
 * channel of the test's, recording what is sent), the redeploy action
 * against a real control socket, PM2's reload.lock, and no channel without
 * PM2. PM2 itself runs in test/examples/pm2.test.ts.
 */
import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { linkPm2, processChannel, reloadInProgress, type Pm2Channel, type Pm2Target } from '../../src/supervisor/pm2.js';
import type { LogFields } from '../../src/log.js';
import { tmpDir, until } from '../helpers.js';

function channel(): Pm2Channel & { sent: unknown[]; deliver(m: unknown): void } {
  const events = new EventEmitter();
  return {
    sent: [],
    send(m) {
      this.sent.push(m);
    },
    on: (e, l) => events.on(e, l),
    off: (e, l) => events.off(e, l),
    deliver: (m) => events.emit('message', m),
  };
}

function target(over: Partial<Pm2Target> = {}): Pm2Target & EventEmitter {
  const t = Object.assign(new EventEmitter(), {
    currentPid: 4242, ready: true, appControl: null as string | null, notified: true, generationPids: [4242], restarts: 0, uptime: 1,
    options: { command: 'node', args: ['app.mjs'] },
    forward: () => true,
  }, over);
  return t;
}

/** appSocket: a control socket answering `redeploy` with answer. */
async function appSocket(answer: string[]): Promise<{ path: string; close(): Promise<void> }> {
  const p = path.join(tmpDir(), 'app.sock');
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    readline.createInterface({ input: s }).on('line', () => s.write(`${answer.join('\n')}\n`));
  });
  await new Promise<void>((r) => server.listen(p, r));
  return { path: p, close: () => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }) };
}

describe('supervisor/pm2', () => {
  const env = { name: 'web', PM2_HOME: '/nonexistent' };

  it('registers the redeploy action and names the current pid, again at each change; a stop names the supervisor', () => {
    const c = channel();
    const t = target();
    const undo = linkPm2(t, c, () => undefined, env);
    expect(c.sent).to.deep.equal([
      { type: 'axm:action', data: { action_name: 'redeploy', action_type: 'custom', arity: 0 } },
      { type: 'axm:option:configuration', data: { pid: 4242 } },
    ]);
    t.emit('current', 5151);
    expect(c.sent.at(-1)).to.deep.equal({ type: 'axm:option:configuration', data: { pid: 5151 } });
    (t as { generationPids: number[] }).generationPids = [];
    t.emit('gone', 5151);
    expect(c.sent.at(-1)).to.deep.equal({ type: 'axm:option:configuration', data: { pid: process.pid } });
    undo();
    const n = c.sent.length;
    t.emit('current', 6161);
    c.deliver('redeploy');
    expect(c.sent).to.have.length(n);
  });

  it('pm2 trigger <app> redeploy: redeploys through the application\'s control socket and replies with the result', async () => {
    const a = await appSocket(['{"event":"spawned","pid":77}', '{"ok":true,"result":{"pid":77,"readyMs":12}}']);
    const c = channel();
    const lines: [string, LogFields | undefined][] = [];
    const t = target({ appControl: a.path, currentPid: 77 });
    linkPm2(t, c, (m, f) => lines.push([m, f]), env);
    c.deliver({ msg: 'other' });
    c.deliver('redeploy');
    await until(() => c.sent.length === 3, 10_000, 'the reply');
    expect(c.sent[2]).to.deep.equal({ type: 'axm:reply', data: { return: { ok: true, pid: 77, readyMs: 12 }, action_name: 'redeploy' } });
    expect(lines.map(([m]) => m)).to.deep.equal(['pm2 trigger web redeploy: redeploying pid 77', 'pm2 trigger web redeploy: done, pid 77 serves']);
    t.emit('exit', 0);
    await a.close();
  });

  it('a redeploy that cannot be made replies ok: false with the code and the reason, and logs a warning', async () => {
    const c = channel();
    const lines: [string, LogFields | undefined][] = [];
    linkPm2(target(), c, (m, f) => lines.push([m, f]), env);
    c.deliver({ msg: 'redeploy' });
    await until(() => c.sent.length === 3, 10_000, 'the reply');
    const reply = c.sent[2] as { data: { return: { ok: boolean; code: string; error: string } } };
    expect(reply.data.return).to.include({ ok: false, code: 'ERR_GRACEFUL_NOT_CONFIGURED' });
    expect(reply.data.return.error).to.match(/^the application \(pid 4242\) announced no control socket/);
    expect(lines.at(-1)![1]).to.include({ level: 'warn', code: 'ERR_GRACEFUL_NOT_CONFIGURED' });
  });

  it('reloadInProgress: PM2\'s reload.lock holds a time less than 30 s old; empty, old, garbage or missing is no reload', () => {
    const home = tmpDir();
    const lock = path.join(home, 'reload.lock');
    const now = Date.now();
    expect(reloadInProgress({ PM2_HOME: home }, now)).to.equal(false);
    for (const [text, want] of [[String(now - 1000), true], [String(now), true], [String(now - 31_000), false], ['', false], ['soon', false], [String(now + 5000), false]] as const) {
      fs.writeFileSync(lock, text);
      expect(reloadInProgress({ PM2_HOME: home }, now), JSON.stringify(text)).to.equal(want);
    }
  });

  it('a SIGINT during a pm2 reload logs what to type instead; outside a reload it says nothing', () => {
    const home = tmpDir();
    const c = channel();
    const lines: [string, LogFields | undefined][] = [];
    const t = target();
    // A listener of its own first: without any, a SIGINT would end this process.
    const keep = () => undefined;
    process.on('SIGINT', keep);
    try {
      linkPm2(t, c, (m, f) => lines.push([m, f]), { name: 'web', PM2_HOME: home });
      process.emit('SIGINT', 'SIGINT');
      expect(lines).to.deep.equal([]);
      fs.writeFileSync(path.join(home, 'reload.lock'), String(Date.now()));
      process.emit('SIGINT', 'SIGINT');
      expect(lines).to.have.length(1);
      expect(lines[0]![0]).to.equal('pm2 reload: PM2\'s fork mode has no reload, it stops the application and starts it again, so connections that arrive in between fail; ' +
        'to replace it without dropping one, type `pm2 trigger web redeploy`');
      expect(lines[0]![1]).to.include({ level: 'warn' });
      t.emit('exit', 0);
      process.emit('SIGINT', 'SIGINT');
      expect(lines).to.have.length(1);
    } finally {
      process.off('SIGINT', keep);
    }
  });

  it('processChannel: none outside PM2, or without an IPC channel', () => {
    expect(processChannel({})).to.equal(null);
    if (typeof process.send !== 'function') expect(processChannel({ pm_id: '0', pm_exec_path: '/x' })).to.equal(null);
  });
});
