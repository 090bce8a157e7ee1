/**
 * Error codes asserted where they are raised, each with its class: the
 * addon missing, a duplicate command, a failed or misused built-in command,
 * timeouts, a hand-off peer that is not the parent.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import {
  CommandFailedError, CommandRegistry, ControlClient, ControlServer, DuplicateNameError, listenAndServe, PeerRefusedError,
  receive, TimeoutError, UsageError, type ControlTarget,
} from '../../src/index.js';
import { addBuiltins } from '../../src/control/builtins.js';
import { fixtures, root, spawnChild, tmpDir } from '../helpers.js';

const target: ControlTarget = {
  status: () => ({}),
  telinit: async () => undefined,
  redeploy: async () => ({ pid: 1, readyMs: 1 }),
  reopen: async () => [],
  tasks: () => [],
  runTask: async () => undefined,
  shellCommands: { update: 'echo pulling; exit 3' },
};

/** withBuiltins runs fn against a control server with the built-in commands over a test target. */
async function withBuiltins<T>(fn: (sock: string, server: ControlServer) => Promise<T>): Promise<T> {
  const sock = path.join(tmpDir(), 'c.sock');
  const server = new ControlServer(sock);
  addBuiltins(server.commands, target);
  await server.listen();
  try {
    return await fn(sock, server);
  } finally {
    server.close(true);
  }
}

/** replyError runs cmd and resolves with the error the server answered. */
async function replyError(sock: string, cmd: string, args: string[] = []): Promise<{ code?: string; message: string }> {
  const client = await ControlClient.connect(sock);
  try {
    return await client.request(cmd, args).then(() => expect.fail(`${cmd} succeeded`), (e: Error & { code?: string }) => e);
  } finally {
    client.close();
  }
}

describe('error codes where they are raised', () => {
  it('ERR_GRACEFUL_ADDON_NOT_FOUND: GRACEFUL_ADDON_PATH names no file', () => {
    const script = `import(${JSON.stringify(path.join(root, 'dist/src/native.js'))}).catch((e) => { console.log(JSON.stringify({ code: e.code, name: e.name, message: e.message })); });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, GRACEFUL_ADDON_PATH: 'build/none/graceful_fdpass.node' } });
    const out = JSON.parse(r.stdout) as { code: string; name: string; message: string };
    expect(out).to.include({ code: 'ERR_GRACEFUL_ADDON_NOT_FOUND', name: 'AddonNotFoundError' });
    expect(out.message).to.equal(`the native addon is missing at ${path.join(root, 'build/none/graceful_fdpass.node')}: fix GRACEFUL_ADDON_PATH, or unset it to use the package's own build`);
  });

  it('ERR_GRACEFUL_DUPLICATE_NAME: a command registered twice', () => {
    const registry = new CommandRegistry();
    registry.add('hello', { usage: 'hello', run: () => 'hi' });
    expect(() => registry.add('hello', { usage: 'hello', run: () => 'hi' })).to.throw(DuplicateNameError, 'the command "hello" exists already: choose another name')
      .with.property('code', 'ERR_GRACEFUL_DUPLICATE_NAME');
  });

  it('ERR_GRACEFUL_COMMAND_FAILED: a configured update command that exits non-zero', async () => {
    await withBuiltins(async (sock) => {
      const err = await replyError(sock, 'update');
      expect(err).to.include({ code: 'ERR_GRACEFUL_COMMAND_FAILED', message: 'update failed (exit code 3): echo pulling; exit 3' });
    });
    expect(new CommandFailedError('x').code).to.equal('ERR_GRACEFUL_COMMAND_FAILED');
  });

  it('ERR_GRACEFUL_USAGE: CUSTOM naming itself', async () => {
    await withBuiltins(async (sock) => {
      const err = await replyError(sock, 'CUSTOM', ['CUSTOM']);
      expect(err).to.include({ code: 'ERR_GRACEFUL_USAGE', message: 'usage: CUSTOM <command> [args...]' });
    });
    expect(new UsageError('x')).to.have.property('code', 'ERR_GRACEFUL_USAGE');
  });

  it('ERR_GRACEFUL_TIMEOUT: a control request without an answer in time, and a receive() whose server never finishes', async () => {
    await withBuiltins(async (sock, server) => {
      server.commands.add('forever', { usage: 'forever', run: (ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(undefined))) });
      const client = await ControlClient.connect(sock);
      const err = await client.request('forever', [], undefined, 100).then(() => null, (e: unknown) => e);
      client.close();
      expect(err).to.be.instanceOf(TimeoutError);
      expect(err).to.include({ code: 'ERR_GRACEFUL_TIMEOUT', message: 'no answer within 100 ms' });
    });
    const sock = path.join(tmpDir(), 'h.sock');
    let release!: () => void;
    const hs = listenAndServe(sock, () => new Promise<void>((r) => (release = r)));
    const err = await receive(sock, () => undefined, { timeout: 100 }).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(TimeoutError);
    expect(err).to.include({ code: 'ERR_GRACEFUL_TIMEOUT', message: `receive: ${sock} did not finish sending within 100 ms` });
    release();
    await hs.close();
  });

  it('ERR_GRACEFUL_PEER_REFUSED: a new instance whose hand-off socket is served by a process other than its parent', async () => {
    const sock = path.join(tmpDir(), 'h.sock');
    const hs = listenAndServe(sock, () => undefined);
    // Under sh, the instance's parent is the shell, not this process, which serves the socket.
    const child = spawnChild('sh', ['-c', `"${process.execPath}" "${path.join(fixtures, 'app.js')}"; exit $?`], {
      env: { ...process.env, GRACEFUL_HANDOFF: sock },
    });
    const { code } = await child.exited;
    await hs.close();
    expect(code).to.not.equal(0);
    const stderr = child.stderr.join('\n');
    expect(stderr).to.include(`${PeerRefusedError.name}: hand-off: ${sock} is served by pid ${process.pid}, not by our parent (pid `);
    expect(stderr).to.include("code: 'ERR_GRACEFUL_PEER_REFUSED'");
  });

  it('ERR_GRACEFUL_HANDOFF_FAILED: the parent closes the hand-off before sending everything', () => {
    const sock = path.join(tmpDir(), 'h.sock');
    // A parent that serves the hand-off socket but sends nothing, then runs the new instance.
    const script = `
      import { listenAndServe } from ${JSON.stringify(path.join(root, 'dist/src/index.js'))};
      const hs = listenAndServe(${JSON.stringify(sock)}, () => undefined);
      const child = (await import('node:child_process')).spawn(process.execPath, [${JSON.stringify(path.join(fixtures, 'app.js'))}],
        { env: { ...process.env, GRACEFUL_HANDOFF: ${JSON.stringify(sock)} }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c) => (stderr += c));
      child.on('close', async (code) => {
        await hs.close();
        console.log(JSON.stringify({ code, stderr }));
      });`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
    expect(r.status, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout) as { code: number; stderr: string };
    expect(out.code).to.not.equal(0);
    expect(out.stderr).to.include('HandoffFailedError: hand-off: the predecessor closed the connection before sending everything');
    expect(out.stderr).to.include("code: 'ERR_GRACEFUL_HANDOFF_FAILED'");
  });
});
