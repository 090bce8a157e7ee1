/**
 * The register's hook in real processes: what it takes over, what it leaves
 * to Node and says so, what it refuses with ERR_GRACEFUL_LISTEN_UNSUPPORTED
 * (a worker thread, node:cluster), a program that uses the API itself, the
 * CommonJS preload (-r), and process.send('ready') without an IPC channel.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { REGISTER_URL } from '../../src/cli/run-env.js';
import { servesHere, unsupported } from '../../src/register/hook.js';
import { cli, freePort, httpGet, root, spawnChild, tmpDir, until, type Child } from '../helpers.js';

const register = fileURLToPath(REGISTER_URL);
const fixture = (name: string) => path.join(root, 'test/fixtures/unmodified', name);

describe('register/hook', function () {
  this.timeout(30_000);
  const started: Child[] = [];
  const start = (args: string[], env: NodeJS.ProcessEnv): Child => {
    const c = spawnChild(process.execPath, args, { env: { ...process.env, ...env } });
    started.push(c);
    return c;
  };
  afterEach(async () => {
    for (const c of started.splice(0)) {
      c.kill('SIGTERM');
      await c.exited;
    }
  });

  it('unsupported: a worker thread, a node:cluster worker; null in a plain main thread', () => {
    expect(unsupported(false, true)).to.equal(null);
    expect(unsupported()).to.equal(null);
    expect(unsupported(false, false)).to.match(/worker thread.*--workers n/);
    expect(unsupported(true, true)).to.match(/node:cluster itself.*--workers n/);
  });

  it('servesHere: the first process, and a new version or worker the library started; not a process the program started', () => {
    expect(servesHere({})).to.equal(true);
    expect(servesHere({ GRACEFUL_REGISTER_OWNER: '42', GRACEFUL_HANDOFF: '/tmp/x.sock' })).to.equal(true);
    expect(servesHere({ GRACEFUL_REGISTER_OWNER: '42' })).to.equal(false);
  });

  it('a child the program forks (it inherits the preload) listens as in plain Node: not taken over, no error', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'app.sock');
    const [port, childPort] = [await freePort(), await freePort()];
    const child = path.join(dir, 'child.cjs');
    // It ends with its parent (the IPC channel closes), so that nothing outlives the test.
    fs.writeFileSync(child, `process.on('disconnect', () => process.exit(0));
      require('node:http').createServer((q, r) => r.end('child ' + process.pid)).listen(${childPort}, '127.0.0.1', () => process.send('up'));`);
    const code = `require('node:http').createServer((q, r) => r.end('parent')).listen(${port}, '127.0.0.1', () => {
      require('node:child_process').fork(${JSON.stringify(child)}).on('message', (m) => console.log('child ' + m)); });`;
    const app = start(['--import', register, '-e', code], { GRACEFUL_CONTROL_SOCKET: sock });
    await app.next(/^child up/);
    expect((await httpGet({ port: childPort })).body).to.match(/^child \d+$/);
    await until(async () => (await cli('health', sock)).code === 0, 10_000, 'healthy');
    const status = JSON.parse((await cli('-s', sock, '--json', 'status')).stdout) as { result: { listeners: { name: string }[] } };
    expect(status.result.listeners.map((l) => l.name)).to.deep.equal([`tcp:127.0.0.1:${port}`]);
    expect(app.stderr.join('\n')).to.not.match(/ERR_GRACEFUL|graceful-restart:/);
  });

  it('--import: a plain listen becomes the listener tcp:127.0.0.1:<port>, with its callback and address() as in Node', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const sock = path.join(dir, 'app.sock');
    const app = start(['--import', register, fixture('plain.mjs')], { PORT: String(port), GRACEFUL_CONTROL_SOCKET: sock });
    expect(await app.next(/listening/)).to.equal(`plain: pid ${app.pid} listening on ${port}`);
    await until(async () => (await cli('health', sock)).code === 0, 10_000, 'healthy');
    const status = JSON.parse((await cli('-s', sock, '--json', 'status')).stdout) as { result: { listeners: { name: string }[] } };
    expect(status.result.listeners.map((l) => l.name)).to.deep.equal([`tcp:127.0.0.1:${port}`]);
    expect((await httpGet({ port })).body).to.equal(`plain ${app.pid} \n`);
  });

  it('-r: the same from CommonJS (require of the register)', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const sock = path.join(dir, 'app.sock');
    const app = start(['-r', register, '-e', `require('node:http').createServer((q, s) => s.end('cjs')).listen(${port}, '127.0.0.1')`], { GRACEFUL_CONTROL_SOCKET: sock });
    await until(async () => (await cli('health', sock)).code === 0, 10_000, 'healthy');
    expect((await httpGet({ port })).body).to.equal('cjs');
    expect(app.stderr.join('\n')).to.not.match(/Warning/);
  });

  it('port 0: served as in Node, with one line saying it is not kept across redeploys and what to do', async () => {
    const app = start(['--import', register, fixture('edge.mjs')], { EDGE: 'port0' });
    const port = Number((await app.next(/^port0 listening/)).split(' ')[2]);
    expect((await httpGet({ port })).body).to.equal(`edge ${app.pid}\n`);
    await until(() => app.stderr.some((l) => /listens on port 0 .*not kept across redeploys.*Give it a fixed port/.test(l)), 5_000, 'the warning');
  });

  it('a worker thread: its listen fails with ERR_GRACEFUL_LISTEN_UNSUPPORTED, saying to listen in the main thread', async () => {
    const app = start(['--import', register, fixture('edge.mjs')], { EDGE: 'thread', PORT: String(await freePort()) });
    expect(await app.next(/^thread error/)).to.match(/^thread error ERR_GRACEFUL_LISTEN_UNSUPPORTED: listen\("tcp:127.0.0.1:\d+"\): the program listens in a worker thread.*listen in the main thread/);
  });

  it('node:cluster: a cluster worker\'s listen fails with ERR_GRACEFUL_LISTEN_UNSUPPORTED, saying to use --workers', async () => {
    const app = start(['--import', register, fixture('edge.mjs')], { EDGE: 'cluster', PORT: String(await freePort()) });
    expect(await app.next(/^cluster error/)).to.match(/ERR_GRACEFUL_LISTEN_UNSUPPORTED: .*runs node:cluster itself.*--workers n/);
    expect((await app.exited).code).to.equal(0);
  });

  it('a program that makes its own GracefulServer: the hook steps aside (its other listens stay plain)', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'api.sock');
    const [port, port2] = [await freePort(), await freePort()];
    const app = start(['--import', register, fixture('edge.mjs')], { EDGE: 'api', PORT: String(port), PORT2: String(port2), GRACEFUL_CONTROL_SOCKET: sock, PACKAGE: path.join(root, 'dist/src/index.js') });
    await app.next(/^api ready/);
    const status = JSON.parse((await cli('-s', sock, '--json', 'status')).stdout) as { result: { listeners: { name: string }[] } };
    expect(status.result.listeners.map((l) => l.name)).to.deep.equal(['api']);
    expect((await httpGet({ port: port2 })).body).to.equal(`edge ${app.pid}\n`);
  });

  it('--ready message without an IPC channel: process.send exists, and process.send(\'ready\') makes it ready', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'app.sock');
    const port = await freePort();
    // A first instance accepts at once: GET /go is what makes it say ready.
    const code = `const s = require('node:http').createServer((q, r) => { if (q.url === '/go') process.send('ready', () => console.log('sent')); r.end('m'); })`
      + `.listen(${port}, '127.0.0.1', () => console.log('send ' + typeof process.send));`;
    const app = start(['-r', register, '-e', code], { GRACEFUL_CONTROL_SOCKET: sock, GRACEFUL_READY: 'message', GRACEFUL_SETTLE: '0' });
    expect(await app.next(/^send/)).to.equal('send function');
    await until(async () => /not ready/.test((await cli('health', sock)).stdout), 10_000, 'the control socket, not ready');
    await httpGet({ port, path: '/go' });
    await app.next(/^sent/);
    await until(async () => (await cli('health', sock)).code === 0, 10_000, 'healthy');
  });

  it('a bad GRACEFUL_READY: the program does not start, and the message names the variable', async () => {
    const app = start(['--import', register, fixture('plain.mjs')], { GRACEFUL_READY: 'soon', PORT: '0' });
    expect((await app.exited).code).to.equal(1);
    expect(app.stderr.join('\n')).to.match(/ERR_GRACEFUL_INVALID_ARGUMENT|GRACEFUL_READY: must be listen, message or http:\/path/);
  });
});
