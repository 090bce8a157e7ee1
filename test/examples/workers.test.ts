/**
 * The example with WORKERS=2: one primary, two workers that answer, the
 * example's streaming command labelled by worker, a redeploy, and SIGTERM.
 */
import { expect } from 'chai';
import path from 'node:path';
import { ControlClient, type ControlEvent } from '../../src/control/client.js';
import { freePort, gone, httpGet, root, spawnChild, tmpDir, until, type Child } from '../helpers.js';


describe('example: WORKERS=2', function () {
  this.timeout(60_000);
  let app: Child | undefined;
  afterEach(async () => {
    app?.kill('SIGKILL');
    await app?.exited;
    app = undefined;
  });

  it('serves from 2 workers, streams requests from each, redeploys, and stops on SIGTERM', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const sock = path.join(dir, 'app.sock');
    app = spawnChild(process.execPath, [path.join(root, 'dist/example/server.js')], {
      env: { ...process.env, WORKERS: '2', PORT: String(port), H2_PORT: '0', GRACEFUL_SOCKET: sock, LOG_FILE: path.join(dir, 'app.log') },
    });
    const line = await app.next(/serving with 2 workers on/);
    const primary = Number(/^pid (\d+)/.exec(line)?.[1]);
    expect(line).to.equal(`pid ${primary} (generation 1) serving with 2 workers on http://localhost:${port}/ - Ctrl-C stops it, kill -HUP ${primary} redeploys`);
    const served = new Set<string>();
    await until(async () => {
      served.add((await httpGet({ port })).body);
      return served.size === 2;
    }, 10_000, 'answers from both workers');
    for (const body of served) expect(body).to.match(/^hello from pid \d+ \(generation 1\)\n$/);
    expect([...served].some((b) => b.includes(`pid ${primary} `)), 'the primary answers nothing').to.equal(false);

    // `requests 50` streams each worker's count, labelled.
    const client = await ControlClient.connect(sock, 5_000);
    const labels = new Set<string>();
    await new Promise<void>((resolve) => {
      void client.request('requests', ['50'], (e: ControlEvent) => {
        const m = /^worker (\d): pid \d+: \d+ request\(s\)$/.exec(String(e.line));
        if (m) labels.add(m[1]!);
        if (labels.size === 2) resolve();
      }).catch(() => undefined);
    });
    client.close();

    const c2 = await ControlClient.connect(sock, 5_000);
    const result = (await c2.request('redeploy', [], undefined, 30_000)) as { pid: number };
    c2.close();
    await app.next(new RegExp(`^pid ${result.pid} \\(generation 2\\) serving with 2 workers`));
    await until(async () => /\(generation 2\)/.test((await httpGet({ port })).body), 10_000, 'an answer from generation 2');
    await until(() => gone(primary), 15_000, 'the first primary to exit');
    process.kill(result.pid, 'SIGTERM');
    await until(() => gone(result.pid), 15_000, 'the second primary to exit');
  });
});
