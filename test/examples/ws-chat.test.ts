/**
 * example/ws-chat.ts: two chat clients (real `ws` clients) in one room stay
 * connected through 3 redeploys (SIGHUP); each message reaches both, from
 * the instance serving at that moment (once the old one has exited: until
 * then a room spans two processes).
 */
import { expect } from 'chai';
import path from 'node:path';
import { WebSocket } from 'ws';
import { endGenerations, gone, root, spawnChild, until, type Child } from '../helpers.js';

interface Said { name: string; text: string; pid: number }

function connect(port: number, name: string): Promise<{ ws: WebSocket; heard: Said[]; closed: () => boolean }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/?room=lobby&name=${name}`, { perMessageDeflate: false });
  const heard: Said[] = [];
  let closed = false;
  ws.on('message', (d) => heard.push(JSON.parse(String(d)) as Said));
  ws.on('close', () => (closed = true));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, heard, closed: () => closed }));
    ws.once('error', reject);
  });
}

describe('example: a ws chat that keeps its clients across redeploys', function () {
  this.timeout(60_000);
  let child: Child | undefined;
  afterEach(async () => {
    await endGenerations(child, / pid (\d+) /);
    child = undefined;
  });

  it('2 clients stay connected through 3 redeploys; every message reaches both, from the new pid', async () => {
    child = spawnChild(process.execPath, [path.join(root, 'dist/example/ws-chat.js')], { env: { ...process.env, PORT: '0', HOST: '127.0.0.1' } });
    const first = /^chat on 127\.0\.0\.1:(\d+) pid (\d+) generation 1$/.exec(await child.next(/^chat on /))!;
    const port = Number(first[1]);
    let pid = Number(first[2]);
    const ann = await connect(port, 'ann');
    const bob = await connect(port, 'bob');
    for (let round = 0; round <= 3; round++) {
      if (round > 0) {
        process.kill(pid, 'SIGHUP');
        const next = /pid (\d+) generation (\d+)$/.exec(await child.next(new RegExp(`generation ${round + 1}$`)))!;
        // Once the old instance has handed both over and exited, the room is in one process again.
        const old = pid;
        await until(() => gone(old), 10_000, `the old instance (pid ${old}) to exit`);
        pid = Number(next[1]);
      }
      const text = `hello ${round}`;
      ann.ws.send(text);
      for (const c of [ann, bob]) {
        await until(() => c.heard.some((s) => s.text === text), 5_000, `${text} to reach both`);
        expect(c.heard.filter((s) => s.text === text)).to.deep.equal([{ room: 'lobby', name: 'ann', text, pid }]);
      }
    }
    expect(ann.closed() || bob.closed(), 'a client saw a close').to.equal(false);
    expect(ann.heard.length).to.equal(4);
    ann.ws.terminate();
    bob.ws.terminate();
  });
});
