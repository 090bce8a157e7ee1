/**
 * Unmodified applications (test/fixtures/unmodified: Express, Fastify, Koa,
 * plain http, none of which imports this package) under `graceful-restart
 * run`, and the cases every framework goes through: redeploys under load,
 * a new version that crashes or never listens, SIGTERM with a request in
 * flight. Real processes and sockets; every wait is on an event or bounded.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { cli, freePort, httpGet, root, spawnChild, tmpDir, until, type Child } from '../helpers.js';

/** The fixture applications. */
export const UNMODIFIED = path.join(root, 'test/fixtures/unmodified');
/** graceful-restart/register, as `node --import` or `node -r` names it. */
export const REGISTER = path.join(root, 'dist/src/register.js');
const BIN = path.join(root, 'bin/graceful-restart.js');

/** pidIn: the pid an application's answer names (its first number). */
export function pidIn(body: string): number {
  const m = /(\d+)/.exec(body);
  if (!m) throw new Error(`no pid in ${JSON.stringify(body)}`);
  return Number(m[1]);
}

export interface RunOptions {
  /** Flags of `run` before `--`. */
  flags?: string[];
  /** More variables for the supervisor (and so the application). */
  env?: Record<string, string>;
  /** The command after `--` (default: node <fixture>). */
  command?: string[];
  /** Wait for the first answer (default true). */
  wait?: boolean;
  /** The directory of the sockets (default: a new tmpDir()). */
  dir?: string;
}

const running = new Set<RunApp>();

/** stopAll stops every RunApp started and not stopped yet (an afterEach: a test that failed half-way leaves none behind). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((a) => a.stop()));
}

/** RunApp: one fixture under `graceful-restart run -s <sock>`. */
export class RunApp {
  private constructor(
    readonly sup: Child,
    readonly sock: string,
    readonly port: number,
    readonly dir: string,
  ) {}

  /** start runs fixture (a file of test/fixtures/unmodified) on a free port and resolves once it answers. */
  static async start(fixture: string, options: RunOptions = {}): Promise<RunApp> {
    const dir = options.dir ?? tmpDir();
    const sock = path.join(dir, 'sup.sock');
    const port = await freePort();
    const command = options.command ?? [process.execPath, path.join(UNMODIFIED, fixture)];
    const env = { ...process.env, PORT: String(port), ...options.env };
    const sup = spawnChild(process.execPath, [BIN, 'run', '-s', sock, ...(options.flags ?? []), '--', ...command], { env });
    const app = new RunApp(sup, sock, port, dir);
    running.add(app);
    if (options.wait !== false) {
      await sup.next(/listening on/);
      await until(async () => (await app.get().catch(() => null))?.status === 200, 20_000, `${fixture} to answer`);
      // Ready (READY=1 reached the supervisor): only then can it be redeployed.
      await until(async () => (await app.health()).code === 0, 20_000, `${fixture} to be ready`);
    }
    return app;
  }

  /** get: one request on a new connection. */
  get(where = '/'): Promise<{ status: number; body: string }> {
    return httpGet({ port: this.port, path: where });
  }

  /** pid: the pid that answers a request on a new connection. */
  async pid(): Promise<number> {
    return pidIn((await this.get()).body);
  }

  /** control runs the CLI against the supervisor's socket. */
  control(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return cli('-s', this.sock, ...args);
  }

  /** health runs `graceful-restart health <sock>`: 0 once the application said it is ready. */
  health(): Promise<{ code: number; stdout: string; stderr: string }> {
    return cli('health', this.sock);
  }

  /** stop sends SIGTERM to the supervisor (which drains the application) and resolves with its exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    running.delete(this);
    this.sup.kill('SIGTERM');
    const timer = setTimeout(() => this.sup.kill('SIGKILL'), 20_000);
    try {
      return await this.sup.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Load: keep-alive clients (sharing an agent) and clients that open a new
 * connection per request, looping until stop(). Every error counts (a reset,
 * a hang-up, a timeout, a status other than 200); nothing is retried.
 */
export class Load {
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly agent: http.Agent;
  readonly errors: string[] = [];
  readonly pids = new Set<number>();
  requests = 0;

  constructor(port: number, keepAlive: number, fresh: number) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: keepAlive });
    for (let i = 0; i < keepAlive + fresh; i++) this.loops.push(this.loop(port, i < keepAlive ? this.agent : false));
  }

  private async loop(port: number, agent: http.Agent | false): Promise<void> {
    while (this.running) {
      try {
        const body = await new Promise<string>((resolve, reject) => {
          const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
            let b = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (b += c));
            res.on('end', () => (res.statusCode === 200 ? resolve(b) : reject(new Error(`status ${res.statusCode}`))));
            res.on('error', reject);
          });
          req.on('error', reject);
          req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
        });
        this.requests++;
        this.pids.add(pidIn(body));
      } catch (err) {
        this.errors.push(`${agent ? 'keep-alive' : 'new connection'}: ${(err as Error).message}`);
      }
    }
  }

  /** stop ends the loops after their current request. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
  }
}

/**
 * redeploysUnderLoad: n redeploys through the control socket while 4
 * keep-alive and 4 new-connection clients loop; every redeploy succeeds and
 * is answered by pids never seen before it, and no request fails.
 */
export async function redeploysUnderLoad(app: RunApp, n: number, probes = 1): Promise<void> {
  const load = new Load(app.port, 4, 4);
  const seen = new Set<number>([await app.pid()]);
  try {
    for (let i = 0; i < n; i++) {
      await until(() => load.requests > 20 * (i + 1), 10_000, 'requests between redeploys');
      for (const p of load.pids) seen.add(p);
      const r = await app.control('redeploy');
      expect(r.code, `redeploy ${i + 1}: ${r.stdout}${r.stderr}`).to.equal(0);
      expect(r.stdout).to.match(/^done: pid \d+ is serving$/m);
      for (let k = 0; k < probes; k++) {
        const pid = await app.pid();
        expect(seen.has(pid), `redeploy ${i + 1} answered by pid ${pid}, which served before it`).to.equal(false);
      }
    }
  } finally {
    await load.stop();
  }
  expect(load.errors, load.errors.slice(0, 5).join('; ')).to.deep.equal([]);
  expect(load.requests).to.be.greaterThan(20 * n);
}

/**
 * failedVersionRollsBack: with marker (the fixture's APP_CRASH_FILE or
 * APP_NO_LISTEN_FILE, in app's directory) present, a redeploy fails with a
 * reason matching reason, and the serving pid serves on; without it, the
 * next redeploy works.
 */
export async function failedVersionRollsBack(app: RunApp, marker: string, reason: RegExp): Promise<void> {
  const before = await app.pid();
  fs.writeFileSync(marker, 'the marker file says so\n');
  const r = await app.control('redeploy');
  expect(r.code, r.stdout + r.stderr).to.equal(1);
  expect(r.stderr).to.match(reason);
  expect(await app.pid()).to.equal(before);
  const health = await app.health();
  expect(health.code, health.stdout).to.equal(0);
  fs.rmSync(marker);
  const again = await app.control('redeploy');
  expect(again.code, again.stdout + again.stderr).to.equal(0);
  expect(await app.pid()).to.not.equal(before);
}

/** markers: the variables naming the fixtures' marker files in dir. */
export function markers(dir: string): { crash: string; noListen: string; env: Record<string, string> } {
  const crash = path.join(dir, 'crash');
  const noListen = path.join(dir, 'no-listen');
  return { crash, noListen, env: { APP_CRASH_FILE: crash, APP_NO_LISTEN_FILE: noListen } };
}

/**
 * drainsOnSigterm: a request held by the application (?delay=1000) when the
 * supervisor gets SIGTERM gets its whole answer, and the supervisor exits 0.
 */
export async function drainsOnSigterm(app: RunApp): Promise<void> {
  const pid = await app.pid();
  const held = app.get('/?delay=1000');
  await app.sup.next(new RegExp(`^held ${pid} 1000$`));
  const exit = app.stop();
  const answer = await held;
  expect(answer.status).to.equal(200);
  expect(pidIn(answer.body)).to.equal(pid);
  expect(await exit).to.deep.equal({ code: 0, signal: null });
}
