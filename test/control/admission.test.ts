/**
 * Admission on a real UNIX socket: who gets a control connection (our uid,
 * root, allowed uids), the slots kept for probes past maxConnections, and
 * refusals: coded in the client's mode, bounded in number and in time.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Admission, type Admitted } from '../../src/control/admission.js';
import { CONTROL_DEFAULTS, REFUSAL_LINGER, REFUSAL_WAIT, type ResolvedLimits } from '../../src/control/limits.js';
import { tmpDir, until } from '../helpers.js';
import { OTHER_UID, attack, connectRaw } from './attackers.js';

/** gate: a listener that admits through admission and keeps each admitted socket open until the client sends a line. */
async function gate(admission: Admission): Promise<{ sock: string; admitted: Admitted[]; close: () => void }> {
  const dir = tmpDir();
  const sock = path.join(dir, 'c.sock');
  const open: { probe: boolean; socket: net.Socket }[] = [];
  const admitted: Admitted[] = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    const a = admission.admit(socket, open);
    if (!a) return;
    admitted.push(a);
    open.push({ probe: a.probe, socket });
    socket.write(`admitted${a.probe ? ' probe' : ''}\n`);
    socket.once('data', () => socket.end()); // a client that sends a line is admitted, and done
  });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(sock, 0o666);
  return { sock, admitted, close: () => { server.close(); for (const o of open) o.socket.destroy(); } };
}

const limits = (over: Partial<ResolvedLimits> = {}): ResolvedLimits => ({ ...CONTROL_DEFAULTS, ...over });

describe('control admission', function () {
  this.timeout(20_000);

  it('admits our own uid, with the client\'s credentials, in a normal slot', async () => {
    const g = await gate(new Admission(limits()));
    try {
      const c = await connectRaw(g.sock);
      await until(() => c.lines[0] === 'admitted', 5_000, 'the admission');
      expect(g.admitted).to.have.length(1);
      expect(g.admitted[0]!.peer.pid).to.equal(process.pid);
      expect(g.admitted[0]!.peer.uid).to.equal(process.getuid?.());
      expect(g.admitted[0]!.probe).to.equal(false);
      c.socket.destroy();
    } finally {
      g.close();
    }
  });

  it('past maxConnections, probeConnections more are admitted as probes; the next is refused, coded in its mode', async () => {
    const admission = new Admission(limits({ maxConnections: 1, probeConnections: 1 }));
    const g = await gate(admission);
    try {
      const normal = await connectRaw(g.sock);
      await until(() => normal.lines[0] === 'admitted', 5_000, 'the first client');
      const probe = await connectRaw(g.sock);
      await until(() => probe.lines[0] === 'admitted probe', 5_000, 'the probe');
      const plain = await connectRaw(g.sock);
      plain.socket.write('status\n');
      await until(() => plain.closed(), 5_000, 'the refused client to be closed');
      expect(plain.lines).to.deep.equal(['error: too many connections (1): try again later']);
      const json = await connectRaw(g.sock);
      json.socket.write('{"cmd":"status"}\n');
      await until(() => json.closed(), 5_000, 'the refused JSON client to be closed');
      expect(json.lines.map((l) => JSON.parse(l) as unknown)).to.deep.equal([
        { ok: false, error: { code: 'ERR_GRACEFUL_TOO_MANY_CONNECTIONS', message: 'too many connections (1): try again later' } },
      ]);
      await until(() => admission.refusing === 0, 5_000, 'the refusals to end');
      normal.socket.destroy();
      probe.socket.destroy();
    } finally {
      g.close();
    }
  });

  it('a refused client that says nothing and reads nothing is answered, then its descriptor closed within a bound', async () => {
    const admission = new Admission(limits({ maxConnections: 1, probeConnections: 0 }));
    const g = await gate(admission);
    try {
      const held = await connectRaw(g.sock);
      await until(() => held.lines[0] === 'admitted', 5_000, 'the first client');
      const silent = await connectRaw(g.sock);
      silent.socket.pause(); // reads nothing
      const started = Date.now();
      await until(() => admission.refusing === 1, 5_000, 'the refusal to start');
      await until(() => admission.refusing === 0, REFUSAL_WAIT + REFUSAL_LINGER + 5_000, 'the refused descriptor to be closed');
      expect(Date.now() - started).to.be.below(REFUSAL_WAIT + REFUSAL_LINGER + 2_000);
      silent.socket.destroy();
      held.socket.destroy();
    } finally {
      g.close();
    }
  });

  it('past maxRefused refusals in flight, a refused client is closed at once, unanswered', async () => {
    const admission = new Admission(limits({ maxConnections: 1, probeConnections: 0, maxRefused: 1 }));
    const g = await gate(admission);
    try {
      const held = await connectRaw(g.sock);
      await until(() => held.lines[0] === 'admitted', 5_000, 'the first client');
      const first = await connectRaw(g.sock); // refused, waits for its first line
      await until(() => admission.refusing === 1, 5_000, 'the first refusal');
      const second = await connectRaw(g.sock);
      await until(() => second.closed(), 5_000, 'the second refused client to be closed');
      expect(second.lines).to.deep.equal([]);
      expect(admission.refusing).to.equal(1);
      first.socket.write('status\n');
      await until(() => first.closed(), 5_000, 'the first refused client to be answered and closed');
      expect(first.lines).to.deep.equal(['error: too many connections (1): try again later']);
      await until(() => admission.refusing === 0, 5_000, 'the refusals to end');
      held.socket.destroy();
    } finally {
      g.close();
    }
  });

  it('refuses another uid with a coded answer, and admits it once allowed (root runs the tests)', async function () {
    if (process.getuid?.() !== 0) this.skip(); // needs root to run a client as another user
    const refused = await gate(new Admission(limits()));
    try {
      expect(await attack('cycle', refused.sock, 3, OTHER_UID)).to.deep.equal({
        [JSON.stringify({ ok: false, error: { code: 'ERR_GRACEFUL_PERMISSION_DENIED',
          message: `permission denied: uid ${OTHER_UID} may not use this socket (the server runs as uid 0; allow it with controlAllowUids)` } })]: 3,
      });
      expect(refused.admitted).to.deep.equal([]);
    } finally {
      refused.close();
    }
    const allowed = await gate(new Admission(limits(), [OTHER_UID]));
    try {
      expect(await attack('cycle', allowed.sock, 1, OTHER_UID)).to.deep.equal({ admitted: 1 });
      expect(allowed.admitted[0]!.peer.uid).to.equal(OTHER_UID);
    } finally {
      allowed.close();
    }
  });
});
