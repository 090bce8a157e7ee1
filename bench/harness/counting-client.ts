/**
 * CountingClient: one new connection per request (http.request, agent:
 * false), never retried; every ECONNRESET, EPIPE, refused connect, hang-up,
 * timeout, non-2xx or unexpected body counts as a failure.
 */
import http from 'node:http';
import { HOST } from './fleet.js';
import { BODY, type LoadCounts } from './counts.js';

/**
 * CountingClient: `concurrency` loops, each sending one request at a time on
 * a new connection (agent: false, Connection: close) and counting what
 * happened to it. Nothing is retried.
 */
export class CountingClient {
  readonly counts: LoadCounts = { sent: 0, ok: 0, non2xx: 0, errors: {}, latencies: [], byPid: new Map() };
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly port: number, private readonly concurrency = 10, private readonly timeoutMs = 5_000) {}

  start(): void {
    this.running = true;
    for (let i = 0; i < this.concurrency; i++) {
      this.loops.push((async () => {
        while (this.running) await this.one();
      })());
    }
  }

  /** stop lets each loop finish its request in flight, then resolves with the counts. */
  async stop(): Promise<LoadCounts> {
    this.running = false;
    await Promise.all(this.loops);
    return this.counts;
  }

  private fail(kind: string): void {
    this.counts.errors[kind] = (this.counts.errors[kind] ?? 0) + 1;
  }

  private one(): Promise<void> {
    return new Promise((resolve) => {
      const started = performance.now();
      let settled = false;
      const settle = (what: () => void) => {
        if (settled) return;
        settled = true;
        what();
        resolve();
      };
      this.counts.sent++;
      const req = http.request({ host: HOST, port: this.port, path: '/', agent: false, headers: { connection: 'close' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => settle(() => {
          this.counts.latencies.push(performance.now() - started);
          const status = res.statusCode ?? 0;
          if (status < 200 || status > 299) return void this.counts.non2xx++;
          const m = BODY.exec(body);
          if (!m) return this.fail('unexpected body');
          this.counts.ok++;
          const pid = Number(m[1]);
          this.counts.byPid.set(pid, (this.counts.byPid.get(pid) ?? 0) + 1);
        }));
        res.on('aborted', () => settle(() => this.fail('response aborted')));
        res.on('error', (err: NodeJS.ErrnoException) => settle(() => this.fail(err.code ?? err.message)));
      });
      req.setTimeout(this.timeoutMs, () => {
        settle(() => this.fail('timeout'));
        req.destroy();
      });
      req.on('error', (err: NodeJS.ErrnoException) => settle(() => this.fail(err.code === 'ECONNRESET' && /hang up/.test(err.message) ? 'socket hang up' : err.code ?? err.message)));
      req.end();
    });
  }
}
