/**
 * listener-groups.ts: dealing a group's members to slots (memberOf, forSlot,
 * the names), binding members of one SO_REUSEPORT group on one port, the
 * port check, and bindListener on TCP and on a UNIX path, none accepting.
 */
import { expect } from 'chai';
import net from 'node:net';
import path from 'node:path';
import type { OutgoingFd } from '../../src/handoff/connection.js';
import { addon } from '../../src/native.js';
import type { ManagedListener } from '../../src/server/listeners.js';
import { bindListener, bindMember, extraName, forSlot, memberName, memberOf } from '../../src/workers/listener-groups.js';
import { tmpDir } from '../helpers.js';

const listener = (name: string) => ({ name }) as ManagedListener;

describe('workers/listener-groups', () => {
  it('memberOf deals member i to slot i % count (no member index is member 0)', () => {
    expect([0, 1, 2, 3, 4].filter((m) => memberOf(m, 1, 2))).to.deep.equal([1, 3]);
    expect(memberOf(undefined, 0, 3)).to.equal(true);
    expect(memberOf(5, 2, 3)).to.equal(true);
  });

  it('memberName and extraName: member 0 and the first taken keep the listener\'s name', () => {
    expect([memberName('http', 0), memberName('http', 2)]).to.deep.equal(['http', 'http#2']);
    expect([extraName('http', 0), extraName('http', 1)]).to.deep.equal(['http', 'http+1']);
  });

  it('forSlot gives a slot its members of each group, renamed <name>, <name>+1, ..., and every other descriptor as it is', () => {
    const all: OutgoingFd[] = [
      ...[0, 1, 2, 3, 4].map((member) => ({ fd: 10 + member, meta: { name: memberName('http', member), kind: 'listener', group: 'http', member } })),
      { fd: 20, meta: { name: 'shared', kind: 'listener' } },
      { fd: 21, meta: { name: 'log', kind: 'file' } },
    ];
    const names = (slot: number, count: number) => forSlot(all, slot, count).map((d) => `${d.fd}:${(d.meta as { name: string }).name}`);
    expect(names(0, 2)).to.deep.equal(['10:http', '12:http+1', '14:http+2', '20:shared', '21:log']);
    expect(names(1, 2)).to.deep.equal(['11:http', '13:http+1', '20:shared', '21:log']);
    expect(names(4, 5)).to.deep.equal(['14:http', '20:shared', '21:log']);
  });

  it('bindMember binds the members of one group on one port (the first picks it), each listening, none accepting', async () => {
    const first = await bindMember('http', 0, { host: '127.0.0.1' });
    const second = await bindMember('http', 1, { host: '127.0.0.1', port: String(first.meta.port), backlog: 64 });
    try {
      expect(first.meta).to.deep.include({ name: 'http', kind: 'listener', family: 'tcp', host: '127.0.0.1', group: 'http', member: 0 });
      expect(second.meta).to.deep.include({ name: 'http#1', port: first.meta.port, member: 1, backlog: 64 });
      const sock = net.connect(first.meta.port as number, '127.0.0.1');
      await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject)); // queued by the kernel
      sock.destroy();
    } finally {
      first.fd.close();
      second.fd.close();
    }
  });

  it('bindMember refuses a port that is not a whole number from 0 to 65535 (ERR_GRACEFUL_INVALID_ARGUMENT)', async () => {
    for (const port of [70000, -1, 'http', 1.5]) {
      const err = await bindMember('web', 0, { host: '127.0.0.1', port: port as number }).then(() => null, (e: Error & { code?: string }) => e);
      expect(err?.code, String(port)).to.equal('ERR_GRACEFUL_INVALID_ARGUMENT');
      expect(err?.message).to.contain('"web": the port must be a whole number from 0 to 65535');
    }
  });

  it('bindListener binds TCP on port 0 (the kernel picks) and a UNIX path, and accepts on neither', async () => {
    const tcp = await bindListener(listener('api'), { host: '127.0.0.1' });
    const file = path.join(tmpDir(), 'api.sock');
    const unix = await bindListener(listener('local'), { path: file, mode: 0o600 });
    try {
      expect(tcp.meta).to.deep.include({ name: 'api', kind: 'listener', family: 'tcp', host: '127.0.0.1' });
      expect(tcp.meta.port).to.be.a('number').above(0);
      expect(unix.meta).to.deep.equal({ name: 'local', kind: 'listener', family: 'unix', path: file });
      for (const target of [{ port: tcp.meta.port as number, host: '127.0.0.1' }, { path: file }]) {
        const sock = net.connect(target);
        await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject));
        sock.destroy();
      }
      // What was queued is there for whoever takes the descriptor.
      const server = net.createServer().listen({ fd: addon.dup(tcp.fd.fd) });
      const got = new Promise((resolve) => server.once('connection', (c: net.Socket) => resolve(c.destroy())));
      await got; // the connection queued before
      server.close();
    } finally {
      tcp.fd.close();
      unix.fd.close();
    }
  });
});
