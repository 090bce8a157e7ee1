/**
 * What health answers during redeploys and scales: the service's health.
 * While any generation serves, a probe never sees it unhealthy: a flood of
 * probes (control clients asking status and judging it as the CLI's health
 * does, and the CLI's health itself) across redeploys and a scale, with
 * workers and without.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { ControlClient } from '../../src/control/client.js';
import { endGenerations, root, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

interface Status { pid?: number; ready?: boolean; runlevel?: number; state?: string; handedOverTo?: number | null; workersWanted?: number; workersReady?: number; workers?: { id: number; state: string }[] }

/** judge: the CLI's health verdict on a status answer (src/cli.ts health()): null when healthy, else why not. */
function judge(s: Status): string | null {
  if (!s.ready && s.handedOverTo && (s.state === 'handing-over' || s.state === 'draining') && s.runlevel === 3) return null;
  if (s.ready && s.workersWanted !== undefined && (s.workersReady ?? 0) < s.workersWanted) {
    return `pid ${s.pid} ready with ${s.workersReady} of ${s.workersWanted} workers (${(s.workers ?? []).map((w) => `${w.id} ${w.state}`).join(', ')})`;
  }
  if (s.ready && s.runlevel === 3) return null;
  return `pid ${s.pid} ${s.ready ? 'ready' : 'not ready'} state ${s.state} runlevel ${s.runlevel} workers ${s.workersReady}/${s.workersWanted}`;
}

function cliHealth(sock: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin/graceful-restart.js'), 'health', sock], { timeout: 30_000 }, (err, stdout) => {
      resolve({ code: err ? Number((err as { code?: number }).code) : 0, out: stdout.trim() });
    });
  });
}

/** Probes: loops of status probes on fresh connections, and the CLI's health one after another, until stopped. */
class Probes {
  private running = true;
  private readonly loops: Promise<void>[] = [];
  answers = 0;
  cliRuns = 0;
  readonly unhealthy: string[] = [];

  constructor(sock: string, clients: number) {
    for (let i = 0; i < clients; i++) {
      this.loops.push((async () => {
        while (this.running) {
          try {
            const c = await ControlClient.connect(sock, 5_000);
            try {
              const why = judge(await c.request('status', [], undefined, 5_000) as Status);
              this.answers++;
              if (why) this.unhealthy.push(why);
            } finally {
              c.close();
            }
          } catch (err) {
            this.unhealthy.push(`probe failed: ${(err as Error).message}`);
          }
        }
      })());
    }
    this.loops.push((async () => {
      while (this.running) {
        const h = await cliHealth(sock);
        this.cliRuns++;
        if (h.code !== 0) this.unhealthy.push(`cli: exit ${h.code}: ${h.out}`);
      }
    })());
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

async function control(sock: string, cmd: string, args: string[] = []): Promise<unknown> {
  const c = await ControlClient.connect(sock, 5_000);
  try {
    return await c.request(cmd, args, undefined, 60_000);
  } finally {
    c.close();
  }
}

describe('health during redeploys and scales', function () {
  this.timeout(180_000);
  let child: Child | undefined;

  afterEach(async () => {
    await endGenerations(child, /^(?:ready|worker \d+) (\d+)/);
    child = undefined;
  });

  for (const rollout of ['all', 'rolling']) {
    it(`answers healthy throughout 3 redeploys and a scale of a service with 2 workers (rollout ${rollout})`, async () => {
      const sock = path.join(tmpDir(), 'ctl.sock');
      child = spawnFixture('workers', [], { env: { ...process.env, APP_SOCKET: sock, APP_WORKERS: '2', APP_ROLLOUT: rollout } });
      await child.next(/^ready /);
      await until(async () => ((await control(sock, 'status')) as Status).workersReady === 2, 10_000, 'two workers ready');
      const probes = new Probes(sock, 4);
      try {
        for (let i = 0; i < 3; i++) await control(sock, 'redeploy');
        await control(sock, 'scale', ['3']);
        await control(sock, 'redeploy');
      } finally {
        await probes.stop();
      }
      expect(probes.answers).to.be.above(50);
      expect(probes.cliRuns).to.be.above(3);
      expect(probes.unhealthy, probes.unhealthy.slice(0, 10).join('\n')).to.deep.equal([]);
    });
  }

  it('answers healthy throughout 3 redeploys of a service without workers', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'ctl.sock');
    child = spawnFixture('app', [], { env: { ...process.env, APP_SOCKET: sock, APP_FAIL_FILE: path.join(dir, 'fail'), APP_UPGRADE_TIMEOUT: '20000' } });
    await child.next(/^ready /);
    const probes = new Probes(sock, 4);
    try {
      for (let i = 0; i < 3; i++) await control(sock, 'redeploy');
    } finally {
      await probes.stop();
    }
    expect(probes.answers).to.be.above(50);
    expect(probes.unhealthy, probes.unhealthy.slice(0, 10).join('\n')).to.deep.equal([]);
  });
});
