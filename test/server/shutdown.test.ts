/**
 * Shutdown (src/server/shutdown.ts) over its real parts (Lifecycle, Hooks,
 * Listeners, a real pid file) and a ControlPort of the test's own: the order
 * of a halt's steps, who removes the control socket file, a redeploy under
 * way abandoned, the hooks that fail or overrun, the pid file of another
 * process left alone.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import type { OutgoingFd } from '../../src/handoff/connection.js';
import { writePidFile } from '../../src/pidfile.js';
import type { ControlPort } from '../../src/server/control-port.js';
import { Hooks } from '../../src/server/hooks.js';
import { Lifecycle } from '../../src/server/lifecycle.js';
import { Listeners } from '../../src/server/listener-set.js';
import { resolveOptions, type Runlevel } from '../../src/server/options.js';
import type { Predecessor } from '../../src/server/predecessor.js';
import { Shutdown, type Halted, type ShutdownParts } from '../../src/server/shutdown.js';
import { tmpDir } from '../helpers.js';

/** A control socket that writes down what the halt asks of it. */
class RecordingControl implements ControlPort {
  readonly connectionCount = 0;
  constructor(private readonly steps: string[]) {}
  listen(): Promise<void> {
    return Promise.resolve();
  }
  start(): void {}
  adopt(): void {}
  unref(): void {}
  ref(): void {}
  handoff(): OutgoingFd[] {
    return [];
  }
  handoffDone(): void {}
  handoffFailed(): void {}
  takeBack(): Promise<void> {
    return Promise.resolve();
  }
  settle(deadline: number): Promise<void> {
    this.steps.push(`control.settle ${deadline > Date.now() ? 'ahead' : 'passed'}`);
    return Promise.resolve();
  }
  close(release: boolean): void {
    this.steps.push(`control.close ${release}`);
  }
}

interface Rig {
  shutdown: Shutdown;
  lifecycle: Lifecycle;
  hooks: Hooks;
  steps: string[];
  logs: string[];
  halted: Promise<Halted>;
  pidFile: string;
  abandoned: number;
}

function rig(options: { predecessor?: boolean; shutdownTimeout?: number; withWorkers?: boolean; pidOf?: number; levelFails?: boolean } = {}): Rig {
  const steps: string[] = [];
  const logs: string[] = [];
  const lifecycle = new Lifecycle();
  const hooks = new Hooks();
  const pidFile = path.join(tmpDir(), 'app.pid');
  writePidFile(pidFile, options.pidOf ?? process.pid);
  const control = new RecordingControl(steps);
  let resolveHalted!: (h: Halted) => void;
  const halted = new Promise<Halted>((resolve) => (resolveHalted = resolve));
  const r: Rig = { shutdown: null as unknown as Shutdown, lifecycle, hooks, steps, logs, halted, pidFile, abandoned: 0 };
  // The predecessor as the halt sees it: only abandon() is asked of it.
  const predecessor = options.predecessor ? ({ abandon: () => r.abandoned++ } as unknown as Predecessor) : null;
  const parts: ShutdownParts = {
    lifecycle,
    config: resolveOptions({ signals: false, exitProcess: false, pidFile, shutdownTimeout: options.shutdownTimeout ?? 5000, idleGrace: 100 }),
    log: (msg) => logs.push(msg),
    listeners: new Listeners(),
    hooks,
    runLevelHooks: async (level: Runlevel) => {
      if (options.levelFails) throw new Error('level boom');
      steps.push(`runlevel ${level} hooks (level ${lifecycle.level})`);
    },
    control: () => control,
    predecessor: () => predecessor,
    draining: (open) => steps.push(`draining ${open} (${lifecycle.state})`),
    release: () => steps.push(`release (pid file ${fs.existsSync(pidFile) ? 'there' : 'gone'})`),
    halted: (how) => {
      steps.push(`halted (${lifecycle.state})`);
      resolveHalted(how);
    },
  };
  if (options.withWorkers) {
    parts.workers = async () => {
      steps.push('workers drained');
    };
  }
  r.shutdown = new Shutdown(parts);
  hooks.add('stop', () => {
    steps.push('stop hook');
  });
  hooks.add('terminate', () => {
    steps.push(`terminate hook (pid file ${fs.existsSync(pidFile) ? 'there' : 'gone'})`);
  });
  return r;
}

describe('server/shutdown: Shutdown', () => {
  it('halt from ready: halting, drain, stop hooks, runlevel 0, the control socket, release, pid file, terminate hooks, halted', async () => {
    const r = rig({ withWorkers: true });
    r.lifecycle.to('ready');
    await r.shutdown.halt(true);
    expect(r.steps).to.deep.equal([
      'draining 0 (halting)',
      'workers drained',
      'stop hook',
      'runlevel 0 hooks (level 0)',
      'control.settle ahead',
      'control.close true',
      'release (pid file there)',
      'terminate hook (pid file gone)',
      'halted (halted)',
    ]);
    expect(await r.halted).to.deep.equal({ handedOver: false, forced: 0, bySignal: true });
    expect(r.lifecycle.state).to.equal('halted');
    expect(r.lifecycle.level).to.equal(0);
    expect(fs.existsSync(r.pidFile)).to.equal(false);
    expect(r.logs).to.deep.equal([]);
  });

  it('halt from starting, without a predecessor: the instance owns its control socket and removes its file', async () => {
    const r = rig();
    await r.shutdown.halt(false);
    expect(r.steps).to.include('control.close true');
    expect(await r.halted).to.deep.equal({ handedOver: false, forced: 0, bySignal: false });
    expect(r.abandoned).to.equal(0);
  });

  it('a new instance halting before it was ever ready tells its predecessor, and leaves the control socket file to it', async () => {
    const r = rig({ predecessor: true });
    await r.shutdown.halt(false);
    expect(r.abandoned).to.equal(1);
    expect(r.steps).to.include('control.close false');
    expect(r.steps).to.not.include('control.close true');
    expect(r.lifecycle.state).to.equal('halted');
  });

  it('a new instance that was ready once removes the file at its halt, its predecessor notwithstanding', async () => {
    const r = rig({ predecessor: true });
    r.lifecycle.to('ready');
    await r.shutdown.halt(false);
    expect(r.steps).to.include('control.close true');
  });

  it('finish after a committed hand-over: from draining, the file stays for the new instance; the forced connections are logged', async () => {
    const r = rig();
    r.lifecycle.to('ready');
    r.lifecycle.to('handing-over', 4242);
    r.lifecycle.to('draining');
    await r.shutdown.finish({ handedOver: true, forced: 2, bySignal: false });
    expect(r.steps).to.deep.equal([
      'stop hook', 'runlevel 0 hooks (level 0)', 'control.settle ahead', 'control.close false', 'release (pid file there)', 'terminate hook (pid file gone)', 'halted (halted)',
    ]);
    expect(r.logs).to.deep.equal(['halt: closed 2 connection(s) still open at their deadline (the shutdown timeout, or upgradedTimeout for upgraded connections)']);
    expect(await r.halted).to.deep.equal({ handedOver: true, forced: 2, bySignal: false });
    expect(r.lifecycle.handedOverTo).to.equal(4242);
  });

  it('a redeploy under way is abandoned first: its new instance is stopped before the drain starts', async () => {
    const r = rig();
    r.lifecycle.to('ready');
    const ticket = r.lifecycle.beginRedeploy();
    // The redeploy's side: on abort it kills its new instance, then gives the ticket back.
    ticket.abort.signal.addEventListener('abort', () => {
      r.steps.push('redeploy aborted');
      setImmediate(() => {
        r.steps.push('redeploy settled');
        r.lifecycle.endRedeploy(ticket);
      });
    });
    await r.shutdown.halt(true);
    expect(r.steps.slice(0, 3)).to.deep.equal(['redeploy aborted', 'redeploy settled', 'draining 0 (halting)']);
    expect(r.lifecycle.redeploying).to.equal(null);
    expect(r.lifecycle.state).to.equal('halted');
  });

  it('hooks that fail are logged, and the halt goes on to the end', async () => {
    const r = rig({ levelFails: true });
    r.hooks.add('stop', () => {
      throw new Error('stop boom');
    });
    r.hooks.add('terminate', () => {
      throw new Error('terminate boom');
    });
    r.hooks.add('stop', () => {
      r.steps.push('second stop hook'); // after the first error, none of the same kind runs
    });
    r.lifecycle.to('ready');
    await r.shutdown.halt(false);
    expect(r.logs).to.deep.equal([
      'halt: a stop hook failed: stop boom',
      'halt: a runlevel 0 hook failed: level boom',
      'halt: a terminate hook failed: terminate boom',
    ]);
    expect(r.steps).to.not.include('second stop hook');
    expect(r.steps.at(-1)).to.equal('halted (halted)');
    expect(fs.existsSync(r.pidFile)).to.equal(false);
  });

  it('stop hooks still running at the shutdown timeout are left behind, their signal aborted', async () => {
    const r = rig({ shutdownTimeout: 200 });
    let reason: unknown;
    // A hook that never ends: it only notes the abort.
    r.hooks.add('stop', (signal: AbortSignal) => new Promise<void>(() => signal.addEventListener('abort', () => (reason = signal.reason))));
    r.lifecycle.to('ready');
    await r.shutdown.halt(false);
    expect(r.logs).to.deep.equal(['halt: stop hooks still running at the shutdown timeout (200 ms): going on without them']);
    expect((reason as Error).message).to.equal('the shutdown timeout passed');
    expect(r.lifecycle.state).to.equal('halted');
  });

  it('a pid file that names another process is left alone', async () => {
    const r = rig({ pidOf: 1 });
    r.lifecycle.to('ready');
    await r.shutdown.halt(false);
    expect(fs.readFileSync(r.pidFile, 'utf8')).to.equal('1\n');
    expect(r.logs).to.deep.equal([]);
  });
});
