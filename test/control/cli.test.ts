/**
 * The CLI's words against a real server: --version, forms without a socket,
 * one exit-code rule for every command, commands from a pipe, what is wrong at
 * a path that is not a socket, and units in status for people.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { root, spawnFixture, tmpDir, type Child, endGenerations } from '../helpers.js';
import { OTHER_UID, otherUidCase, otherUidCli, otherUidEnv } from '../helpers/other-uid.js';

const cli = path.join(root, 'bin/graceful-restart.js');

/** graceful runs the CLI (stdin given, or closed) and resolves with its exit code and output. */
function graceful(args: string[], options: { input?: string; uid?: number; gid?: number; env?: NodeJS.ProcessEnv; cli?: string; cwd?: string } = {}):
  Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [options.cli ?? cli, ...args], {
      timeout: 30_000, uid: options.uid, gid: options.gid, env: options.env, cwd: options.cwd,
    }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    child.stdin!.end(options.input ?? '');
  });
}

describe('the CLI: usage, exit codes, pipes', function () {
  this.timeout(60_000);
  let dir: string;
  let sock: string;
  let app: Child | undefined;
  let pid: number;

  beforeEach(async () => {
    dir = tmpDir();
    sock = path.join(dir, 'app.sock');
  });

  afterEach(async () => {
    await endGenerations(app);
    app = undefined;
  });

  async function startApp(): Promise<void> {
    app = spawnFixture('app', [], { env: { ...process.env, APP_SOCKET: sock } });
    pid = Number((await app.next(/^ready /)).split(' ')[1]);
  }

  it('prints its version, and takes a form word without a socket as a usage error', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const v = await graceful([flag]);
      expect(v).to.deep.equal({ code: 0, stdout: `${pkg.version}\n`, stderr: '' });
    }
    for (const word of ['status', 'health', 'help']) {
      const r = await graceful([word]);
      expect(r.code, word).to.equal(2);
      expect(r.stderr, word).to.match(new RegExp(`^error: "${word}" needs a control socket: graceful-restart .*\\nusage: graceful-restart <socket>`));
    }
    const none = await graceful([]);
    expect(none.code).to.equal(2);
    expect(none.stderr).to.match(/^error: no socket given\nusage: /);
    const many = await graceful(['a', 'b', 'c']);
    expect(many.code).to.equal(2);
    expect(many.stderr).to.match(/^error: cannot read "a b c": name the control socket with -s: graceful-restart -s <socket> <command> \[args\]\nusage: /);
    const timeout = await graceful(['--timeout', '0', 'status', sock]);
    expect(timeout).to.deep.include({ code: 2, stderr: 'error: --timeout must be a positive number of ms, got 0\n' });
  });

  it('one rule for exit codes: 2 for bad arguments to any command, 1 for a command that failed', async () => {
    await startApp();
    const cases: [string[], number, RegExp][] = [
      [['telinit', '7'], 2, /^error: runlevel must be 0 \(halt\), 1 \(single user: listeners closed\) or 3 \(serving\), got "7"\n$/],
      [['telinit'], 2, /^error: usage: telinit 0\|1\|3/],
      [['task', 'nope'], 2, /^error: no task "nope": the tasks are /],
      [['nosuchcommand'], 2, /^error: unknown command "nosuchcommand"/],
      [['status'], 0, /^$/],
    ];
    for (const [args, code, stderr] of cases) {
      const r = await graceful(['-s', sock, ...args]);
      expect(r.code, args.join(' ')).to.equal(code);
      expect(r.stderr, args.join(' ')).to.match(stderr);
    }
    const json = await graceful(['--json', '-s', sock, 'telinit', '7']);
    expect(json.code).to.equal(2);
    expect(JSON.parse(json.stdout.trim().split('\n').pop()!)).to.deep.include({ ok: false }).and.nested.include({ 'error.code': 'ERR_GRACEFUL_INVALID_RUNLEVEL' });
  });

  it('reads commands from a pipe, one per line, and stops at the first that fails with its exit code', async () => {
    await startApp();
    const state = path.join(dir, 'state');
    const ok = await graceful(['-s', sock], { input: '# a comment\n\nstatus\ntask\n', env: { ...process.env, XDG_STATE_HOME: state } });
    expect(ok.code, ok.stderr).to.equal(0);
    expect(fs.existsSync(state), 'no shell history from a pipe').to.equal(false);
    expect(ok.stdout).to.include(`pid: ${pid}\n`).and.include('reopen');
    const stopped = await graceful(['-s', sock], { input: 'telinit 1\ntelinit 7\ntelinit 3\n' });
    expect(stopped.code).to.equal(2);
    expect(stopped.stdout).to.equal('runlevel: 1\n');
    expect(stopped.stderr).to.include('got "7"');
    // The third line never ran: the server is still in runlevel 1.
    expect((await graceful(['-s', sock, 'status'])).stdout).to.include('runlevel: 1\n');
    const empty = await graceful(['-s', sock], { input: '\n# nothing\n' });
    expect(empty.code).to.equal(2);
    expect(empty.stderr).to.match(/^error: no command on standard input/);
  });

  it('gives status units and a listeners table for people, plain numbers and listener fields in --json', async () => {
    await startApp();
    const human = await graceful(['status', sock]);
    expect(human.code).to.equal(0);
    expect(human.stdout).to.match(/^rss: \d+\.\d (KiB|MiB|GiB)$/m).and.match(/^heapUsed: \d+\.\d (KiB|MiB|GiB)$/m).and.match(/^uptime: \d+ s$/m);
    const json = await graceful(['--json', 'status', sock]);
    const result = (JSON.parse(json.stdout.trim()) as { result: { rss: unknown; uptime: unknown; listeners: Record<string, unknown>[] } }).result;
    expect(result.rss).to.be.a('number');
    expect(result.uptime).to.be.a('number');
    // Listeners: structured fields for programs, a table for people.
    expect(result.listeners).to.have.length(1);
    const l = result.listeners[0]!;
    expect(l).to.include({ name: 'http', state: 'open', kind: 'tcp', host: '127.0.0.1', connections: 0, systemd: false });
    expect(l.port).to.be.a('number').above(0);
    expect(l.fd).to.be.a('number');
    expect(fs.readlinkSync(`/proc/${pid}/fd/${String(l.fd)}`)).to.match(/^socket:\[\d+\]$/);
    const lines = human.stdout.split('\n');
    const at = lines.indexOf('listeners:');
    expect(lines[at + 1]).to.match(/^  name +state +kind +host +port +fd +connections +systemd +states$/);
    expect(lines[at + 2]).to.match(new RegExp(`^  http +open +tcp +127\\.0\\.0\\.1 +${String(l.port)} +${String(l.fd)} +0 +false +-$`));
  });

  it('says what is wrong at a path that is not a socket', async () => {
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, '');
    const notSocket = await graceful(['status', file]);
    expect(notSocket.code).to.equal(3);
    expect(notSocket.stderr).to.equal(`error: cannot connect to ${file}: ECONNREFUSED: it is a regular file or another kind of file, not a socket; check the path\n`);
    const directory = await graceful(['status', dir]);
    expect(directory.code).to.equal(3);
    expect(directory.stderr).to.include(`${dir}: ECONNREFUSED: it is a directory, not a socket`);
    const missing = await graceful(['status', path.join(dir, 'none.sock')]);
    expect(missing.code).to.equal(3);
    expect(missing.stderr).to.include('ENOENT: there is no such file; is the server running with this control socket?');
  });

  it('names the uid that was refused', async function () {
    otherUidCase(this); // a copy of the CLI that uid can load, wherever the checkout is
    await startApp();
    const copy = otherUidCli();
    const denied = await graceful(['status', sock], { uid: OTHER_UID, gid: OTHER_UID, cli: copy, cwd: path.dirname(copy), env: otherUidEnv() });
    expect(denied.stderr).to.include(`cannot connect to ${sock}: EACCES: permission denied for uid ${OTHER_UID}`);
    expect(denied.code).to.equal(3);
  });
});
