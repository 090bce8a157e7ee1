/** Errors keep their class: an error with a code is an instance of that code's class. */
import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ClosedError, ControlClient, GracefulError } from '../../src/index.js';
import { root, tmpDir } from '../helpers.js';

describe('error classes', () => {
  it('a control server that closes before answering: ERR_GRACEFUL_CLOSED as a ClosedError', async () => {
    const sock = path.join(tmpDir(), 'c.sock');
    const server = net.createServer((s) => s.once('data', () => s.end()));
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      const client = await ControlClient.connect(sock);
      const err = await client.request('status').then(() => null, (e: unknown) => e);
      client.close();
      expect(err).to.be.instanceOf(ClosedError);
      expect(err).to.include({ code: 'ERR_GRACEFUL_CLOSED', name: 'ClosedError', message: 'the server closed the connection before answering' });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('docs/errors.md lists every code the sources raise, and no other', () => {
    const defined = new Set<string>();
    const walk = (dir: string): void => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.ts')) for (const m of fs.readFileSync(p, 'utf8').matchAll(/'(ERR_GRACEFUL_[A-Z_]+)'/g)) defined.add(m[1]!);
      }
    };
    walk(path.join(root, 'src'));
    const listed = new Set([...fs.readFileSync(path.join(root, 'docs/errors.md'), 'utf8').matchAll(/^\| `(ERR_GRACEFUL_[A-Z_]+)` \|/gm)].map((m) => m[1]));
    expect(defined.size).to.be.above(40);
    expect([...defined].filter((c) => !listed.has(c)), 'defined, not listed').to.deep.equal([]);
    expect([...listed].filter((c) => !defined.has(c)), 'listed, not defined').to.deep.equal([]);
  });

  it('no module builds a bare GracefulError: each code is raised through its own class', () => {
    const bare: string[] = [];
    const walk = (dir: string): void => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.ts') && /new GracefulError\(/.test(fs.readFileSync(p, 'utf8'))) bare.push(path.relative(root, p));
      }
    };
    walk(path.join(root, 'src'));
    expect(bare).to.deep.equal([]);
    expect(new ClosedError('x')).to.be.instanceOf(GracefulError);
  });
});

describe('closeAll', () => {
  it('closes every descriptor, and a double close (EBADF) is a process warning, not silence', async () => {
    const { closeAll } = await import('../../src/handoff/connection.js');
    const fs = (await import('node:fs')).default;
    const a = fs.openSync('/dev/null', 'r');
    const b = fs.openSync('/dev/null', 'r');
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    // The root hooks fail a test on any process warning: take this one out of their list.
    const listeners = process.listeners('warning').filter((l) => l !== onWarning);
    for (const l of listeners) process.off('warning', l);
    try {
      closeAll([a, b]);
      closeAll([a]);
      await new Promise((r) => setImmediate(r));
    } finally {
      for (const l of listeners) process.on('warning', l);
      process.off('warning', onWarning);
    }
    expect(warnings.map((w) => (w as Error & { code?: string }).code)).to.deep.equal(['GRACEFUL_EBADF']);
    expect(warnings[0]!.message).to.equal(`close(${a}) failed with EBADF: the descriptor was closed already (closed twice, or never ours)`);
  });
});
