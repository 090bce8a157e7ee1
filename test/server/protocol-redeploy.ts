/** Shared by the drain tests that redeploy the protocols fixture (real processes, real clients). */
import { expect } from 'chai';
import http2 from 'node:http2';
import { endGenerations, spawnFixture, until, type Child } from '../helpers.js';
import { post, ServedBy } from '../load.js';

export interface Generation {
  pid: number;
  generation: number;
  ports: { http: number; https: number; h2c: number; h2: number };
}

function parse(line: string): Generation {
  const [, pid, generation, ports] = /^ready (\d+) (\d+) (.*)$/.exec(line)!;
  return { pid: Number(pid), generation: Number(generation), ports: JSON.parse(ports!) as Generation['ports'] };
}

/** ProtocolsApp: the protocols fixture, its generations, and redeploys of it. */
export class ProtocolsApp {
  readonly generations: Generation[] = [];
  private constructor(readonly child: Child) {}

  static async start(env: Record<string, string> = {}): Promise<ProtocolsApp> {
    const app = new ProtocolsApp(spawnFixture('protocols', [], { env: { ...process.env, ...env } }));
    app.generations.push(parse(await app.child.next(/^ready /)));
    return app;
  }

  get first(): Generation {
    return this.generations[0]!;
  }

  get ports(): Generation['ports'] {
    return this.first.ports;
  }

  /**
   * redeploy asks for one and resolves with the new generation as soon as it
   * said ready: the old instance drains from then on, while app.redeploy()
   * answers only once the take-back window has passed. That answer is
   * checked by halted() and stop().
   */
  async redeploy(): Promise<Generation> {
    const answer = post(this.ports.http, '/redeploy');
    const g = parse(await this.child.next(/^ready /));
    this.answers.push(answer.then((res) => {
      expect(res, JSON.stringify(res)).to.include({ ok: true, pid: g.pid });
    }));
    this.generations.push(g);
    return g;
  }

  private readonly answers: Promise<void>[] = [];

  /** halted resolves with the forced count once the instance pid printed its halt line. */
  async halted(pid: number, timeoutMs = 20_000): Promise<number> {
    await Promise.all(this.answers);
    const re = new RegExp(`^halt ${pid} `);
    const line = await until(() => this.child.stdout.find((l) => re.test(l)), timeoutMs, `the halt of ${pid}`);
    return Number(line!.split(' ').pop());
  }

  /** stop SIGKILLs every generation (only those this test started) and waits for the pipes. */
  async stop(): Promise<void> {
    await endGenerations(this.child);
  }
}

export interface H2Result {
  ok: number;
  failures: string[];
  /** Streams reset with REFUSED_STREAM (also counted in failures). */
  refused: number;
  pids: Set<string>;
  sessions: number;
}

/**
 * h2Load runs `sessions` loops, each with one HTTP/2 session and `streams`
 * streams in flight, each opening the next as it ends; a session that is
 * going away is replaced by a new one. Nothing is retried: every stream that
 * ends without a 200 is a failure (REFUSED_STREAM included). servedBy(pid)
 * resolves once every loop's last answered stream came from pid.
 */
export function h2Load(url: string, sessions: number, streams: number): { stop(): Promise<H2Result>; servedBy(pid: number): Promise<void> } {
  const result: H2Result = { ok: 0, failures: [], refused: 0, pids: new Set(), sessions: 0 };
  const served = new ServedBy(sessions);
  let running = true;
  const loops: Promise<void>[] = [];
  for (let i = 0; i < sessions; i++) {
    loops.push((async () => {
      while (running) {
        result.sessions++;
        const session = http2.connect(url, { rejectUnauthorized: false });
        session.on('error', (err) => result.failures.push(`session: ${err.message}`));
        await new Promise<void>((resolve) => {
          let slots = streams;
          const open = () => {
            if (!running || session.closed || session.destroyed) {
              if (--slots === 0) resolve();
              return;
            }
            const req = session.request({ ':path': '/' });
            let status = 0;
            let body = '';
            req.setEncoding('utf8');
            req.on('response', (h) => (status = Number(h[':status'])));
            req.on('data', (d: string) => (body += d));
            let error = '';
            req.on('error', (err: Error & { code?: string }) => (error = err.code ?? err.message));
            req.on('close', () => {
              if (status === 200 && !req.rstCode) {
                result.ok++;
                result.pids.add(body);
                served.saw(i, body);
              } else {
                if (req.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) result.refused++;
                result.failures.push(`stream ${req.id}: status ${status}, rst ${req.rstCode}, ${error}`);
              }
              open();
            });
            req.end();
          };
          for (let s = 0; s < streams; s++) open();
        });
        session.close();
      }
    })());
  }
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return result;
    },
    servedBy: (pid) => served.all(pid),
  };
}
