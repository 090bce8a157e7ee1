/** control/builtins.ts: the built-in control commands, run against a ControlTarget (real shell commands for update/rebuild). */
import { expect } from 'chai';
import { addBuiltins, type ControlTarget } from '../../src/control/builtins.js';
import type { RedeployEvent } from '../../src/server/redeploy.js';
import { RedeployFailedError } from '../../src/errors.js';
import { CommandRegistry, type CommandContext } from '../../src/control/commands.js';

interface Ran { result: unknown; lines: string[]; events: unknown[]; handedOver: boolean }

function target(over: Partial<ControlTarget> = {}): ControlTarget & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    status: () => ({ pid: 1 }),
    stats: () => ({ pid: 1, since: 'then', listeners: [], redeploys: { done: 0, failed: 0, takenBack: 0 }, last: [] }),
    telinit: async (level) => {
      calls.push(`telinit ${level}`);
    },
    redeploy: async (onEvent: (e: RedeployEvent) => void) => {
      onEvent({ type: 'spawned', pid: 9, ms: 1, timeoutMs: 60_000 });
      onEvent({ type: 'ready', pid: 9, ms: 20 });
      onEvent({ type: 'failed', ms: 30, error: new RedeployFailedError('failed on purpose', { reason: 'exit', stderr: [] }) });
      return { pid: 9, readyMs: 20 };
    },
    reopen: async () => ['access.log', 'error.log'],
    tasks: () => ['backup', 'rotate'],
    runTask: async (name, args) => `${name}(${args.join(',')})`,
    shellCommands: {},
    ...over,
  };
}

async function run(registry: CommandRegistry, line: string[], json = false, signal = new AbortController().signal): Promise<Ran> {
  const { name, command } = registry.get(line[0]!);
  const ran: Ran = { result: undefined, lines: [], events: [], handedOver: false };
  const ctx: CommandContext = {
    name, args: line.slice(1), json, peer: { pid: process.pid, uid: 0, gid: 0 }, signal,
    write: (l) => ran.lines.push(l) > 0,
    event: (e, text) => ran.events.push(json ? e : text) > 0,
    drain: async () => undefined,
    handover: () => (ran.handedOver = true),
  };
  ran.result = await command.run(ctx);
  return ran;
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  return p.then(() => { throw new Error('expected a rejection'); }, (e: Error) => e);
}

describe('control/builtins', () => {
  it('registers the built-in commands, restart as an alias of redeploy; stats only when the target has it', () => {
    const r = new CommandRegistry();
    addBuiltins(r, target());
    expect(r.names()).to.deep.equal(['CUSTOM', 'help', 'rebuild', 'redeploy', 'reopen', 'restart', 'stats', 'status', 'task', 'telinit', 'update', 'upgrade']);
    const r2 = new CommandRegistry();
    addBuiltins(r2, target({ stats: undefined }));
    expect(r2.has('stats')).to.equal(false);
  });

  it('help lists the commands, or explains one', async () => {
    const r = new CommandRegistry();
    addBuiltins(r, target());
    const all = (await run(r, ['help'])).result as string[];
    expect(all).to.include('redeploy                start a new instance, hand it every socket, drain this one  (also: restart)');
    expect(all.slice(-2)).to.deep.equal(['quit                    close this connection', 'oneshot <command ...>   run one command, then close']);
    expect((await run(r, ['help', 'status'])).result).to.equal(
      'status                  pid, generation, runlevel, listeners, connections, memory\n\nPrints the state of this instance. In JSON mode the result is an object with the same fields.',
    );
    expect((await run(r, ['help', 'update'])).result).to.equal('update                  run the configured update command (e.g. git pull)\n\n(update has no further help)');
    expect(await rejection(run(r, ['help', 'nope']))).to.include({ code: 'ERR_GRACEFUL_UNKNOWN_COMMAND', message: 'unknown command "nope": type help for the list' });
  });

  it('telinit, reopen and task answer in words, or as objects in JSON mode', async () => {
    const r = new CommandRegistry();
    const t = target();
    addBuiltins(r, t);
    expect((await run(r, ['telinit', '1'])).result).to.equal('runlevel 1');
    expect((await run(r, ['telinit', '3'], true)).result).to.deep.equal({ runlevel: 3 });
    expect(t.calls).to.deep.equal(['telinit 1', 'telinit 3']);
    expect((await run(r, ['reopen'])).result).to.equal('reopened 2 file(s): access.log, error.log');
    expect((await run(r, ['reopen'], true)).result).to.deep.equal({ reopened: ['access.log', 'error.log'] });
    const none = new CommandRegistry();
    addBuiltins(none, target({ reopen: async () => [] }));
    expect((await run(none, ['reopen'])).result).to.equal('reopened 0 file(s)');
    expect((await run(r, ['task'])).result).to.equal('backup\nrotate');
    expect((await run(r, ['task'], true)).result).to.deep.equal({ tasks: ['backup', 'rotate'] });
    expect((await run(r, ['task', 'backup', 'a', 'b'])).result).to.equal('backup(a,b)');
    expect((await run(r, ['stats'])).result).to.be.a('string').that.matches(/^pid 1, counting since then/);
  });

  it('redeploy marks the connection for hand-over and streams every step but the failure', async () => {
    const r = new CommandRegistry();
    addBuiltins(r, target());
    const plain = await run(r, ['restart']);
    expect(plain.handedOver).to.equal(true);
    expect(plain.events).to.deep.equal(['spawned pid 9', 'ready: pid 9 after 20 ms']);
    expect(plain.result).to.equal(undefined);
    const json = await run(r, ['redeploy'], true);
    expect(json.events).to.deep.equal([
      { event: 'spawned', pid: 9, ms: 1, connections: undefined, timeoutMs: 60_000 },
      { event: 'ready', pid: 9, ms: 20, connections: undefined },
    ]);
    expect(json.result).to.deep.equal({ pid: 9, readyMs: 20 });
  });

  it('update and rebuild run the configured shell command, streaming its lines; a failure is ERR_GRACEFUL_COMMAND_FAILED', async () => {
    const r = new CommandRegistry();
    addBuiltins(r, target({ shellCommands: { update: 'echo out; echo err >&2', rebuild: 'exit 3' } }));
    const ok = await run(r, ['update']);
    expect(ok.lines[0]).to.equal('$ echo out; echo err >&2');
    expect(ok.lines.slice(1).sort()).to.deep.equal(['err', 'out']);
    const e = await rejection(run(r, ['rebuild']));
    expect(e).to.include({ code: 'ERR_GRACEFUL_COMMAND_FAILED', message: 'rebuild failed (exit code 3): exit 3' });
    const up = await rejection(run(r, ['upgrade']));
    expect(up.message).to.equal('rebuild failed (exit code 3): exit 3'); // update ran first, then rebuild failed
  });

  it('a shell command stops when the client leaves; one not configured is ERR_GRACEFUL_NOT_CONFIGURED', async () => {
    const r = new CommandRegistry();
    addBuiltins(r, target({ shellCommands: { update: 'echo started; exec sleep 30' } }));
    const ac = new AbortController();
    const running = run(r, ['update'], false, ac.signal);
    ac.abort();
    const e = await rejection(running);
    expect(e.message).to.equal('update failed (killed by SIGTERM): echo started; exec sleep 30');
    const e2 = await rejection(run(r, ['rebuild']));
    expect(e2).to.include({ code: 'ERR_GRACEFUL_NOT_CONFIGURED', message: 'rebuild is not configured: set commands.rebuild in the GracefulServer options' });
    const bare = new CommandRegistry();
    addBuiltins(bare, target());
    expect((await rejection(run(bare, ['upgrade']))).message).to.equal(
      'upgrade is not configured: set commands.update and commands.rebuild in the GracefulServer options',
    );
  });

  it('CUSTOM runs an application command by name, and refuses to run itself', async () => {
    const r = new CommandRegistry();
    addBuiltins(r, target());
    r.add('hello', { usage: 'hello <who>', run: (ctx) => `hello ${ctx.args.join(' ')} (${ctx.name})` });
    expect((await run(r, ['CUSTOM', 'hello', 'world'])).result).to.equal('hello world (hello)');
    expect(await rejection(run(r, ['CUSTOM', 'CUSTOM', 'x']))).to.include({ code: 'ERR_GRACEFUL_USAGE', message: 'usage: CUSTOM <command> [args...]' });
    expect(await rejection(run(r, ['CUSTOM', 'nope']))).to.include({ code: 'ERR_GRACEFUL_UNKNOWN_COMMAND', message: 'unknown command "nope": type help for the list' });
  });
});
