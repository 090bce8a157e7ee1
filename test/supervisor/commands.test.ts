/** supervisor/commands.ts: the supervisor's own commands, and forwarding to the application's control socket (a real UNIX socket). */
import { expect } from 'chai';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { CommandRegistry, type CommandContext } from '../../src/control/commands.js';
import { addSupervisorCommands, type SupervisedTarget } from '../../src/supervisor/commands.js';
import { rssOf } from '../../src/supervisor/procfs.js';
import { fdCount, tmpDir } from '../helpers.js';

interface Ran { result: unknown; lines: string[]; events: unknown[] }

function target(over: Partial<SupervisedTarget> = {}): SupervisedTarget & { sent: string[] } {
  const sent: string[] = [];
  return {
    sent, currentPid: 4242, ready: true, appControl: null, notified: true, generationPids: [4242], restarts: 1, uptime: 12,
    options: { command: 'node', args: ['app.js'] },
    forward: (sig) => sent.push(sig) > 0,
    ...over,
  };
}

async function run(registry: CommandRegistry, line: string[], json = false): Promise<Ran> {
  const { name, command } = registry.get(line[0]!);
  const ran: Ran = { result: undefined, lines: [], events: [] };
  const ctx: CommandContext = {
    name, args: line.slice(1), json, peer: { pid: process.pid, uid: 0, gid: 0 }, signal: new AbortController().signal,
    write: (l) => ran.lines.push(l) > 0,
    event: (e, text) => ran.events.push(json ? e : text) > 0,
    drain: async () => undefined,
    handover: () => undefined,
  };
  ran.result = await command.run(ctx);
  return ran;
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  return p.then(() => { throw new Error('expected a rejection'); }, (e: Error) => e);
}

/** app: the application's control socket, answering each JSON request with answer(cmd, args). */
async function app(answer: (cmd: string, args: string[]) => string[]): Promise<{ path: string; seen: string[]; close(): Promise<void> }> {
  const p = path.join(tmpDir(), 'app.sock');
  const seen: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    readline.createInterface({ input: s }).on('line', (line) => {
      const { cmd, args } = JSON.parse(line) as { cmd: string; args: string[] };
      seen.push([cmd, ...args].join(' '));
      s.write(`${answer(cmd, args).join('\n')}\n`);
    });
  });
  await new Promise<void>((r) => server.listen(p, r));
  return { path: p, seen, close: () => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }) };
}

describe('supervisor/commands', () => {
  it('signal sends a signal to the current generation, and refuses what cannot be sent', async () => {
    const r = new CommandRegistry();
    const t = target();
    addSupervisorCommands(r, t);
    expect((await run(r, ['signal', 'hup'])).result).to.equal('sent SIGHUP to pid 4242');
    expect((await run(r, ['signal', 'SIGUSR1'], true)).result).to.deep.equal({ pid: 4242, signal: 'SIGUSR1' });
    expect(t.sent).to.deep.equal(['SIGHUP', 'SIGUSR1']);
    for (const bad of ['SIGKILL', 'stop', 'NOPE']) {
      expect(await rejection(run(r, ['signal', bad]))).to.include({
        code: 'ERR_GRACEFUL_USAGE', message: `signal: ${JSON.stringify(bad)} is not a signal that can be sent here (e.g. SIGHUP, SIGUSR1, SIGTERM)`,
      });
    }
    const none = new CommandRegistry();
    addSupervisorCommands(none, target({ forward: () => false }));
    expect(await rejection(run(none, ['signal', 'TERM']))).to.include({ code: 'ERR_GRACEFUL_COMMAND_FAILED', message: 'SIGTERM: no generation is running' });
  });

  it('status without an application control socket is the supervisor\'s own', async () => {
    const r = new CommandRegistry();
    addSupervisorCommands(r, target());
    expect((await run(r, ['status'])).result).to.deep.equal({
      supervisor: process.pid, pid: 4242, rss: rssOf(4242), generations: [4242], ready: true, notified: true, restarts: 1, supervisorUptime: 12, command: 'node app.js', appControl: null,
    });
  });

  it('status gives the application\'s pid and its memory (rss, from /proc), over what the instance that answered says', async () => {
    const r = new CommandRegistry();
    addSupervisorCommands(r, target({ currentPid: process.pid }));
    const own = (await run(r, ['status'])).result as { pid: number; rss: number };
    expect(own.pid).to.equal(process.pid);
    expect(own.rss).to.be.within(process.memoryUsage().rss * 0.8, process.memoryUsage().rss * 1.2);
    // An old instance, still draining, may answer: its rss is not the current generation's.
    const a = await app(() => ['{"ok":true,"result":{"pid":1,"rss":1,"runlevel":3}}']);
    const merged = new CommandRegistry();
    addSupervisorCommands(merged, target({ currentPid: process.pid, appControl: a.path }));
    const st = (await run(merged, ['status'])).result as { pid: number; rss: number; runlevel: number };
    expect(st).to.include({ pid: process.pid, runlevel: 3 });
    expect(st.rss).to.be.above(1024 * 1024);
    await a.close();
  });

  it('without a control socket, a forwarded command says why and what works instead', async () => {
    const r = new CommandRegistry();
    addSupervisorCommands(r, target());
    expect(await rejection(run(r, ['restart']))).to.include({
      code: 'ERR_GRACEFUL_NOT_CONFIGURED',
      message: 'the application (pid 4242) announced no control socket, so "redeploy" cannot reach it: give its GracefulServer the controlSocket option, or send SIGHUP (signal SIGHUP) to have it redeploy',
    });
    const plain = new CommandRegistry();
    addSupervisorCommands(plain, target({ notified: false }));
    expect((await rejection(run(plain, ['frob']))).message).to.equal(
      'the application (pid 4242) is not a GracefulServer (it never spoke sd_notify), so "frob" cannot reach it: only the supervisor\'s own commands work (help lists them)',
    );
    expect((await rejection(run(plain, ['redeploy']))).message).to.match(/cannot be redeployed; build it on GracefulServer with the controlSocket option/);
    // A program run under graceful-restart/register that is not ready yet: not told to be rebuilt.
    const registered = new CommandRegistry();
    addSupervisorCommands(registered, target({ notified: false, options: { command: 'node', args: ['server.js'], registered: true } }));
    expect((await rejection(run(registered, ['redeploy']))).message).to.equal(
      'the application (pid 4242) runs under graceful-restart/register and is not ready yet, so "redeploy" cannot reach it: it is ready once its listens settled '
        + '(or as --ready says); try again then (`status` says ready: true once it is). '
        + 'A program that listens on no address the register keeps (it never listens, or only on port 0) is never ready: see --ready',
    );
  });

  it('forwards other commands to the application, relaying output and events; status merges both', async () => {
    const before = fdCount();
    const a = await app((cmd) => {
      if (cmd === 'status') return ['{"ok":true,"result":{"pid":1,"runlevel":3,"ready":false}}'];
      if (cmd === 'redeploy') return ['{"event":"spawned","pid":77}', '{"ok":true,"result":{"pid":77}}'];
      if (cmd === 'help') return ['{"ok":true,"result":["frob    do a thing"]}'];
      return ['{"event":"output","line":"working"}', '{"ok":false,"error":{"code":"ERR_GRACEFUL_UNKNOWN_TASK","message":"no task"}}'];
    });
    const r = new CommandRegistry();
    addSupervisorCommands(r, target({ appControl: a.path }));
    const st = (await run(r, ['status'])).result as Record<string, unknown>;
    expect(st).to.include({ runlevel: 3, pid: 4242, ready: true, supervisor: process.pid });
    const rd = await run(r, ['redeploy']);
    expect(rd.events).to.deep.equal(['spawned pid 77']);
    expect(rd.result).to.deep.equal({ pid: 77 });
    const other = run(r, ['frob', 'x']);
    expect(await rejection(other)).to.include({ code: 'ERR_GRACEFUL_UNKNOWN_TASK', message: 'no task' });
    const help = (await run(r, ['help'])).result as string[];
    expect(help.slice(-3)).to.deep.equal(['', 'The application\'s, forwarded to it:', 'frob    do a thing']);
    expect(a.seen).to.deep.equal(['status', 'redeploy', 'frob x', 'help']);
    await a.close();
    expect(fdCount()).to.equal(before);
  });

  it('an application control socket that does not answer: commands fail with ERR_GRACEFUL_COMMAND_FAILED, status keeps its own fields', async () => {
    const gone = path.join(tmpDir(), 'gone.sock');
    const r = new CommandRegistry();
    addSupervisorCommands(r, target({ appControl: gone }));
    const e = await rejection(run(r, ['frob']));
    expect(e).to.include({ code: 'ERR_GRACEFUL_COMMAND_FAILED' });
    expect(e.message).to.match(new RegExp(`^cannot reach the application's control socket ${gone.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: ENOENT connect ENOENT`));
    const st = (await run(r, ['status'])).result as Record<string, unknown>;
    expect(st).to.include({ pid: 4242, appControl: gone });
    expect(st.appError).to.equal(e.message);
    const help = (await run(r, ['help'])).result as string[];
    expect(help.at(-1)).to.equal(`(the application's commands are unavailable: ${e.message})`);
  });
});
