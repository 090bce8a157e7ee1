/**
 * The CLI's words in any order (src/cli/args.ts), the nearest command on a
 * typo, and what a redeploy says while it waits and when Ctrl-C leaves it:
 * units on their own (watchRedeploy's in waiting.test.ts), then the CLI
 * against a real server.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { DEFAULT_TIMEOUT, hoistFlags, isSocketFile, placeSocket, readFlags, suggestForm } from '../../src/cli/args.js';
import { readArgs, readWithCommander } from '../../src/cli.js';
import { nearest } from '../../src/control/commands.js';
import { root, spawnFixture, tmpDir, type Child, endGenerations } from '../helpers.js';

const cli = path.join(root, 'bin/graceful-restart.js');

function graceful(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cli, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    child.stdin!.end();
  });
}

describe('cli/args: words in any order', () => {
  it('hoistFlags moves the CLI flags in front, values with them, and stops at --', () => {
    expect(hoistFlags(['status', 'a.sock', '--json'])).to.deep.equal(['--json', 'status', 'a.sock']);
    expect(hoistFlags(['a.sock', '--timeout', '500', 'status'])).to.deep.equal(['--timeout', '500', 'a.sock', 'status']);
    expect(hoistFlags(['status', '-s', 'a.sock'])).to.deep.equal(['-s', 'a.sock', 'status']);
    expect(hoistFlags(['status', '--socket=a.sock'])).to.deep.equal(['--socket=a.sock', 'status']);
    expect(hoistFlags(['-s', 'a.sock', 'task', 'x', '--', '--json'])).to.deep.equal(['-s', 'a.sock', 'task', 'x', '--json']);
    // A flag that lacks its value stays, for commander to say so.
    expect(hoistFlags(['status', '--timeout'])).to.deep.equal(['status', '--timeout']);
    expect(hoistFlags([])).to.deep.equal([]);
  });

  it('readFlags reads each flag once with its value, then the words as they are; anything else is left to commander', () => {
    expect(readFlags(['-s', 'a.sock', '--json', '--timeout', '5', 'task', '-x', '--json'])).to.deep.equal({
      flags: { socket: 'a.sock', json: true, timeout: '5' }, args: ['task', '-x', '--json'] });
    expect(readFlags(['--socket', 'a.sock', '--server-uid', 'root'])).to.deep.equal({ flags: { socket: 'a.sock', serverUid: 'root', timeout: DEFAULT_TIMEOUT }, args: [] });
    expect(readFlags(['a.sock', 'status'])).to.deep.equal({ flags: { timeout: DEFAULT_TIMEOUT }, args: ['a.sock', 'status'] });
    for (const argv of [['--help'], ['-h'], ['-V'], ['--version'], ['--timeout=5', 'x'], ['-s'], ['-s', '--json'], ['-s', 'a', '-s', 'b'],
      ['--json', '--json'], ['-x', 'status'], ['--', 'x'], ['-sa.sock', 'status'], ['-', 'x']]) {
      expect(readFlags(argv), argv.join(' ')).to.equal(null);
    }
  });

  it('readFlags answers as commander does wherever it answers', async () => {
    const words = ['-s', '--socket', '--timeout', '--server-uid', '--json', 'a.sock', 'status', '5000', '-x', '--', '--help', '-V', '--timeout=1', 'root', 'a b', ''];
    const normal = (r: unknown) => JSON.parse(JSON.stringify(r)) as unknown;
    const quiet = () => undefined;
    await fc.assert(fc.asyncProperty(fc.array(fc.constantFrom(...words), { maxLength: 7 }), async (argv) => {
      const hoisted = hoistFlags(argv);
      const fast = readFlags(hoisted);
      if (fast === null) return;
      expect(normal(await readWithCommander(hoisted, quiet, quiet)), argv.join(' ')).to.deep.equal(normal(fast));
      expect(await readArgs(argv, quiet, quiet)).to.deep.equal(fast);
    }), { numRuns: 500 });
  });

  it('placeSocket tells the socket from the command by what is a socket file', () => {
    const is = (p: string) => p.endsWith('.sock');
    expect(placeSocket(['status', 'a.sock', 'x'], is)).to.deep.equal({ socket: 'a.sock', command: 'status', args: ['x'] });
    expect(placeSocket(['a.sock', 'redeploy'], is)).to.deep.equal({ socket: 'a.sock', command: 'redeploy', args: [] });
    expect(placeSocket(['a', 'b'], is)).to.equal(null);
    expect(placeSocket(['a.sock', 'b.sock'], is)).to.equal(null);
    expect(placeSocket(['a.sock'], is)).to.equal(null);
  });

  it('isSocketFile: true for a listening UNIX socket only', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 's.sock');
    const server = net.createServer().listen(sock);
    await new Promise((r) => server.once('listening', r));
    try {
      expect(isSocketFile(sock)).to.equal(true);
      fs.writeFileSync(path.join(dir, 'f'), '');
      expect(isSocketFile(path.join(dir, 'f'))).to.equal(false);
      expect(isSocketFile(dir)).to.equal(false);
      expect(isSocketFile(path.join(dir, 'none'))).to.equal(false);
    } finally {
      server.close();
    }
  });

  it('suggestForm names the path that looks like a socket and the -s form', () => {
    expect(suggestForm(['status', '/nonexistent/w.sock'])).to.equal(
      'there is no socket /nonexistent/w.sock (is the server running?); the form is graceful-restart -s /nonexistent/w.sock status');
    expect(suggestForm(['a', 'b'])).to.equal('name the control socket with -s: graceful-restart -s <socket> <command> [args]');
    const file = path.join(tmpDir(), 'plain.sock');
    fs.writeFileSync(file, '');
    expect(suggestForm([file, 'status'])).to.equal(`${file} is not a socket; the form is graceful-restart -s ${file} status`);
  });

  it('nearest: a typo finds its command, anything else finds none', () => {
    const names = ['help', 'status', 'stats', 'telinit', 'redeploy', 'reopen', 'task', 'scale'];
    expect(nearest('stauts', names)).to.equal('status');
    expect(nearest('redploy', names)).to.equal('redeploy');
    expect(nearest('telnit', names)).to.equal('telinit');
    expect(nearest('frobnicate', names)).to.equal(null);
    expect(nearest('us', names)).to.equal(null);
    expect(nearest('', names)).to.equal(null);
    expect(nearest('x'.repeat(100), names)).to.equal(null);
  });
});

describe('the CLI with a real server: any order, typos, a redeploy that waits', function () {
  this.timeout(60_000);
  let app: Child | undefined;
  let sock: string;
  let pid: number;

  beforeEach(async () => {
    const dir = tmpDir();
    sock = path.join(dir, 'app.sock');
    const fail = path.join(dir, 'fail');
    app = spawnFixture('app', [], { env: { ...process.env, APP_SOCKET: sock, APP_FAIL_FILE: fail, APP_UPGRADE_TIMEOUT: '9000' } });
    pid = Number((await app.next(/^ready /)).split(' ')[1]);
    fs.writeFileSync(fail, 'hang');
  });

  afterEach(async () => {
    await endGenerations(app);
    app = undefined;
  });

  it('reads status with the socket after the command and --json last, or the socket first', async () => {
    const a = await graceful(['status', sock, '--json']);
    expect(a.code).to.equal(0);
    expect((JSON.parse(a.stdout) as { result: { pid: number } }).result.pid).to.equal(pid);
    const b = await graceful([sock, 'status', '--json']);
    expect(b.code).to.equal(0);
    expect((JSON.parse(b.stdout) as { result: { pid: number } }).result.pid).to.equal(pid);
    const c = await graceful(['--json', sock, 'task', 'nope']);
    expect(c.code).to.equal(2);
    expect(JSON.parse(c.stdout)).to.deep.include({ ok: false });
  });

  it('scale without workers says what it needs (exit 1, not the usage code)', async () => {
    const r = await graceful(['-s', sock, 'scale', '2']);
    expect(r).to.deep.include({ code: 1, stderr: 'error: scale: this service runs without workers: set the workers option (or GRACEFUL_WORKERS) to scale it\n' });
    const json = await graceful(['--json', sock, 'scale', '2']);
    expect(JSON.parse(json.stdout)).to.deep.equal({ ok: false, error: { code: 'ERR_GRACEFUL_NOT_CONFIGURED',
      message: 'scale: this service runs without workers: set the workers option (or GRACEFUL_WORKERS) to scale it' } });
  });

  it('suggests the nearest command on a typo (exit 2)', async () => {
    const r = await graceful(['-s', sock, 'stauts']);
    expect(r).to.deep.include({ code: 2, stderr: 'error: unknown command "stauts": did you mean status? type help for the list\n' });
    const far = await graceful([sock, 'frobnicate']);
    expect(far).to.deep.include({ code: 2, stderr: 'error: unknown command "frobnicate": type help for the list\n' });
  });

  it('says what a redeploy waits for, and on Ctrl-C that it goes on in the server', async () => {
    const child = spawn(process.execPath, [cli, 'redeploy', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let onOut: (() => void) | null = null;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      onOut?.();
    });
    const seen = (re: RegExp) => new Promise<void>((resolve, reject) => {
      onOut = () => {
        if (re.test(out)) resolve();
      };
      child.once('exit', () => reject(new Error(`the CLI exited before ${re}: ${out}`)));
      onOut();
    });
    await seen(/^spawned pid (\d+)$/m);
    const newPid = Number(/^spawned pid (\d+)$/m.exec(out)![1]);
    await seen(/^waiting for pid \d+ to be ready: \d+ s so far; the server gives up at 9 s$/m);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGINT');
    expect(await exited).to.equal(130);
    expect(out).to.include(`interrupted: the redeploy (new instance pid ${newPid}) goes on in the server; follow it with: graceful-restart status ${sock}\n`);
    // The redeploy went on: the server still has it under way, with the new pid.
    const st = await graceful(['status', sock, '--json']);
    const status = (JSON.parse(st.stdout) as { result: { pid: number; redeploy: string } }).result;
    expect(status.pid).to.equal(pid);
    expect(status.redeploy).to.match(new RegExp(`^pid ${newPid} for \\d+ ms$`));
    // The server gives up on the hung instance at its timeout, and serves on.
    for (;;) {
      const now = (JSON.parse((await graceful(['status', sock, '--json'])).stdout) as { result: { pid: number; redeploy: string } }).result;
      expect(now.pid).to.equal(pid);
      if (now.redeploy === 'none') break;
    }
  });
});
