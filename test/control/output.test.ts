/**
 * ConnectionOutput (src/control/output.ts) on real TCP connections to
 * 127.0.0.1: a client that does not read is dropped past maxOutputBytes or
 * after writeTimeout, unwritten lines are counted, waiters go on once the
 * client reads, or when the connection ends.
 */
import { expect } from 'chai';
import net from 'node:net';
import { once } from 'node:events';
import { ConnectionOutput } from '../../src/control/output.js';

/** pair: a server-side socket and the client connected to it. */
async function pair(): Promise<{ server: net.Socket; client: net.Socket; close(): void }> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection');
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  const [server] = (await accepted) as [net.Socket];
  await once(client, 'connect');
  return { server, client, close: () => { server.destroy(); client.destroy(); srv.close(); } };
}

const line = `${'x'.repeat(1023)}\n`;

describe('control/output: bounded writes of one connection', () => {
  it('drops a client that leaves more than maxOutputBytes unread, with ERR_GRACEFUL_SLOW_CLIENT', async () => {
    const p = await pair();
    try {
      p.client.pause();
      const dropped: Error[] = [];
      const out = new ConnectionOutput(p.server, () => ({ maxOutputBytes: 256 * 1024, writeTimeout: 60_000 }), (err) => dropped.push(err));
      let ok = true;
      // Until dropped: loopback TCP may take several MiB into the kernel's buffers first (autotuning),
      // so the bound is far past what they can hold (64 MiB); Node keeps at most the limit unwritten.
      for (let i = 0; i < 65_536 && dropped.length === 0; i++) ok = out.write(line);
      expect(ok).to.equal(false);
      expect(dropped).to.have.length(1);
      expect(dropped[0]).to.have.property('code', 'ERR_GRACEFUL_SLOW_CLIENT');
      expect(dropped[0]!.message).to.match(/^the client left \d+ bytes of output unread \(the limit is 262144\): dropping it$/);
      expect(out.lines).to.be.greaterThan(0);
      out.close();
    } finally {
      p.close();
    }
  });

  it('drops a client that reads none of its output for writeTimeout', async () => {
    const p = await pair();
    try {
      p.client.pause();
      let dropped: (err: Error) => void;
      const why = new Promise<Error>((resolve) => (dropped = resolve));
      const out = new ConnectionOutput(p.server, () => ({ maxOutputBytes: 64 * 1024 * 1024, writeTimeout: 200 }), (err) => dropped(err));
      while (out.write(line)); // until the kernel's buffers are full
      const err = await why;
      expect(err).to.have.property('code', 'ERR_GRACEFUL_SLOW_CLIENT');
      expect(err.message).to.equal('the client read none of its output for 200 ms: dropping it');
      out.close();
    } finally {
      p.close();
    }
  });

  it('drained waits until the client read, and flushed until the kernel took everything; then no line is unwritten', async () => {
    const p = await pair();
    try {
      p.client.pause();
      const dropped: Error[] = [];
      const out = new ConnectionOutput(p.server, () => ({ maxOutputBytes: 64 * 1024 * 1024, writeTimeout: 60_000 }), (err) => dropped.push(err));
      p.server.on('drain', () => out.onDrain());
      while (out.write(line));
      expect(out.lines).to.be.greaterThan(0);
      let drained = false;
      const waiting = out.drained(false).then(() => (drained = true));
      await new Promise((r) => setImmediate(r));
      expect(drained).to.equal(false);
      p.client.resume();
      await waiting;
      await out.flushed;
      expect(out.lines).to.equal(0);
      expect(dropped).to.deep.equal([]);
      expect(await out.drained(false).then(() => 'at once')).to.equal('at once');
      out.close();
    } finally {
      p.close();
    }
  });

  it('close lets every waiter go and stops the write timer (the connection ended)', async () => {
    const p = await pair();
    try {
      p.client.pause();
      const dropped: Error[] = [];
      const out = new ConnectionOutput(p.server, () => ({ maxOutputBytes: 64 * 1024 * 1024, writeTimeout: 100 }), (err) => dropped.push(err));
      while (out.write(line));
      const waiting = out.drained(false);
      out.close();
      await waiting;
      expect(await out.drained(true).then(() => 'closed')).to.equal('closed');
      // The write timer was stopped: nothing is dropped after its time. The witness is a
      // second output with the same writeTimeout, filled after this one was: once it is
      // dropped, this one's timer (armed earlier, same period) would have fired too.
      const w = await pair();
      try {
        w.client.pause();
        let witnessDropped!: () => void;
        const witness = new Promise<void>((resolve) => (witnessDropped = resolve));
        const other = new ConnectionOutput(w.server, () => ({ maxOutputBytes: 64 * 1024 * 1024, writeTimeout: 100 }), () => witnessDropped());
        while (other.write(line));
        await witness;
        other.close();
      } finally {
        w.close();
      }
      expect(dropped).to.deep.equal([]);
    } finally {
      p.close();
    }
  });
});
