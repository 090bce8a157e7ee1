/** Interop with a peer this package did not write: python3's socket.send_fds / recv_fds, same framing. */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { listenAndServe, receive, callbackHandler, type Meta } from '../../src/index.js';
import { fdCount, root, spawnChild, tmpDir } from '../helpers.js';

const peer = path.join(root, 'test/fixtures/peer.py');

describe('interop with python3 send_fds / recv_fds', () => {
  it('receives descriptors and meta that python3 sends', async () => {
    const dir = tmpDir();
    const files = [0, 1, 2, 3, 4].map((i) => {
      const f = path.join(dir, `py${i}`);
      fs.writeFileSync(f, `python file ${i}`);
      return f;
    });
    const sock = path.join(dir, 'py.sock');
    const before = fdCount();
    const py = spawnChild('python3', [peer, 'send', sock, ...files]);
    await py.next(/^listening/);
    const got: { meta: Meta | null; content: string }[] = [];
    const n = await receive(sock, (fd, meta) => {
      got.push({ meta, content: fs.readFileSync(fd, 'utf8') });
      fs.closeSync(fd);
    });
    expect(n).to.equal(5);
    expect(got).to.deep.equal(files.map((f, i) => ({ meta: { name: path.basename(f), i }, content: `python file ${i}` })));
    expect((await py.exited).code).to.equal(0);
    expect(fdCount()).to.equal(before);
  });

  it('sends descriptors and meta that python3 receives', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'js.sock');
    const fds = [0, 1, 2].map((i) => {
      const f = path.join(dir, `js${i}`);
      fs.writeFileSync(f, `node file ${i}`);
      return fs.openSync(f, 'r');
    });
    const hs = listenAndServe(sock, callbackHandler((res) => {
      fds.forEach((fd, i) => res.send(fd, { i, from: 'node' }));
      res.send(fds[0]!); // no meta: L = 0
    }));
    const py = spawnChild('python3', [peer, 'recv', sock]);
    const out = JSON.parse(await py.next(/^\[/)) as unknown[];
    expect(out).to.deep.equal([
      { meta: { i: 0, from: 'node' }, content: 'node file 0' },
      { meta: { i: 1, from: 'node' }, content: 'node file 1' },
      { meta: { i: 2, from: 'node' }, content: 'node file 2' },
      { meta: null, content: 'node file 0' },
    ]);
    expect((await py.exited).code).to.equal(0);
    for (const fd of fds) fs.closeSync(fd);
    await hs.close();
  });
});
