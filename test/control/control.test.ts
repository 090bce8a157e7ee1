/**
 * The control socket and the CLI against a real graceful server: built-in and
 * custom commands, plain mode as `nc -U` would use it, JSON mode, refused uids,
 * socket files, a connection that survives a redeploy, and bad input.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { openFds, root, spawnChild, spawnFixture, until, type Child, endGenerations } from '../helpers.js';
import { OTHER_UID, otherUidCase, sharedDir } from '../helpers/other-uid.js';

const cli = path.join(root, 'bin/graceful-restart.js');

/** graceful runs the CLI and resolves with its exit code and output. */
function graceful(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** RawClient: a plain socket, as `nc -U` is. */
class RawClient {
  readonly lines: string[] = [];
  private seen = 0;
  readonly closed: Promise<void>;
  constructor(readonly socket: net.Socket) {
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => {
      buf += c;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((r) => socket.once('close', () => r()));
  }

  static connect(p: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(p, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  /** send writes a line and resolves with the lines up to the final ok / error. */
  async send(line: string): Promise<string[]> {
    this.socket.write(`${line}\n`);
    return this.reply();
  }

  async reply(): Promise<string[]> {
    await until(() => this.lines.slice(this.seen).some(isFinal), 20_000, 'a reply');
    const end = this.lines.findIndex((l, i) => i >= this.seen && isFinal(l));
    const out = this.lines.slice(this.seen, end + 1);
    this.seen = end + 1;
    return out;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** isFinal: the last line of a reply, plain (ok, error: ...) or JSON ({"ok": ...}). */
function isFinal(line: string): boolean {
  if (line === 'ok' || line.startsWith('error: ')) return true;
  if (!line.startsWith('{')) return false;
  try {
    return 'ok' in (JSON.parse(line) as object);
  } catch {
    return false;
  }
}

describe('control socket and CLI', function () {
  this.timeout(60_000);
  let dir: string;
  let sock: string;
  let app: Child;
  let pid: number;

  async function startApp(env: Record<string, string> = {}): Promise<void> {
    app = spawnFixture('app', [], { env: { ...process.env, APP_SOCKET: sock, ...env } });
    pid = Number((await app.next(/^ready /)).split(' ')[1]);
  }

  beforeEach(async () => {
    dir = sharedDir(0o700); // where the other-uid case can reach it once opened
    sock = path.join(dir, 'app.sock');
  });

  afterEach(async () => {
    await endGenerations(app);
  });

  it('runs every built-in command through the CLI, with documented exit codes', async () => {
    await startApp({ APP_UPDATE: 'echo pulled; echo warn >&2', APP_REBUILD: 'echo building; exit 4', APP_LOG: path.join(dir, 'app.log') });
    const help = await graceful('-s', sock, 'help');
    expect(help.code).to.equal(0);
    for (const cmd of ['help', 'status', 'telinit', 'redeploy', 'update', 'rebuild', 'upgrade', 'reopen', 'hello', 'tick', 'quit', 'oneshot']) {
      expect(help.stdout, cmd).to.match(new RegExp(`^${cmd}\\b`, 'm'));
    }
    expect((await graceful('-s', sock, 'help', 'telinit')).stdout).to.include('1 closes the listeners');

    const status = await graceful('status', sock);
    expect(status.code).to.equal(0);
    expect(status.stdout).to.include(`pid: ${pid}\n`).and.include('runlevel: 3').and.include('generation: 1').and.match(/^  http +open +tcp +127\.0\.0\.1 +\d+ /m);

    expect(await graceful('health', sock)).to.include({ code: 0 });
    expect((await graceful('-s', sock, 'telinit', '1')).stdout).to.equal('runlevel: 1\n');
    const unhealthy = await graceful('health', sock);
    expect(unhealthy.code).to.equal(1);
    expect(unhealthy.stdout).to.include('runlevel 1');
    expect((await graceful('-s', sock, 'telinit', '3')).code).to.equal(0);
    const bad = await graceful('-s', sock, 'telinit', '2');
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include('runlevel must be 0 (halt), 1 (single user: listeners closed) or 3 (serving), got "2"');

    const update = await graceful('-s', sock, 'update');
    expect(update).to.include({ code: 0 });
    expect(update.stdout).to.include('pulled').and.include('warn');
    const upgrade = await graceful('-s', sock, 'upgrade');
    expect(upgrade.code).to.equal(1);
    expect(upgrade.stdout).to.include('pulled').and.include('building');
    expect(upgrade.stderr).to.include('rebuild failed (exit code 4)');
    expect((await graceful('-s', sock, 'reopen')).stdout).to.equal('reopened:\n  log\n');

    const usage = await graceful('-s', sock, 'nosuchcommand');
    expect(usage.code).to.equal(2);
    expect(usage.stderr).to.include('unknown command "nosuchcommand"');
    expect((await graceful('-s', sock, 'hello')).code).to.equal(2);
    expect((await graceful('a', 'b', 'c')).code).to.equal(2);
    const nowhere = await graceful('status', path.join(dir, 'none.sock'));
    expect(nowhere.code).to.equal(3);
    expect(nowhere.stderr).to.include(`cannot connect to ${path.join(dir, 'none.sock')}: ENOENT`);

    // The default form: redeploy, with each step.
    const redeploy = await graceful(sock);
    expect(redeploy.code, redeploy.stderr).to.equal(0);
    expect(redeploy.stdout).to.match(/^spawned pid (\d+)\nready: pid \1 after \d+ ms\ndraining \d+ connection\(s\)\ndone: pid \1 is serving\n$/);
    const newPid = Number(/spawned pid (\d+)/.exec(redeploy.stdout)![1]);
    expect((await graceful('status', sock)).stdout).to.include(`pid: ${newPid}\n`).and.include('generation: 2');
    expect((await graceful('-s', sock, 'restart')).code).to.equal(0); // the alias
  });

  it('reports a failed redeploy with exit code 1 while the old instance keeps serving', async () => {
    const failFile = path.join(dir, 'fail');
    await startApp({ APP_FAIL_FILE: failFile });
    fs.writeFileSync(failFile, 'exit');
    const r = await graceful(sock);
    expect(r.code).to.equal(1);
    expect(r.stdout).to.match(/^spawned pid \d+\n$/);
    expect(r.stderr).to.match(/error: the new instance \(pid \d+\) exited with code 3 before it was ready; its last words: app: exiting at start on purpose; this instance goes on serving/);
    expect((await graceful('status', sock)).stdout).to.include(`pid: ${pid}\n`);
  });

  it('runs custom commands, streaming until the client leaves; CUSTOM is an alias', async () => {
    await startApp();
    expect((await graceful('-s', sock, 'hello', 'world')).stdout).to.equal(`hello world from ${pid}\n`);
    expect((await graceful('-s', sock, 'CUSTOM', 'hello', 'diamond')).stdout).to.equal(`hello diamond from ${pid}\n`);
    const c = await RawClient.connect(sock);
    c.socket.write('tick 20\n');
    await until(() => c.lines.includes('tick 5'), 10_000, 'five ticks');
    c.close();
    await app.next(new RegExp(`^tick stopped ${pid}`));
  });

  it('speaks plain mode to a raw socket: several commands, quotes, errors, quit and oneshot', async () => {
    await startApp();
    const c = await RawClient.connect(sock);
    expect(await c.send('hello "big world"')).to.deep.equal([`hello big world from ${pid}`, 'ok']);
    expect(await c.send("hello 'it''s'")).to.deep.equal([`hello its from ${pid}`, 'ok']);
    expect(await c.send('hello "unterminated')).to.deep.equal(['error: unterminated double quote: close it, or escape it with \\']);
    expect(await c.send('frobnicate')).to.deep.equal(['error: unknown command "frobnicate": type help for the list']);
    expect(await c.send('hello a b')).to.deep.equal(['error: usage: hello <name>            say hello']);
    expect((await c.send('status')).slice(0, 1)).to.deep.equal([`pid: ${pid}`]);
    expect(await c.send('quit')).to.deep.equal(['ok']);
    await c.closed;
    const one = await RawClient.connect(sock);
    expect(await one.send('oneshot hello x')).to.deep.equal([`hello x from ${pid}`, 'ok']);
    await one.closed;
  });

  it('speaks JSON mode: events, then one final object', async () => {
    await startApp();
    const c = await RawClient.connect(sock);
    const status = await c.send('{"cmd":"status","args":[],"id":7}');
    const final = JSON.parse(status.at(-1)!) as { id: number; ok: boolean; result: { pid: number; runlevel: number } };
    expect(final).to.deep.include({ id: 7, ok: true });
    expect(final.result).to.include({ pid, runlevel: 3 });
    expect((await c.send('{"cmd":"nope"}')).map((l) => JSON.parse(l))).to.deep.equal([
      { ok: false, error: { code: 'ERR_GRACEFUL_UNKNOWN_COMMAND', message: 'unknown command "nope": type help for the list' } },
    ]);
    expect((await c.send('{"cmd":')).map((l) => JSON.parse(l) as { error: { code: string } })[0]!.error.code).to.equal('ERR_GRACEFUL_CONTROL_PARSE');
    const redeploy = (await c.send('{"cmd":"redeploy"}')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(redeploy.map((e) => e.event ?? 'final')).to.deep.equal(['spawned', 'ready', 'draining', 'final']);
    expect(redeploy.at(-1)).to.deep.include({ ok: true });
    // The CLI's --json prints the same objects.
    const r = await graceful('-s', sock, '--json', 'hello', 'j');
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!)).to.deep.equal({ ok: true, result: `hello j from ${(redeploy.at(-1)!.result as { pid: number }).pid}` });
    c.close();
  });

  it('keeps an admin connection across a redeploy: the same connection then talks to the new instance', async () => {
    await startApp();
    const c = await RawClient.connect(sock);
    expect((await c.send('status'))[0]).to.equal(`pid: ${pid}`);
    const lines = await c.send('redeploy');
    expect(lines.at(-1)).to.equal('ok');
    const newPid = Number(/^spawned pid (\d+)$/.exec(lines[0]!)![1]);
    expect(lines[1]).to.match(new RegExp(`^ready: pid ${newPid} after \\d+ ms$`));
    expect((await c.send('status'))[0]).to.equal(`pid: ${newPid}`);
    expect(await c.send('hello again')).to.deep.equal([`hello again from ${newPid}`, 'ok']);
    // A second connection opened before the redeploy, idle during it, moves too.
    const idle = await RawClient.connect(sock);
    expect((await idle.send('status'))[0]).to.equal(`pid: ${newPid}`);
    expect((await c.send('redeploy')).at(-1)).to.equal('ok');
    expect((await idle.send('status'))[0]).to.not.equal(`pid: ${newPid}`);
    c.close();
    idle.close();
  });

  it('refuses a client of another uid, with a line saying why (root runs the tests)', async function () {
    otherUidCase(this);
    await startApp({ APP_SOCKET_MODE: '666' });
    fs.chmodSync(dir, 0o755);
    const py = spawnChild('python3', ['-c', [
      'import os, socket',
      `os.setgid(${OTHER_UID}); os.setuid(${OTHER_UID})`,
      's = socket.socket(socket.AF_UNIX)',
      `s.connect(${JSON.stringify(sock)})`,
      's.sendall(b"status\\n")',
      'print(s.recv(4096).decode().strip(), flush=True)',
    ].join('\n')], { cwd: '/' });
    expect(await py.next()).to.equal(`error: permission denied: uid 65534 may not use this socket (the server runs as uid 0; allow it with controlAllowUids)`);
    // With the default mode 0600 the kernel refuses first.
    fs.chmodSync(sock, 0o600);
    const denied = spawnChild('python3', ['-c', `import os, socket\nos.setgid(${OTHER_UID}); os.setuid(${OTHER_UID})\ntry:\n  socket.socket(socket.AF_UNIX).connect(${JSON.stringify(sock)})\nexcept OSError as e:\n  print(e.errno, flush=True)`], { cwd: '/' });
    expect(await denied.next()).to.equal('13'); // EACCES
  });

  it('replaces a stale socket file and refuses a live one, naming its pid', async () => {
    const py = spawnChild('python3', ['-c', `import socket; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(sock)})`]);
    await py.exited;
    await startApp();
    expect((await graceful('status', sock)).stdout).to.include(`pid: ${pid}`);
    const second = spawnFixture('app', [], { env: { ...process.env, APP_SOCKET: sock } });
    const { code } = await second.exited;
    expect(code).to.equal(1);
    expect(second.stderr.join('\n')).to.include(`controlSocket: ${sock} is in use by pid ${pid}: stop that process or choose another path`);
  });

  it('survives bad input: long lines, binary garbage, silent clients, hundreds of clients; nothing leaks', async () => {
    await startApp({ APP_CONTROL_IDLE: '400' });
    const baseline = openFds(pid).length;
    const long = await RawClient.connect(sock);
    long.socket.write(`${'x'.repeat(70_000)}\n`);
    await long.closed;
    expect(long.lines).to.deep.equal(['error: line too long: the limit is 65536 bytes']);

    const garbage = await RawClient.connect(sock);
    expect(await garbage.send('\x00\x01\x02\xff\xfe binary')).to.deep.equal(['error: the line holds control characters: send text, one command per line']);
    expect((await garbage.send('status'))[0]).to.equal(`pid: ${pid}`);
    garbage.close();

    const silent = await RawClient.connect(sock);
    await silent.closed;
    expect(silent.lines).to.deep.equal(['error: idle for 400 ms: closing']);

    // 64 connections and 4 kept for probes are served (then closed as idle);
    // the other 132 are refused: the first 16 with an answer, the others
    // (more refusals in flight than maxRefused) closed at once.
    const many = await Promise.all(Array.from({ length: 200 }, () => RawClient.connect(sock)));
    let closed = 0;
    for (const c of many) void c.closed.then(() => closed++);
    await until(() => closed === 200, 20_000, 'every connection closed by the server');
    const idle = many.filter((c) => c.lines.join() === 'error: idle for 400 ms: closing').length;
    const refused = many.filter((c) => c.lines.join() === 'error: too many connections (64): try again later').length;
    const unanswered = many.filter((c) => c.lines.length === 0).length;
    expect({ idle, answered: refused > 0 && refused <= 16, total: refused + unanswered }).to.deep.equal({ idle: 68, answered: true, total: 132 });
    await until(() => openFds(pid).length === baseline, 10_000, `the server's descriptors back to ${baseline}`);
    const after = await RawClient.connect(sock);
    expect((await after.send('status'))[0]).to.equal(`pid: ${pid}`);
    after.close();
    await until(() => openFds(pid).length === baseline, 10_000, `the server's descriptors back to ${baseline}`);
  });
});
