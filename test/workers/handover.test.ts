/**
 * workers/handover.ts: connection hand-over between generations of workers.
 * Its codecs (which old worker goes to which new one), then real services
 * (test/fixtures/workers-handover.ts) redeployed under keep-alive load and
 * with a WebSocket open: the same TCP connections are answered by the new
 * generation's workers, none is closed, no message lost or doubled.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type net from 'node:net';
import { WebSocket } from 'ws';
import { ADOPT_FIELD, ADOPT_LISTENERS_FIELD, ADOPT_SOCKETS_FIELD } from '../../src/server/conn-handover.js';
import { adoptFields, adoptFrom, targetFor, workerPids, workersAnswer, WORKER_PIDS_FIELD } from '../../src/workers/handover.js';
import { endGenerations, gone, openFds, spawnFixture, tmpDir, until, type Child } from '../helpers.js';

/** Load: loops of requests on one keep-alive agent, each answer recorded with when its request started. */
class Load {
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: 30 });
  opened = 0;
  closed = 0;
  failed: string[] = [];
  answers: { at: number; pid: number }[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[] = [];

  constructor(private readonly port: number, loops: number) {
    const create = this.agent.createConnection.bind(this.agent) as (...a: unknown[]) => net.Socket;
    (this.agent as unknown as { createConnection: (...a: unknown[]) => net.Socket }).createConnection = (...a: unknown[]) => {
      this.opened++;
      const s = create(...a);
      s.once('close', () => this.closed++);
      return s;
    };
    for (let i = 0; i < loops; i++) this.loops.push(this.loop());
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const at = Date.now();
      try {
        const body = await new Promise<string>((resolve, reject) => {
          http.get({ host: '127.0.0.1', port: this.port, path: '/', agent: this.agent }, (res) => {
            let text = '';
            res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve(text)).on('error', reject);
          }).on('error', reject);
        });
        this.answers.push({ at, pid: Number(body) });
      } catch (err) {
        this.failed.push((err as Error).message);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

/** Generation: a primary and its workers' pids, from the fixture's lines. */
async function generation(child: Child, gen: number, workers: number): Promise<{ primary: number; port: number; workers: number[] }> {
  const [, primary, , port] = (await child.next(new RegExp(`^ready \\d+ ${gen} `), 30_000)).split(' ').map(Number);
  // A worker's line may come after its primary's: the pipe is shared.
  const lines = () => child.stdout.filter((l) => new RegExp(`^worker \\d+ \\d+ ${gen}$`).test(l));
  await until(() => lines().length === workers, 10_000, `the workers of generation ${gen}`);
  const pids = lines().map((l) => Number(l.split(' ')[2]));
  return { primary: primary!, port: port!, workers: pids };
}

/** steady: a reader of fn that gives its value once the last 10 readings (polled by until) agree, else false. */
function steady(fn: () => number[]): () => number[] | false {
  const seen: string[] = [];
  return () => {
    const v = fn();
    seen.push(v.join());
    return seen.length >= 10 && seen.slice(-10).every((x) => x === seen[seen.length - 1]) ? v : false;
  };
}

/** fds: how many descriptors a process has open. */
function fds(pid: number): number {
  return openFds(pid).length;
}

describe('workers/handover', () => {
  describe('codecs', () => {
    it('spreads old worker i to new worker i mod n, both ways', () => {
      const state = { [WORKER_PIDS_FIELD]: JSON.stringify([101, 102, null, 104]) };
      expect(workerPids(state)).to.deep.equal([101, 102, null, 104]);
      expect(workerPids({ [WORKER_PIDS_FIELD]: 'not json' })).to.deep.equal([]);
      expect(adoptFrom(adoptFields(state, 7, 0, 2))).to.deep.equal({ peers: [101], parent: 7 });
      expect(adoptFrom(adoptFields(state, 7, 1, 2))).to.deep.equal({ peers: [102, 104], parent: 7 });
      expect(adoptFields(state, 7, 2, 3)).to.deep.equal({}); // old slot 2 had no worker
      expect(adoptFrom({})).to.equal(null);
      const adopt = (p: string) => ({ [ADOPT_FIELD]: p, [ADOPT_LISTENERS_FIELD]: 'http', [ADOPT_SOCKETS_FIELD]: '' });
      const answer = workersAnswer([{ slot: 0, pid: 201, answer: adopt('/a') }, { slot: 1, pid: 202, answer: adopt('/b') }]);
      expect(targetFor(answer, 0)).to.deep.equal({ slot: 0, pid: 201, answer: adopt('/a') });
      expect(targetFor(answer, 3)).to.deep.equal({ slot: 1, pid: 202, answer: adopt('/b') });
      expect(targetFor(workersAnswer([]), 0)).to.equal(null);
      expect(targetFor({ adoptWorkers: '{' }, 0)).to.equal(null);
      expect(targetFor(undefined, 0)).to.equal(null);
    });
  });

  describe('redeploys of a service with workers', function () {
    this.timeout(180_000);
    let child: Child | undefined;
    const re = /^(?:ready|worker \d+) (\d+)/;
    afterEach(async () => {
      await endGenerations(child, re);
      child = undefined;
    });

    it('hands every keep-alive connection to the new workers across 10 redeploys: none reopened, none failed; each old primary counts them', async () => {
      child = spawnFixture('workers-handover', [], { env: { ...process.env, APP_WORKERS: '2', GRACEFUL_JSON_LOG: '1' } });
      let gen = await generation(child, 1, 2);
      const load = new Load(gen.port, 24);
      await until(() => load.opened === 24 && load.answers.length > 200, 20_000, 'every connection open');
      let counts: number[] = [];
      for (let g = 2; g <= 11; g++) {
        const old = gen;
        process.kill(old.primary, 'SIGHUP');
        gen = await generation(child, g, 2);
        await until(() => gone(old.primary) && old.workers.every(gone), 30_000, `generation ${g - 1} gone`);
        const since = Date.now();
        const seen = load.answers.length;
        await until(() => load.answers.length > seen + 100, 20_000, 'requests after the redeploy');
        const later = load.answers.filter((a) => a.at > since);
        expect(later.filter((a) => !gen.workers.includes(a.pid)), `generation ${g}'s answers`).to.deep.equal([]);
        // Every connection reached a new worker (the fixture counts what each adopted).
        // The primary's own, and the workers' together (the kernel spreads the connections over them);
        // a new worker closes its adopt socket once the old primary's exit reaches it.
        const now = () => [fds(gen.primary), gen.workers.map(fds).reduce((a, b) => a + b, 0)];
        if (g === 3) counts = (await until(steady(now), 10_000, 'generation 3 steady')) as number[];
        if (g === 11) {
          await until(() => now().join() === counts.join(), 5_000, 'as many descriptors as generation 3').catch(() => undefined);
          expect(now(), 'descriptors of generation 11 (primary, workers) as of generation 3').to.deep.equal(counts);
        }
      }
      await load.stop();
      expect(load.failed, `failed requests; the service said: ${child.stderr.filter((l) => !l.includes('"worker.ready"')).join(' | ').slice(-6000)}`).to.deep.equal([]);
      expect(load.opened, 'connections opened').to.equal(24);
      expect(load.closed, 'connections closed').to.equal(0);
      load.agent.destroy();
      const adopted = child.stdout.filter((l) => l.startsWith('adopt '));
      expect(adopted.length).to.be.greaterThan(0);
      expect(child.stderr.join('\n')).not.to.match(/could not reach|ERR_GRACEFUL_HANDOVER_FAILED/);
      // Each old primary's "redeploy: done" counts what its workers handed over: the 24 connections,
      // less any a worker closed idle meanwhile (counted as drained), and none forced.
      const done = [...child.stdout, ...child.stderr].filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.event === 'redeploy.done');
      expect(done).to.have.length(10);
      for (const d of done) {
        expect(d.forced, JSON.stringify(d)).to.equal(0);
        expect(d.handedOver, JSON.stringify(d)).to.be.greaterThan(0);
        expect((d.handedOver as number) + (d.drained as number), JSON.stringify(d)).to.be.at.most(24);
      }
      expect(done.reduce((a, d) => a + (d.handedOver as number), 0)).to.be.at.least(200);
    });

    it('from 3 workers to 2 and back to 3: each new worker takes the connections of the old workers i mod n', async () => {
      const file = path.join(tmpDir(), 'workers');
      fs.writeFileSync(file, '3');
      child = spawnFixture('workers-handover', [], { env: { ...process.env, APP_WORKERS_FILE: file } });
      let gen = await generation(child, 1, 3);
      const load = new Load(gen.port, 24);
      await until(() => load.opened === 24 && load.answers.length > 200, 20_000, 'every connection open');
      for (const [g, n] of [[2, 2], [3, 3]] as const) {
        fs.writeFileSync(file, String(n));
        const old = gen;
        process.kill(old.primary, 'SIGHUP');
        gen = await generation(child, g, n);
        await until(() => gone(old.primary) && old.workers.every(gone), 30_000, `generation ${g - 1} gone`);
        const since = Date.now();
        const seen = load.answers.length;
        await until(() => load.answers.length > seen + 100, 20_000, 'requests after the redeploy');
        expect(load.answers.filter((a) => a.at > since && !gen.workers.includes(a.pid)), `generation ${g}'s answers`).to.deep.equal([]);
      }
      await load.stop();
      load.agent.destroy();
      expect(load.failed, `failed requests; the service said: ${child.stderr.filter((l) => !l.includes('"worker.ready"')).join(' | ').slice(-6000)}`).to.deep.equal([]);
      expect(load.opened, 'connections opened').to.equal(24);
      expect(load.closed, 'connections closed').to.equal(0);
    });

    it('hands a WebSocket over across redeploys: one connection, every message answered once', async () => {
      child = spawnFixture('workers-handover', [], { env: { ...process.env, APP_WORKERS: '2' } });
      let gen = await generation(child, 1, 2);
      const ws = new WebSocket(`ws://127.0.0.1:${gen.port}/`);
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      let closed = false;
      ws.on('close', () => (closed = true));
      const got: { pid: number; n: number; seq: number }[] = [];
      ws.on('message', (d) => got.push(JSON.parse(String(d)) as { pid: number; n: number; seq: number }));
      let n = 0;
      const timer = setInterval(() => ws.send(JSON.stringify({ n: ++n })), 5);
      try {
        for (let g = 2; g <= 4; g++) {
          const old = gen;
          process.kill(old.primary, 'SIGHUP');
          gen = await generation(child, g, 2);
          await until(() => gone(old.primary) && old.workers.every(gone), 30_000, `generation ${g - 1} gone`);
          const at = got.length;
          await until(() => got.length > at + 20, 10_000, 'answers after the redeploy').catch((err: Error) => {
            throw new Error(`${err.message}: ${child!.stdout.join(' | ')} ${child!.stderr.join(' | ')}`);
          });
          expect(gen.workers, `generation ${g} answers`).to.include(got[got.length - 1]!.pid);
        }
      } finally {
        clearInterval(timer);
      }
      await until(() => got.length === n, 10_000, 'every answer');
      expect(closed).to.equal(false);
      expect(got.map((m) => m.n)).to.deep.equal(Array.from({ length: n }, (_, i) => i + 1));
      expect(got.map((m) => m.seq)).to.deep.equal(Array.from({ length: n }, (_, i) => i + 1));
      expect(child.stdout.filter((l) => l.startsWith('adopt-socket '))).to.have.length(3);
      ws.terminate();
    });

    it('drains as before when the new workers cannot be reached (ERR_GRACEFUL_HANDOVER_FAILED)', async () => {
      child = spawnFixture('workers-handover', [], { env: { ...process.env, APP_WORKERS: '2', APP_UNREACHABLE_GENERATION: '2', GRACEFUL_JSON_LOG: '1' } });
      const first = await generation(child, 1, 2);
      const load = new Load(first.port, 8);
      await until(() => load.opened === 8 && load.answers.length > 50, 20_000, 'every connection open');
      process.kill(first.primary, 'SIGHUP');
      const second = await generation(child, 2, 2);
      await until(() => gone(first.primary) && first.workers.every(gone), 30_000, 'generation 1 gone');
      const seen = load.answers.length;
      await until(() => load.answers.length > seen + 50, 20_000, 'requests after the redeploy');
      await load.stop();
      load.agent.destroy();
      expect(load.failed, `failed requests; the service said: ${child.stderr.filter((l) => !l.includes('"worker.ready"')).join(' | ').slice(-6000)}`).to.deep.equal([]);
      expect(load.opened, 'the drained connections were opened again').to.be.greaterThan(8);
      expect(load.answers.slice(-20).every((a) => second.workers.includes(a.pid))).to.equal(true);
      expect(child.stdout.filter((l) => l.startsWith('adopt '))).to.deep.equal([]);
      expect(child.stderr.join('\n')).to.match(/could not reach the new instance \(pid \d+\) to hand connections over/);
      expect(child.stderr.join('\n')).to.include('"code":"ERR_GRACEFUL_HANDOVER_FAILED"');
    });
  });
});
